"""Your image tab: upload a photo (or draw a digit), see the crop the model will use, project it into the latent space
(dcgan.project) and get a latent name (img-<sha12>) that every seed box and seed-taking endpoint accepts; slide it
here. Also the /project, /latent and /latent_upload endpoints. No ``from __future__ import annotations``: the API's
type hints become its schemas."""
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder

from dcgan.errors import LatentError
from dcgan.project import INPUT_ADVICE, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, PRESETS, ImageError

from ... import service
from ...derived import Catalog
from ...outputs import OutputDir
from ..context import Context, add_endpoints
from ..fairness import VisitorBudget


def _received(file: Any, what: str) -> Path:
    """The server path of a file this client uploaded through Gradio; a bare path from an API caller is refused."""
    if isinstance(file, FileData):
        file = file.model_dump()
    path = file.get("path") if isinstance(file, dict) else file
    if not isinstance(path, str) or not path:
        raise ImageError(f"no {what}: send the file itself (gradio_client: handle_file(path))")
    path = Path(path)
    if not path.resolve().is_relative_to(Path(get_upload_folder()).resolve()):
        raise ImageError(f"{path.name}: not an uploaded file; send the file itself (gradio_client: handle_file(path))")
    return path


def _quality_markdown(quality: dict) -> str:
    lines = [f"**PSNR** {quality['psnr']:.1f} dB"]
    if "feature_distance" in quality:
        lines.append(f"**feature distance** {quality['feature_distance']:.3f} (classifier embedding, relative)")
    if "original" in quality:
        lines.append(f"**class** {quality['original']} → {quality['reconstructed']}")
    elif "probabilities" in quality:
        lines.append(f"**attributes agreeing** {100 * quality['agreement']:.0f}%")
        shown = [n for n in ("Smiling", "Male", "Eyeglasses", "Young", "Blond_Hair") if n in quality["probabilities"]]
        lines += [f"{n}: {quality['probabilities'][n][0]:.2f} → {quality['probabilities'][n][1]:.2f}" for n in shown]
    return "  \n".join(lines)


