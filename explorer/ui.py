"""The Gradio app: ``build_app(registry) -> gr.Blocks``. Wiring only; every computation is in ``explorer.service``.

Layout: a header (model picker with its card, the current seed, truncation) shared by the tabs in ``TABS``, and
the public API (``explorer.api``). To add a tab (e.g. "Train"), write ``def train_tab(ctx: Context) -> None`` in
``explorer/tabs/`` and append it to ``TABS``; it gets the shared components through ``ctx``.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from dcgan.errors import DCGANError

from . import service
from .outputs import OutputDir
from .registry import CheckpointRegistry

log = logging.getLogger(__name__)

TITLE = "DCGAN explorer"
MODEL_QUEUE = "model"  # concurrency_id shared by everything that runs a generator: one CPU/GPU, one queue

# Small images are drawn enlarged with nearest-neighbour sampling by the browser; the files stay at native size,
# so downloads (and the API) give the model's real pixels.
CSS = """
.pixelated img, .pixelated canvas, .pixelated video { image-rendering: pixelated; }
.pixelated.big img { width: 100% !important; height: 100% !important; object-fit: contain !important; }
.pixelated .thumbnail-item img, .pixelated .grid-wrap img { object-fit: contain !important; }
.pixelated .grid-wrap.fixed-height { height: auto !important; min-height: 0 !important; max-height: 720px; }
.pixelated .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important; }
#model-row { align-items: end; }
.snippet code { font-size: 12px; }
"""


@dataclass
class Context:
    """What every tab may use: the registry, where files go, and the shared header components."""
    registry: CheckpointRegistry
    out: OutputDir
    demo: gr.Blocks
    model: gr.Dropdown
    seed: gr.Number
    truncation: gr.Slider
    concurrency_limit: int
    training: Any = None  # explorer.training.TrainingManager when the Train tab is on
    uploads: Any = None   # explorer.uploads.UploadStore: the "bring your own generator" box and /upload
    session_models: Any = None  # gr.State: names of this session's uploads (names only, never models)

    def on(self, triggers: Any, fn: Callable, inputs: Any = None, outputs: Any = None, **kwargs: Any) -> Any:
        """An event running ``fn`` in the shared model queue, hidden from the public API (see explorer.api)."""
        options = {"api_visibility": "private", "concurrency_id": MODEL_QUEUE, "concurrency_limit": self.concurrency_limit, **kwargs}
        return gr.on(triggers, guard(self._needs_model(fn, inputs, outputs)), inputs, outputs, **options)

    def then(self, dependency: Any, fn: Callable, inputs: Any = None, outputs: Any = None, **kwargs: Any) -> Any:
        """Run ``fn`` after ``dependency`` succeeds, in the model queue, hidden from the API."""
        options = {"api_visibility": "private", "concurrency_id": MODEL_QUEUE, "concurrency_limit": self.concurrency_limit, **kwargs}
        return dependency.success(guard(self._needs_model(fn, inputs, outputs)), inputs, outputs, **options)

    def _needs_model(self, fn: Callable, inputs: Any, outputs: Any) -> Callable:
        """With no model picked (an empty checkpoints folder), handlers taking the model first leave their outputs alone."""
        first = inputs[0] if isinstance(inputs, (list, tuple)) and inputs else inputs
        if first is not self.model:
            return fn
        count = len(outputs) if isinstance(outputs, (list, tuple)) else 1

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            model = args[0] if args else None
            if not model:
                return gr.skip() if count == 1 else tuple(gr.skip() for _ in range(count))
            return fn(*args, **kwargs)
        return wrapper

    @property
    def url(self) -> str:
        """The app's address for code snippets (its local URL once launched)."""
        return getattr(self.demo, "local_url", None) or "http://127.0.0.1:7860/"

    def on_light(self, triggers: Any, fn: Callable, inputs: Any = None, outputs: Any = None, **kwargs: Any) -> Any:
        """An event for cheap bookkeeping (no generator): not queued behind image work."""
        options = {"api_visibility": "private", "queue": False, "show_progress": "hidden", **kwargs}
        return gr.on(triggers, guard(fn), inputs, outputs, **options)


