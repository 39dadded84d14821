"""Bring your own generator: an upload box under the model picker and the ``/upload`` endpoint (explorer.uploads
does the checking). The uploaded model is added to this session's picker only; other sessions never see its name."""
from pathlib import Path
from typing import Any, Optional

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder

from dcgan.errors import CheckpointError

from ... import service
from ...uploads import MAX_FORM_WIDTH, UploadStore, config_of_file, model_from_form
from ..context import Context, guard


def uploaded_file(file: Any) -> tuple[Path, str]:
    """(server path, original name) of a file Gradio received from this client; a plain path string from an API
    caller, or any file outside Gradio's upload folder, is refused (it would let a caller name server files)."""
    if isinstance(file, FileData):
        file = file.model_dump()
    if isinstance(file, dict) and isinstance(file.get("path"), str):
        path, orig = Path(file["path"]), file.get("orig_name") or Path(file["path"]).name
    elif isinstance(file, str) and file:
        path, orig = Path(file), Path(file).name
    else:
        raise CheckpointError("no file: upload a .safetensors generator (gradio_client: handle_file(path))")
    root = Path(get_upload_folder()).resolve()
    if not path.resolve().is_relative_to(root):
        raise CheckpointError(f"{Path(orig).name}: not an uploaded file; send the file itself (gradio_client: handle_file(path))")
    return path, str(orig)


def upload_panel(ctx: Context) -> None:
    """The "Bring your own generator" accordion; on success the picker switches to the new model."""
    store: UploadStore = ctx.uploads
    with gr.Accordion("Bring your own generator (.safetensors)", open=False):
        gr.Markdown(f"A generator trained elsewhere: a `generator.safetensors` from `dcgan train`, or a plain DCGAN "
                    f"state dict saved with `safetensors.torch.save_file` (then say its config below; a file with our "
                    f"metadata ignores these fields). At most {store.max_bytes // 2**20} MB; pickles (`.pt`, `.pth`, "
                    "`.ckpt`) are refused. The model is explorable in this browser session only.")
        with gr.Row():
            file = gr.File(label="Generator file", file_types=[".safetensors"], type="filepath", scale=2, elem_id="upload-file")
            with gr.Column(scale=3):
                with gr.Row():
                    arch = gr.Radio(["dcgan", "keras"], value="dcgan", label="Architecture")
                    image_size = gr.Dropdown([16, 28, 32, 64, 128, 256], value=64, label="Image size")
                    channels = gr.Radio([1, 3], value=3, label="Channels")
                with gr.Row():
                    z_dim = gr.Number(100, precision=0, minimum=1, maximum=MAX_FORM_WIDTH, label="z_dim")
                    ngf = gr.Number(64, precision=0, minimum=1, maximum=MAX_FORM_WIDTH, label="ngf (generator width)")
                    load = gr.Button("Load generator", variant="primary", elem_id="upload-load")
        note = gr.Markdown(elem_id="upload-note")

    def add(path, *config_and_session):
        *config, session = config_and_session
        if not path:
            raise CheckpointError("choose a .safetensors file first")
        server_path, orig = uploaded_file(path)
        name = store.add(server_path, model_from_form(*config), orig_name=orig)
        session = list(dict.fromkeys([*session, name]))
        choices = service.picker_names(ctx.catalog, session)
        return gr.update(choices=choices, value=name), session, f"Loaded **{orig}** as model `{name}`."

    def fill_form(path):
        """The form as the chosen file says: from its metadata, or from a plain state dict's tensor shapes."""
        if not path:
            return *(gr.skip() for _ in range(5)), ""
        server_path, orig = uploaded_file(path)
        cfg, source = config_of_file(server_path)
        if cfg is None:
            return *(gr.skip() for _ in range(5)), (f"**{Path(orig).name}**: its config could not be read from the file; "
                                                    "fill in the form to match how it was trained.")
        said = ("it carries its config (the form is not used)" if source == "metadata"
                else "a plain state dict; the form is filled in from its tensor shapes")
        return (cfg.arch, cfg.image_size, cfg.channels, cfg.z_dim, cfg.ngf,
                f"**{Path(orig).name}**: {cfg.image_size} px, {cfg.channels} channel{'s' if cfg.channels > 1 else ''}, "
                f"z_dim {cfg.z_dim}, ngf {cfg.ngf} ({cfg.arch}); {said}.")

    file.change(guard(fill_form), file, [arch, image_size, channels, z_dim, ngf, note], api_visibility="private", queue=False,
                show_progress="hidden")
    load.click(guard(add), [file, arch, image_size, channels, z_dim, ngf, ctx.header.session_models],
               [ctx.model, ctx.header.session_models, note], api_visibility="private", concurrency_id="upload", concurrency_limit=1)


def register_upload_api(store: UploadStore) -> None:
    """``/upload`` for gradio_client (call inside gr.Blocks)."""

    def upload(file: FileData, arch: Optional[str] = None, image_size: Optional[int] = None, channels: Optional[int] = None,
               z_dim: Optional[int] = None, ngf: Optional[int] = None) -> str:
        """Register an uploaded .safetensors generator (handle_file(path)); returns its model name ("upload-<sha12>")
        for every other endpoint. The config fields are needed only for a plain state dict without our metadata."""
        if not isinstance(file, (dict, FileData)):
            raise CheckpointError("file: send the file itself with gradio_client.handle_file(path), not a path string")
        server_path, orig = uploaded_file(file)
        return store.add(server_path, model_from_form(arch, image_size, channels, z_dim, ngf), orig_name=orig)

    gr.api(guard(upload), api_name="upload", concurrency_id="upload", concurrency_limit=1)