def project_tab(ctx: Context) -> None:
    catalog, out = ctx.catalog, ctx.out
    with gr.Tab("Your image", id="project"):
        gr.Markdown(f"Find the latent of your own image. Up to {MAX_IMAGE_SIDE} px a side and {MAX_IMAGE_BYTES // 2**20} MB, "
                    "any format PIL reads. The result gets a name (`img-…`) that the seed boxes of the other tabs accept "
                    "(e.g. `3, img-0123456789ab, 42`); **Use as current seed** puts it in the header's box.")
        advice = gr.Markdown(elem_id="project-advice")
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Your image", type="filepath", sources=["upload", "clipboard", "webcam"], elem_id="project-image")
                with gr.Accordion("…or draw (digit models)", open=False):
                    sketch = gr.Sketchpad(type="numpy", label="Sketch", elem_id="project-sketch")
                mode = gr.Radio(list(PRESETS), value="fast", label="Mode",
                                info="fast: for trying (1.5-4 s a face on 2 CPU cores); full: closer (2x fast's time); "
                                     "sharp: the closest pixels (7x); all three keep the attributes")
                go = gr.Button("Project", variant="primary", elem_id="project-go")
            crop = gr.Image(label="What the model sees", format="png", interactive=False, elem_classes=["pixelated", "big"],
                            elem_id="project-crop")
            reconstruction = gr.Image(label="Reconstruction G(z)", format="png", interactive=False, elem_classes=["pixelated", "big"],
                                      elem_id="project-reconstruction")
        with gr.Row():
            quality = gr.Markdown(elem_id="project-quality")
            with gr.Column():
                name = gr.Textbox(label="Latent name (use it as a seed anywhere)", interactive=False, elem_id="project-name")
                use = gr.Button("Use as current seed", interactive=False, elem_id="project-use")
                gr.Markdown("Then Generate, Latent sliders, the arithmetic's concept slider and Inside work on it.")
            npy = gr.File(label="Latent .npy (float32 [z_dim])")
        with gr.Accordion("Slide it", open=True):
            with gr.Row():  # the edited image beside its slider, so it is in view while the slider is dragged
                with gr.Column():
                    direction = gr.Dropdown([], label="Direction", elem_id="project-direction")
                    amount = gr.Slider(-service.MAX_AMOUNT, service.MAX_AMOUNT, 0.0, step=0.25, label="Amount", elem_id="project-amount")
                edited = gr.Image(label="Edited", format="png", interactive=False, elem_classes=["pixelated", "big"],
                                  elem_id="project-edited")
        with gr.Accordion("Bring a latent back (.npy)", open=False):
            upload = gr.File(label="Latents .npy ([z_dim] or [N, z_dim])", file_types=[".npy"], type="filepath")
            uploaded = gr.Textbox(label="Names", interactive=False)

        def describe(model):
            dataset = catalog.state(model).model.dataset if model else ""
            tip = INPUT_ADVICE.get(dataset)
            names = service.directions(catalog, model) if model else []
            return (f"Works best with {tip}." if tip else ""), gr.update(choices=names, value=names[0] if names else None)

        def preview(model, path):
            return service.prepared_image(catalog, model, str(_received(path, "image"))) if path else None

        def run(model, path, drawing, chosen_mode, progress=gr.Progress()):
            composite = drawing.get("composite") if isinstance(drawing, dict) else None
            if path:
                source: Any = str(_received(path, "image"))
            elif composite is not None and composite.any():
                source = composite
            else:
                raise ImageError("upload an image (or draw one) first")
            result = service.project(catalog, model, source, chosen_mode, progress=lambda done, total: progress(done / total))
            file = service.latent_file(catalog, model, result.name, out=out)
            return result.prepared, result.reconstruction, _quality_markdown(result.quality), result.name, str(file)

        def slide(model, latent, chosen, value):
            if not latent:
                return None
            return service.edit(catalog, model, latent, {chosen: value} if chosen else {})

        def use_latent(latent):
            if not latent:
                return gr.skip()
            gr.Info(f"{latent} is the current seed.")
            return latent

        def bring_back(model, path):
            if not path:
                return ""
            data = _received(path, "latent file").read_bytes()
            return ", ".join(service.latent_upload(catalog, model, data))

        ctx.on([ctx.demo.load, ctx.model.change], describe, ctx.model, [advice, direction])
        ctx.on(image.change, preview, [ctx.model, image], crop, show_progress="hidden")
        ctx.on(go.click, run, [ctx.model, image, sketch, mode], [crop, reconstruction, quality, name, npy])
        # live, as the Latent sliders tab: every drag step asks for an image, "always_last" drops stale ones, and no progress
        # overlay covers the image while the slider moves
        ctx.on([amount.input, amount.release, direction.change, name.change], slide, [ctx.model, name, direction, amount], edited,
               trigger_mode="always_last", show_progress="hidden")
        ctx.on(upload.change, bring_back, [ctx.model, upload], uploaded)
        ctx.on_light(name.change, lambda latent: gr.update(interactive=bool(latent)), name, use)
        ctx.set_seed(use.click, use_latent, name)


def register_project_api(catalog: Catalog, out: OutputDir, *, concurrency_limit: int, budget: VisitorBudget | None = None) -> None:
    """/project, /latent and /latent_upload for gradio_client (call inside gr.Blocks), metered against ``budget``
    when there is one."""

    def project(model: str, image: FileData, mode: str = "fast") -> tuple[str, FileData, dict]:
        """Project an image (handle_file(path); up to 4096 px a side, 20 MB) into the model's latent space: (latent
        name img-<sha12>, accepted wherever a seed is; reconstruction PNG; {"psnr", "feature_distance", "agreement",
        "probabilities"...}). mode: "fast", "full" or "sharp" (dcgan.project.PRESETS)."""
        result = service.project(catalog, model, str(_received(image, "image")), mode)
        png = out.png(result.reconstruction, f"{model}-{result.name}")
        return result.name, FileData(path=str(png)), result.quality

    def latent(model: str, name: str) -> FileData:
        """The latent called ``name`` as a .npy file (float32 [z_dim])."""
        return FileData(path=str(service.latent_file(catalog, model, name, out=out)))

    def latent_upload(model: str, file: FileData) -> list[str]:
        """Names for the latents in a .npy (handle_file(path)) of shape [z_dim] or [N, z_dim]: float, finite,
        |z_i| <= 20; usable wherever a seed is."""
        if not isinstance(file, (dict, FileData)):
            raise LatentError("file: send the .npy itself with gradio_client.handle_file(path), not a path string")
        return service.latent_upload(catalog, model, _received(file, "latent file").read_bytes())

    add_endpoints((project, latent, latent_upload), concurrency_limit=concurrency_limit, budget=budget)
