"""``build_app(catalog) -> gr.Blocks``: the header (model picker with its card, the current seed, truncation), the
tabs of ``explorer.ui.tabs`` in ``TABS`` order, and the public API. Assembly only: each tab wires itself up.

To add a tab, write ``def <name>_tab(ctx: Context) -> None`` in ``explorer/ui/tabs/`` and list it in ``TABS``; it
gets the shared components through ``ctx``.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from dcgan.errors import DCGANError

from .. import service
from ..derived import Catalog
from ..outputs import OutputDir
from ..training import TrainingManager
from ..uploads import MAX_UPLOAD_BYTES, UploadStore
from .api import register_api
from .context import Context, Header
from .fairness import QueueAdmission, VisitorBudget
from .quota import UploadQuota
from .share import share_panel, wire_sharing
from .tabs.arithmetic import arithmetic_tab
from .tabs.generate import generate_tab
from .tabs.inside import inside_tab, register_inside_api
from .tabs.interpolate import interpolate_tab
from .tabs.project import project_tab, register_project_api
from .tabs.sliders import sliders_tab
from .tabs.train import register_training_api, train_tab
from .tabs.upload import register_upload_api, upload_panel

TITLE = "DCGAN explorer"
# the tabs in order; Train follows them when build_app gets a TrainingManager
TABS = (generate_tab, sliders_tab, arithmetic_tab, interpolate_tab, project_tab, inside_tab)

# Small images are drawn enlarged with nearest-neighbour sampling by the browser; the files stay at native size,
# so downloads (and the API) give the model's real pixels. Slider labels wrap beside their number box, never push it
# out of line. On a phone a gallery reflows to tiles of at least 76 px (3-4 columns at 390 px) instead of 8 tiny ones.
CSS = """
.pixelated img, .pixelated canvas, .pixelated video { image-rendering: pixelated; }
.pixelated.big img { width: 100% !important; height: 100% !important; object-fit: contain !important; }
.pixelated .thumbnail-item img, .pixelated .grid-wrap img { object-fit: contain !important; }
.pixelated .grid-wrap.fixed-height { height: auto !important; min-height: 0 !important; max-height: 720px; }
.pixelated .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important; }
#model-row { align-items: end; }
.snippet code { font-size: 12px; }
.dir-slider .head { flex-wrap: nowrap; align-items: flex-start; gap: 6px; }
.dir-slider .head label { min-width: 0; flex: 1 1 auto; }
.dir-slider .head .tab-like-container { flex: 0 0 auto; }
@media (max-width: 640px) {
  .pixelated .grid-container.grid-container { grid-template-columns: repeat(auto-fill, minmax(76px, 1fr)) !important; }
}
"""


def _header(names: list[str]) -> tuple[Header, list[gr.Component], gr.Button]:
    gr.Markdown(f"# {TITLE}\nExplore what a DCGAN (Radford et al. 2015) learned. One integer seed is one latent vector "
                "everywhere: here, in the API and in `dcgan sample`." + ("" if names else
                "\n\n**No generators found.** Put one in `checkpoints/<name>/generator.safetensors` "
                "or start the app with `--checkpoints DIR`."))
    with gr.Row(elem_id="model-row"):
        model = gr.Dropdown(names, value=names[0] if names else None, label="Model", scale=3)
        refresh = gr.Button("Rescan folders", size="sm", scale=0, min_width=120)
        seed_box = gr.Textbox("0", label="Current seed", scale=1, max_lines=1, elem_id="seed-box",
                              info="a seed or an img-… latent; Enter")
        truncation = gr.Slider(0.0, 1.0, 1.0, step=0.05, label="Truncation ψ", scale=2, info="z ← ψ·z (1: none; lower: safer, blander)")
    with gr.Accordion("Model card", open=False):
        with gr.Row():
            card = gr.Markdown(elem_id="model-card")
            picture = gr.Image(label="Samples", format="png", height=280, interactive=False, scale=0, min_width=280,
                               elem_id="model-card-picture")
    return Header(model, gr.State(0), seed_box, truncation, gr.State([])), [card, picture], refresh


def _card(catalog: Catalog, name: str | None) -> tuple[Any, Any]:
    if not name:
        return "", None
    card = service.model_card(catalog, name)
    return card.markdown, gr.update(value=card.picture, label=card.caption or "Samples", visible=card.picture is not None)


def wire_seed_box(ctx: Context) -> None:
    """What is typed in the current-seed box becomes the current seed once checked; anything else is refused with a
    warning and the box shows the current seed again (no tab sees the bad entry). A latent that does not fit a newly
    picked model gives way to seed 0."""
    catalog, header = ctx.catalog, ctx.header

    def choose(model: str | None, text: str, current: int | str) -> int | str:
        try:
            return service.current_seed(catalog, model, text)
        except DCGANError as exc:
            gr.Warning(f"{exc}. The current seed stays {current}.")
            return current

    def fit(model: str | None, current: int | str) -> Any:
        if not isinstance(current, str) or not model:
            return gr.skip()
        try:
            service.current_seed(catalog, model, current)
        except DCGANError as exc:
            gr.Warning(f"{exc}. The current seed is now 0.")
            return 0
        return gr.skip()

    ctx.set_seed([header.seed_box.submit, header.seed_box.blur], choose, [header.model, header.seed_box, header.seed])
    ctx.set_seed(header.model.change, fit, [header.model, header.seed])


def build_app(catalog: Catalog, *, out: OutputDir | None = None, concurrency_limit: int = 2,
              training: TrainingManager | None = None, uploads: UploadStore | None = None,
              budget: VisitorBudget | None = None) -> gr.Blocks:
    """The explorer over ``catalog``. Launch with ``launch_options()`` (CSS, theme), ``security_options(...)`` and
    a queue (see app.py). ``uploads``: an explorer.uploads.UploadStore (default: one in a fresh temp folder).
    ``budget``: each visitor's share of generator time (explorer.ui.fairness; app.py sets one in public mode)."""
    out = out or OutputDir()
    uploads = uploads or UploadStore(catalog.registry)
    with gr.Blocks(title=TITLE, delete_cache=(900, 3600)) as demo:
        header, card, refresh = _header(service.picker_names(catalog))
        ctx = Context(catalog, out, demo, header, concurrency_limit, uploads, training, budget)
        wire_seed_box(ctx)
        share = share_panel(ctx)  # before the tabs: their load events wait for a shared link's state
        upload_panel(ctx)
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # on a phone every tab stays one tap away, not behind a menu
            for tab in TABS:
                tab(ctx)
            if training is not None:
                train_tab(ctx)
        wire_sharing(ctx, share, tabs)
        register_api(catalog, out, concurrency_limit=concurrency_limit, budget=budget)
        register_inside_api(catalog, out, concurrency_limit=concurrency_limit, budget=budget)
        register_upload_api(uploads)
        register_project_api(catalog, out, concurrency_limit=concurrency_limit, budget=budget)
        if training is not None:
            register_training_api(training, catalog, out)

        def rescan(current: str | None, mine: list[str]) -> Any:
            service.refresh(catalog)
            names = service.picker_names(catalog, mine)  # this session's uploads stay in its picker
            return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

        ctx.on_light(refresh.click, rescan, [header.model, header.session_models], header.model)
        ctx.on_light([demo.load, header.model.change], lambda name: _card(catalog, name), header.model, card)
    return demo


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``demo.launch`` that belong to the look (Gradio 6 takes css/theme at launch)."""
    return {"css": CSS, "theme": gr.themes.Soft()}


def security_options(out: OutputDir, *, blocked: list[Any] = (), budget: VisitorBudget | None = None, trust_forwarded: bool = False,
                     **quota: Any) -> dict[str, Any]:
    """``demo.launch`` arguments that decide what may come in and what is served: uploads up to the largest
    generator accepted, within a disk quota (explorer.ui.quota); files served only from the app's output folder
    (plus Gradio's own cache of uploads and returned files); ``blocked`` (the uploads folder, checkpoint and run
    folders, the source tree) never served. ``quota``: UploadQuota's limits (max_total_bytes, per_client_bytes).
    ``budget``: the one given to build_app, so that a visitor over it is refused before joining the queue.
    ``trust_forwarded``: a proxy (a Hugging Face Space's) writes X-Forwarded-For; anywhere else a client could."""
    middleware = [Middleware(UploadQuota, trust_forwarded=trust_forwarded, **quota)]
    middleware += [Middleware(QueueAdmission, budget=budget)] if budget else []
    return {"max_file_size": MAX_UPLOAD_BYTES, "allowed_paths": [str(out.root)], "blocked_paths": [str(p) for p in blocked],
            "app_kwargs": {"middleware": middleware}}
