"""Generate tab: a grid of samples for a seed list; clicking one makes it the current seed; nearest training images."""
import gradio as gr

from dcgan.errors import DatasetError

from ... import service
from ..context import Context


def generate_tab(ctx: Context) -> None:
    catalog, out = ctx.catalog, ctx.out
    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            seeds = gr.Textbox("0-15", label="Seeds", scale=3,
                               info=f"'0-15', '3,7,42' or 'random' (at most {service.MAX_GENERATE_SEEDS})")
            random_btn = gr.Button(f"Random {service.RANDOM_COUNT}", scale=0, min_width=110)
            go = gr.Button("Generate", variant="primary", scale=0, min_width=110)
        with gr.Row():
            with gr.Column(scale=3):
                gr.Markdown("Click a sample to make it the **current seed** used by the other tabs.")
                gallery = gr.Gallery(label="Samples", show_label=False, columns=8,
                                     object_fit="contain", format="png", allow_preview=False, elem_classes=["pixelated"],
                                     elem_id="samples")
                grid_file = gr.File(label="Grid PNG at native size (tile i: row i // columns, column i % columns)")
            with gr.Column(scale=1):
                current = gr.Image(label="Current seed", format="png", height=256, interactive=False,
                                   elem_classes=["pixelated", "big"], elem_id="current-seed")
        with gr.Accordion("Is it memorised? Nearest training images", open=False):
            gr.Markdown("The closest training images to the current seed's sample, by pixel distance (RMS, grey levels "
                        "0-255). A near-copy would mean the generator memorised its data; the paper argues it does not.")
            with gr.Row():
                k = gr.Slider(1, service.MAX_NEAREST, 8, step=1, label="How many")
                find = gr.Button("Find nearest training images")
            nearest_note = gr.Markdown()
            nearest_gallery = gr.Gallery(label="Nearest training images", show_label=False, columns=8, object_fit="contain",
                                         format="png", allow_preview=False, elem_classes=["pixelated"])
        shown = gr.State([])
        ctx.shared.update(seeds=seeds, grid_seeds=shown)  # a shared link's Generate state; the grid's download

        def run(model, text, psi):
            samples = service.generate(catalog, model, text, psi)
            items = [(service.squeeze(img), f"seed {s}") for img, s in zip(samples.images, samples.seeds)]
            path = out.png(samples.grid(), f"{model}-grid-{service.format_seeds(samples.seeds)[:40]}")
            return items, samples.seeds, str(path), service.format_seeds(samples.seeds)

        def pick(evt: gr.SelectData, seeds_shown):
            return seeds_shown[evt.index] if 0 <= evt.index < len(seeds_shown) else gr.skip()

        def show_current(model, seed, psi):
            return service.seed_image(catalog, model, seed, psi) if model else None

        def find_nearest(model, seed, psi, count):
            try:
                result = service.nearest(catalog, model, seed, psi, count)
            except DatasetError as exc:
                return [], f"**Not available:** {exc}"
            items = [(img, f"#{i} · {d:.1f}") for img, i, d in zip(service.squeeze(result.images), result.indices, result.distances)]
            return items, f"Seed {seed}: closest training image at RMS distance {result.distances[0]:g} (index {result.indices[0]})."

        grid_outputs = [gallery, shown, grid_file, seeds]
        ctx.on([go.click, seeds.submit, ctx.demo.load, ctx.model.change, ctx.truncation.release], run,
               [ctx.model, seeds, ctx.truncation], grid_outputs, trigger_mode="always_last")
        ctx.on(random_btn.click, lambda model, psi: run(model, "random", psi), [ctx.model, ctx.truncation], grid_outputs)
        ctx.set_seed(gallery.select, pick, shown)
        ctx.on([ctx.seed.change, ctx.demo.load, ctx.model.change, ctx.truncation.release], show_current,
               [ctx.model, ctx.seed, ctx.truncation], current, trigger_mode="always_last", show_progress="hidden")
        ctx.on(find.click, find_nearest, [ctx.model, ctx.seed, ctx.truncation, k], [nearest_gallery, nearest_note])
        ctx.on_light(ctx.model.change, lambda: ([], ""), None, [nearest_gallery, nearest_note])  # they were another model's
