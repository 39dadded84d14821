"""Shareable links and downloads: the app's state lives in the URL's query (explorer.url_state), a "Copy link"
button gives it, and opening the link sets every component back before anything renders; the Generate grid comes
as a .zip of native-size PNGs and the current latent as .npy.

``share_panel(ctx)`` goes before the tabs (it makes ``ctx.restored``, which the tabs' load events wait for);
``wire_sharing(ctx, panel, tabs)`` after them (it reads the components the tabs put in ``ctx.shared``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from dcgan.directions import LABELLED_KINDS
from dcgan.errors import LatentError
from dcgan.project import check_latents

from .. import service
from ..downloads import grid_zip, latent_npy
from ..url_state import ShareState, decode, encode
from .context import Context, guard
from .tabs.sliders import SLIDER_RANGE, featured

# the server writes the query; the browser knows its own address (behind a proxy the server does not)
LINK_JS = """(query) => {
  const url = window.location.origin + window.location.pathname + query;
  window.history.replaceState(null, "", url);
  return url;
}"""
COPY_JS = "(url) => { if (navigator.clipboard) { navigator.clipboard.writeText(url).catch(() => {}); } }"
# ShareState fields set straight from one component each (the sliders go through the tab's ``slider_link``)
PLAIN = ("seeds", "keep_fixed", "a", "b", "c", "noise", "noise_seed", "keyframes", "frames", "method", "loop", "fps")


def ready(path: Any) -> gr.DownloadButton:
    """A download button holding ``path``, enabled only once there is a file (a click before would do nothing)."""
    return gr.DownloadButton(value=str(path) if path else None, interactive=path is not None)


@dataclass
class SharePanel:
    query: gr.Textbox            # hidden: the query the server wrote; LINK_JS turns it into the link
    link: gr.Textbox
    note: gr.Markdown
    grid_zip: gr.DownloadButton
    latent_npy: gr.DownloadButton
    tab: gr.State                # the selected tab's id
    restored: gr.State           # counts restores; its change is ctx.restored


def share_panel(ctx: Context) -> SharePanel:
    with gr.Row():
        copy = gr.Button("Copy link", size="sm", scale=0, min_width=110, elem_id="copy-link")
        link = gr.Textbox(label="Link to this state", show_label=False, interactive=False, buttons=["copy"], scale=4,
                          elem_id="share-link", placeholder="the link appears once the page has loaded")
        zipped = gr.DownloadButton("Grid (.zip of PNGs)", size="sm", scale=0, min_width=170, interactive=False, elem_id="download-grid")
        latent = gr.DownloadButton("Latent z (.npy)", size="sm", scale=0, min_width=150, interactive=False, elem_id="download-latent")
    note = gr.Markdown(elem_id="share-note")
    panel = SharePanel(gr.Textbox(visible="hidden", elem_id="share-query"), link, note, zipped, latent, gr.State("generate"),
                       gr.State(0))
    copy.click(None, link, None, js=COPY_JS, api_visibility="private", queue=False)
    ctx.restored = panel.restored.change
    return panel


def wire_sharing(ctx: Context, panel: SharePanel, tabs: gr.Tabs) -> None:
    catalog, header = ctx.catalog, ctx.header
    tab_ids = [t.id for t in tabs.children if isinstance(t, gr.Tab)]  # by position, as the browser's select event counts
    plain = {name: ctx.shared[name] for name in PLAIN if name in ctx.shared}
    sliders, slot_names = ctx.shared.get("sliders", []), ctx.shared.get("slot_names")
    shown, slider_link = ctx.shared.get("shown"), ctx.shared.get("slider_link")

    def slider_request(model: str, state: ShareState, notes: list[str]) -> dict:
        """The sliders' part of the link, without amounts the sliders cannot show or directions the model lacks."""
        known = {d["name"] for d in service.direction_info(catalog, model)}
        pending = service.directions_status(catalog, model)[0]  # labelled ones may still come: do not judge yet
        amounts = {}
        for name, value in state.amounts.items():
            if abs(value) > SLIDER_RANGE:
                notes.append(f"amounts: {name} {value:g} is beyond the sliders' ±{SLIDER_RANGE:g} (the /edit API takes it)")
            elif name not in known and not pending:
                notes.append(f"amounts: model {model!r} has no direction {name!r}")
            else:
                amounts[name] = value
        return {"model": model, "shown": state.shown, "amounts": amounts}

    def latent_seed(model: str, state: ShareState, notes: list[str]) -> int | str:
        """The link's current seed: its latent (z=) kept here under its name, else its seed."""
        if state.latent is None:
            return state.seed
        try:
            z = check_latents(np.asarray(state.latent, np.float32), catalog.state(model).model.z_dim, what="z")
        except LatentError as exc:
            notes.append(f"{exc} (model {model!r})")
            return state.seed
        return catalog.latents.add(z[0])

    def restore(count: int, current: str | None, request: gr.Request) -> dict:
        params = dict(request.query_params) if request else {}
        if not params:
            return {panel.restored: count + 1}
        state, notes = decode(params, tabs=tuple(t for t in tab_ids if t is not None))
        names = service.picker_names(catalog)
        model = state.model if state.model in names else current
        if state.model is not None and state.model not in names:
            notes.insert(0, f"model {state.model!r} is not on this server; showing {model!r}")
        values = {header.seed: state.seed, header.seed_box: state.seed, header.truncation: state.truncation,
                  tabs: gr.Tabs(selected=state.tab),
                  panel.tab: state.tab, **{c: getattr(state, name) for name, c in plain.items()}}
        if model:
            values[header.model] = model
            values[header.seed] = values[header.seed_box] = latent_seed(model, state, notes)
            if slider_link is not None:
                values[slider_link] = slider_request(model, state, notes)
        if notes:
            gr.Warning("Parts of the link were ignored; the note under the link says which.")
        values[panel.note] = "Restored from the link." + "".join(f"\n- ignored: {n}" for n in notes)
        return {**values, panel.restored: count + 1}

    restore_outputs = [header.model, header.seed, header.seed_box, header.truncation, tabs, panel.tab, *plain.values(), panel.note,
                       panel.restored]
    restore_outputs += [slider_link] if slider_link is not None else []
    # queued, not queue=False: a State's change event (ctx.restored) fires only after queued events
    ctx.demo.load(guard(restore), [panel.restored, header.model], restore_outputs, api_visibility="private",
                  show_progress="hidden", concurrency_limit=None)

    def query(model, seed, psi, tab, *rest) -> str:
        """The link's query for what the components show now; a latent name's values go in the link (z=), as
        another visitor's session does not know the name."""
        state = ShareState(model=model, seed=seed, truncation=psi, tab=tab, **dict(zip(plain, rest)))
        if isinstance(seed, str):
            state.seed = 0
            try:
                state.latent = tuple(catalog.latents.get(seed, catalog.state(model).model.z_dim).tolist()) if model else None
            except LatentError:
                state.latent = None  # forgotten meanwhile: the link leaves the current seed out
        if slot_names is not None:
            names, chosen, *amounts = rest[len(plain):]
            state.amounts = {n: float(v) for n, v in zip(names, amounts) if n and v}
            labelled = [d["name"] for d in service.direction_info(catalog, model) if d["kind"] in LABELLED_KINDS] if model else []
            state.shown = None if list(chosen or []) == featured(labelled) else list(chosen or [])
        return encode(state)

    inputs = [header.model, header.seed, header.truncation, panel.tab, *plain.values()]
    inputs += [slot_names, shown, *sliders] if slot_names is not None else []
    changes = [c.change for c in inputs if not isinstance(c, gr.State) or c is header.seed]
    ctx.on_light([ctx.restored, *changes], query, inputs, panel.query, trigger_mode="always_last")
    panel.query.change(None, panel.query, panel.link, js=LINK_JS, api_visibility="private", queue=False, show_progress="hidden")

    def pick_tab(evt: gr.SelectData) -> Any:
        return tab_ids[evt.index] if isinstance(evt.index, int) and 0 <= evt.index < len(tab_ids) and tab_ids[evt.index] else gr.skip()

    ctx.on_light(tabs.select, pick_tab, None, panel.tab).then(guard(query), inputs, panel.query, api_visibility="private", queue=False,
                                                               show_progress="hidden")
    if slider_link is not None:  # the user picked a model: the link's slider amounts no longer apply
        ctx.on_light(header.model.input, lambda: None, None, slider_link)

    grid_seeds = ctx.shared.get("grid_seeds")
    if grid_seeds is not None:
        ctx.on([grid_seeds.change, header.model.change, header.truncation.release],
               lambda model, seeds, psi: ready(grid_zip(catalog, model, seeds, psi, out=ctx.out) if seeds else None),
               [header.model, grid_seeds, header.truncation], panel.grid_zip, trigger_mode="always_last", show_progress="hidden")
    ctx.on([ctx.restored, header.seed.change, header.model.change, header.truncation.release],
           lambda model, seed, psi: ready(latent_npy(catalog, model, seed, psi, out=ctx.out)),
           [header.model, header.seed, header.truncation], panel.latent_npy, trigger_mode="always_last", show_progress="hidden")