def guard(fn: Callable) -> Callable:
    """Turn the library's input errors into gr.Error messages; anything else propagates (and is logged by Gradio)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DCGANError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc
    return wrapper


def _header(registry: CheckpointRegistry) -> tuple[gr.Dropdown, gr.Markdown, gr.Button, gr.Number, gr.Slider]:
    names = registry.names()
    gr.Markdown(f"# {TITLE}\nExplore what a DCGAN (Radford et al. 2015) learned. One integer seed is one latent vector "
                "everywhere: here, in the API and in `dcgan sample`." + ("" if names else
                "\n\n**No generators found.** Put one in `checkpoints/<name>/generator.safetensors` or start the app with `--checkpoints DIR`."))
    with gr.Row(elem_id="model-row"):
        model = gr.Dropdown(names, value=names[0] if names else None, label="Model", scale=3)
        refresh = gr.Button("Rescan folders", size="sm", scale=0, min_width=120)
        seed = gr.Number(0, precision=0, minimum=0, maximum=service.MAX_SEED, label="Current seed", scale=1,
                         info="click a sample to choose it")
        truncation = gr.Slider(0.0, 1.0, 1.0, step=0.05, label="Truncation ψ", scale=2, info="z ← ψ·z (1: none; lower: safer, blander)")
    with gr.Accordion("Model card", open=False):
        card = gr.Markdown()
    return model, card, refresh, seed, truncation


def _tabs() -> tuple[Callable[[Context], None], ...]:
    from .tabs.arithmetic import arithmetic_tab
    from .tabs.generate import generate_tab
    from .tabs.interpolate import interpolate_tab
    from .tabs.sliders import sliders_tab

    return (generate_tab, sliders_tab, arithmetic_tab, interpolate_tab)  # then Train, when build_app gets a TrainingManager


def build_app(registry: CheckpointRegistry, *, out: OutputDir | None = None, concurrency_limit: int = 2,
              training: Any = None, uploads: Any = None) -> gr.Blocks:
    """The explorer over ``registry``. Launch with ``launch_options()`` (CSS, theme), ``security_options(...)`` and
    a queue (see app.py). ``uploads``: an explorer.uploads.UploadStore (default: one in a fresh temp folder)."""
    from .api import register_api
    from .tabs.upload import register_upload_api, upload_panel
    from .uploads import UploadStore

    out = out or OutputDir()
    uploads = uploads or UploadStore(registry)
    with gr.Blocks(title=TITLE, delete_cache=(900, 3600)) as demo:
        model, card, refresh, seed, truncation = _header(registry)
        session_models = gr.State([])
        ctx = Context(registry, out, demo, model, seed, truncation, concurrency_limit, training, uploads, session_models)
        upload_panel(ctx)
        with gr.Tabs():
            for tab in _tabs():
                tab(ctx)
            if training is not None:
                from .tabs.train import train_tab

                train_tab(ctx)
        register_api(registry, out, concurrency_limit=concurrency_limit)
        register_upload_api(uploads)
        if training is not None:
            from .tabs.train import register_training_api

            register_training_api(training, registry)

        def rescan(current: str | None, mine: list[str]) -> Any:
            names = registry.rescan()
            names += [n for n in mine if registry.is_registered(n)]  # this session's uploads stay in its picker
            return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

        ctx.on_light(refresh.click, rescan, [model, session_models], model)
        ctx.on_light([demo.load, model.change], lambda name: service.model_card(registry, name) if name else "", model, card)
    return demo


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``demo.launch`` that belong to the look (Gradio 6 takes css/theme at launch)."""
    return {"css": CSS, "theme": gr.themes.Soft()}


def security_options(out: OutputDir, *, blocked: list[Any] = ()) -> dict[str, Any]:
    """``demo.launch`` arguments that decide what may come in and what is served: uploads up to the largest
    generator accepted; files served only from the app's output folder (plus Gradio's own cache of uploads and
    returned files); ``blocked`` (the uploads folder, checkpoint and run folders, the source tree) never served."""
    from .uploads import MAX_UPLOAD_BYTES

    return {"max_file_size": MAX_UPLOAD_BYTES, "allowed_paths": [str(out.root)], "blocked_paths": [str(p) for p in blocked]}
