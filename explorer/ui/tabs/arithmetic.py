"""Vector arithmetic (section 6.3.2): exemplar groups A, B, C picked by clicking samples or by a classifier preset;
Y = mean(A) - mean(B) + mean(C) as the paper's 3x3 grid, the pixel-space baseline, and saved concept vectors."""
import gradio as gr

from dcgan.directions import ARITHMETIC_PRESETS, MAX_AMOUNT

from ... import service
from ..context import Context

GROUPS = ("A", "B", "C")


PRESETS = list(ARITHMETIC_PRESETS)


def arithmetic_tab(ctx: Context) -> None:
    catalog = ctx.catalog
    with gr.Tab("Vector arithmetic", id="arithmetic"):
        gr.Markdown("Pick 1-8 exemplars for each group by clicking samples (click an exemplar again to remove it). "
                    "**Y = mean(A) − mean(B) + mean(C)**; the grid shows G(Y) in the centre and 8 variants Y + U(−noise, noise).")
        with gr.Row():
            candidate_seeds = gr.Textbox("0-31", label="Candidates", scale=3, info="seed list to pick exemplars from")
            show = gr.Button("Show", scale=0, min_width=90)
            target = gr.Radio(list(GROUPS), value="A", label="A click adds to group", scale=2)
        candidates = gr.Gallery(columns=16, object_fit="contain", format="png", allow_preview=False,
                                elem_classes=["pixelated"], label="Candidates (click to add)", show_label=False, elem_id="candidates")
        boxes, galleries, clears = {}, {}, {}
        with gr.Row():
            for g in GROUPS:
                with gr.Column(min_width=200):
                    boxes[g] = gr.Textbox("", label=f"Group {g} seeds", placeholder="e.g. 3,7,42", info="click an image below to remove it")
                    galleries[g] = gr.Gallery(columns=4, object_fit="contain", format="png", allow_preview=False,
                                              elem_classes=["pixelated"], label=f"{g} (click to remove)", show_label=False)
                    clears[g] = gr.Button(f"Clear {g}", size="sm")
        with gr.Row():
            preset = gr.Dropdown(PRESETS, value=PRESETS[0], label="Preset (exemplars picked by the attribute classifier)", scale=3)
            preset_count = gr.Slider(1, service.MAX_PRESET_COUNT, 3, step=1, label="Exemplars per group", scale=1)
            pick = gr.Button("Pick exemplars", scale=0, min_width=140)
        preset_note = gr.Markdown(elem_id="preset-record")
        with gr.Row():
            noise = gr.Slider(0.0, service.MAX_NOISE, 0.25, step=0.01, label="Noise amount (uniform ±)")
            noise_seed = gr.Number(0, precision=0, minimum=0, label="Noise seed (variants are reproducible)")
            compute = gr.Button("Compute A − B + C", variant="primary")
        with gr.Row():
            centre = gr.Image(label="G(Y)", format="png", height=256, interactive=False, elem_classes=["pixelated", "big"],
                              elem_id="arithmetic-centre")
            grid = gr.Image(label="3x3: G(Y) centre, 8 noisy variants", format="png", height=256, interactive=False,
                            elem_classes=["pixelated", "big"])
            pixel = gr.Image(label="Same arithmetic in pixel space", format="png", height=256, interactive=False,
                             elem_classes=["pixelated", "big"])
        with gr.Accordion("Concept vectors: save mean(A) − mean(B) and apply it to any seed", open=False):
            with gr.Row():
                concept_name = gr.Textbox(label="Name", placeholder="smile", scale=2)
                save = gr.Button("Save mean(A) − mean(B)", scale=1)
            with gr.Row():
                concept_pick = gr.Dropdown([], label="Concept", scale=2)
                amount = gr.Slider(-MAX_AMOUNT, MAX_AMOUNT, 0.0, step=0.05, label="Amount (applied to the current seed)", scale=3)
            concept_note = gr.Markdown()
            concept_img = gr.Image(label="Current seed + amount · concept", format="png", height=256, interactive=False,
                                   elem_classes=["pixelated", "big"])
        shown = gr.State([])
        ctx.shared.update(a=boxes["A"], b=boxes["B"], c=boxes["C"], noise=noise, noise_seed=noise_seed)
        concepts = gr.State({})  # name -> {"a": [...], "b": [...], "model": str, "length": float}: seeds and latent names

        def show_candidates(model, text, psi):
            samples = service.generate(catalog, model, text, psi)
            return [(service.squeeze(img), str(s)) for img, s in zip(samples.images, samples.seeds)], samples.seeds

        def add(evt: gr.SelectData, seeds_shown, group, a, b, c):
            texts = dict(zip(GROUPS, (a, b, c)))
            current = service.ref_list(texts[group], what=f"group {group}",  # seeds and latent names (img-...)
                                       max_count=service.MAX_GROUP_SEEDS) if texts[group].strip() else []
            if len(current) >= service.MAX_GROUP_SEEDS:
                raise gr.Error(f"group {group} already has {service.MAX_GROUP_SEEDS} exemplars; remove one first")
            texts[group] = ",".join(str(s) for s in current + [seeds_shown[evt.index]])
            return [texts[g] for g in GROUPS]

        def show_group(model, text, psi):
            if not text.strip():
                return []
            samples = service.generate(catalog, model, service.ref_list(text, what="group", max_count=service.MAX_GROUP_SEEDS), psi)
            return [(service.squeeze(img), str(s)) for img, s in zip(samples.images, samples.seeds)]

        def remove(evt: gr.SelectData, text):
            seeds = service.ref_list(text, what="group", max_count=service.MAX_GROUP_SEEDS)
            return ",".join(str(s) for i, s in enumerate(seeds) if i != evt.index)

        def run(model, a, b, c, amount_noise, nseed, psi):
            result = service.arithmetic(catalog, model, a, b, c, amount_noise, nseed, psi)
            return result.centre, result.grid, result.pixel

        def run_preset(model, name, count, progress=gr.Progress()):
            def rated(done, total):  # only when the model has no ratings file yet: honest progress instead of a guess
                progress((done, total), desc="The attribute classifier rates the searched seeds (once per model)", unit="seeds")

            groups = service.arithmetic_preset(catalog, model, name, count, progress=rated)
            return [",".join(str(s) for s in groups[g]) for g in GROUPS]

        def save_concept(model, name, a, b, saved):
            name = service.concept_name(name)
            length = service.concept_length(catalog, model, a, b)
            seeds = {g: service.ref_list(t, what=f"group {g}", max_count=service.MAX_GROUP_SEEDS) for g, t in (("a", a), ("b", b))}
            saved = {**saved, name: {**seeds, "model": model, "length": round(length, 3)}}
            note = (f"**{name}** = mean(A) − mean(B) from {model}; its full length is {length:.2f} "
                    "(the amount that adds the whole difference).")
            return saved, gr.update(choices=list(saved), value=name), min(round(length, 2), MAX_AMOUNT), note

        def apply_concept(model, name, saved, seed, value, psi):
            if not name or name not in saved:
                return None
            c = saved[name]
            return service.concept(catalog, model, seed, c["a"], c["b"], value, psi)

        ctx.on([show.click, candidate_seeds.submit, ctx.demo.load, ctx.model.change], show_candidates,
               [ctx.model, candidate_seeds, ctx.truncation], [candidates, shown], trigger_mode="always_last")
        ctx.on_light(candidates.select, add, [shown, target, *boxes.values()], list(boxes.values()))
        for g in GROUPS:
            ctx.on([boxes[g].change, ctx.model.change], show_group, [ctx.model, boxes[g], ctx.truncation], galleries[g],
                   trigger_mode="always_last", show_progress="hidden")
            ctx.on_light(galleries[g].select, remove, boxes[g], boxes[g])
            ctx.on_light(clears[g].click, lambda: "", None, boxes[g])
        def refresh(model, a, b, c, amount_noise, nseed, psi, shown_centre):
            """A new model (another pick, an upload): the shown result again from the same seeds, never the old model's."""
            if shown_centre is None or not all(t.strip() for t in (a, b, c)):
                return None, None, None
            return run(model, a, b, c, amount_noise, nseed, psi)

        inputs = [ctx.model, *boxes.values(), noise, noise_seed, ctx.truncation]
        ctx.on([compute.click, noise.release, noise_seed.submit], run, inputs, [centre, grid, pixel])
        ctx.on(ctx.model.change, refresh, [*inputs, centre], [centre, grid, pixel], show_progress="hidden")
        ctx.on_light([ctx.demo.load, ctx.model.change, preset.change],
                     lambda model, name: service.preset_record(catalog, model, name) if model else "", [ctx.model, preset], preset_note)
        ctx.then(ctx.on(pick.click, run_preset, [ctx.model, preset, preset_count], list(boxes.values())),
                 run, inputs, [centre, grid, pixel])
        ctx.then(ctx.on_light(save.click, save_concept, [ctx.model, concept_name, *list(boxes.values())[:2], concepts],
                              [concepts, concept_pick, amount, concept_note]),
                 apply_concept, [ctx.model, concept_pick, concepts, ctx.seed, amount, ctx.truncation], concept_img)
        ctx.on([concept_pick.change, amount.input, amount.release, ctx.seed.change, ctx.model.change], apply_concept,
               [ctx.model, concept_pick, concepts, ctx.seed, amount, ctx.truncation], concept_img,
               trigger_mode="always_last", show_progress="hidden")
