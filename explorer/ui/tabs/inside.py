"""Inside tab: G's feature maps of the current seed, dropping maps by hand and forgetting an attribute (the paper's
§6.3.1); D's units as grids of top-activating patches and their guided-backprop maps (§6.2); the probe table (§5).
Also the public endpoints of these actions (``register_inside_api``).
"""
from typing import Any, Optional, Union

import gradio as gr
from gradio.data_classes import FileData

from dcgan.errors import DCGANError

from ... import inside
from ...derived import Catalog
from ...outputs import OutputDir
from ..context import Context, add_endpoints
from ..fairness import VisitorBudget

INTRO = """What the networks learned inside (Radford et al. 2015, sections 5 and 6). **G's feature maps**: each layer's
channels for the current seed (brighter: stronger, one scale per layer). Drop maps by number and the image is redrawn
without them, everywhere; **Forget** finds the maps that draw an attribute (the classifier's input gradient says where
it is) and drops them, as the paper made its generator forget windows. **D's units** (when the model ships its
discriminator): the training patches that excite a unit most; pick a unit for its guided-backpropagation map on the
current seed."""


def _parse_maps(text: str) -> list[int]:
    """'3, 17 40' -> [3, 17, 40]; ValueError names a bad entry."""
    parts = [p for p in text.replace(",", " ").split() if p]
    if len(parts) > inside.MAX_DROPS:
        raise DCGANError(f"at most {inside.MAX_DROPS} maps")
    if not all(p.isdigit() for p in parts):
        raise DCGANError(f"maps: write numbers separated by commas, e.g. 3, 17, 40 (got {text[:40]!r})")
    return [int(p) for p in parts]


def _layer_choices(layers: list[dict[str, int]], what: str) -> list[tuple[str, int]]:
    return [(f"{layer['layer']}: {layer[what]} × {layer['side']}x{layer['side']}", layer["layer"]) for layer in layers]


def inside_tab(ctx: Context) -> None:
    catalog = ctx.catalog
    with gr.Tab("Inside", id="inside"):
        gr.Markdown(INTRO)
        drops = gr.State({})
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Current seed, with the dropped maps", format="png", height=256, interactive=False,
                                 elem_classes=["pixelated", "big"], elem_id="inside-image")
            with gr.Column(scale=2):
                g_layer = gr.Dropdown([], label="G layer (maps × side)", elem_id="inside-g-layer")
                maps_text = gr.Textbox("", label="Maps dropped in this layer", placeholder="e.g. 3, 17, 40",
                                       info=f"numbers separated by commas; at most {inside.MAX_DROPS} in all layers",
                                       elem_id="inside-drops")
                with gr.Row():
                    apply_btn = gr.Button("Drop these maps", variant="primary", elem_id="inside-apply")
                    strongest_btn = gr.Button("Drop this seed's 8 strongest")
                    clear_btn = gr.Button("Clear all drops")
                renorm = gr.Checkbox(False, label="Re-estimate BatchNorm statistics after dropping (as `dcgan forget` does; a few seconds)",
                                     elem_id="inside-renorm")
                drops_note = gr.Markdown()
        feature_grid = gr.Image(label="Feature maps of the layer (map i at row i // columns; dropped: black)", format="png",
                                interactive=False, elem_classes=["pixelated"], elem_id="inside-maps")
        strongest = gr.State([])
        with gr.Accordion("Forget an attribute (section 6.3.1)", open=False):
            gr.Markdown(f"Drops maps of the G layer chosen above (on the shipped celeba-64 pick the 4x4 layer 0 for "
                        f"Eyeglasses (`dcgan forget`: gone from 81% of held-out seeds at +23% FID); the paper's "
                        f"second-highest layer, the default, costs far more quality). Fits on seeds 0-{inside.FORGET_FIT - 1}, reports on "
                        f"{inside.FORGET_EVAL} held-out seeds from 1,000,000 (about a minute on a CPU; `dcgan forget` measures "
                        "it at full size with FID). The dropped maps then apply above.")
            with gr.Row():
                attribute = gr.Dropdown([], label="Attribute", elem_id="inside-attribute")
                forget_btn = gr.Button("Forget it", elem_id="inside-forget")
            forget_note = gr.Markdown()
            forget_grid = gr.Image(label="Seeds that had it (top) and the same seeds without the maps (bottom)", format="png",
                                   interactive=False, elem_classes=["pixelated"])
        with gr.Accordion("D's units (section 6.2) and the probe (section 5)", open=False):
            d_note = gr.Markdown()
            with gr.Row():
                d_layer = gr.Dropdown([], label="D layer (units × side)", elem_id="inside-d-layer")
                source = gr.Radio(list(inside.SOURCES), value="real", label="Images ranked")
                units_btn = gr.Button("Show top units", elem_id="inside-units")
            with gr.Row():
                with gr.Column(scale=3):
                    units_grid = gr.Image(label="Top units: one row per unit (top to bottom as listed), its strongest patches",
                                          format="png", interactive=False, elem_classes=["pixelated"], elem_id="inside-units-grid")
                with gr.Column(scale=2):
                    unit = gr.Radio([], label="Unit: its guided-backprop map on the current seed", elem_id="inside-unit")
                    guided = gr.Image(label="Current seed and the unit's guided-backprop map", format="png", interactive=False,
                                      height=200, elem_classes=["pixelated", "big"], elem_id="inside-guided")
            probe = gr.Markdown()

        def current_drops(state: dict, layer: Any, text: str) -> dict:
            new = {int(k): list(v) for k, v in state.items()}
            if layer is not None:
                maps = _parse_maps(text or "")
                if maps:
                    new[int(layer)] = maps
                else:
                    new.pop(int(layer), None)
            return new

        def summary(state: dict) -> str:
            if not state:
                return "No maps dropped: the ordinary image."
            return "Dropped: " + "; ".join(f"layer {k}: {len(v)} maps" for k, v in sorted(state.items()))

        def draw(model, seed, psi, layer, state, renormalise):
            if layer is None:
                return gr.skip(), gr.skip(), gr.skip()
            f = inside.g_features(catalog, model, seed, layer, psi, state, renormalise)
            return f.image, f.maps, f.strongest

        def pick_model(model):
            layers = inside.g_layers(catalog, model)
            default = max(len(layers) - 2, 0)
            names = inside.attributes(catalog, model)
            has_d = inside.has_discriminator(catalog, model)
            d_choices = _layer_choices(inside.d_layers(catalog, model), "units") if has_d else []
            note = "" if has_d else ("This model ships no discriminator (`discriminator.safetensors` beside its generator), so "
                                     "D's units cannot be shown. `dcgan export RUN_DIR` writes one.")
            return (gr.update(choices=_layer_choices(layers, "maps"), value=default), {}, "",
                    gr.update(choices=names, value="Eyeglasses" if "Eyeglasses" in names else (names[0] if names else None)),
                    gr.update(choices=d_choices, value=d_choices[-1][1] if d_choices else None), note,
                    inside.probe_markdown(inside.probe_results(catalog, model)))

        def show_layer(state, layer):
            return ", ".join(str(m) for m in state.get(int(layer), [])) if layer is not None else ""

        def apply(model, seed, psi, layer, state, text, renormalise):
            new = current_drops(state, layer, text)
            return (new, summary(new), *draw(model, seed, psi, layer, new, renormalise))

        def drop_strongest(model, seed, psi, layer, state, order, renormalise):
            text = ", ".join(str(m) for m in order[:8])
            return (text, *apply(model, seed, psi, layer, state, text, renormalise))

        def clear(model, seed, psi, layer):
            return ({}, "", summary({}), *draw(model, seed, psi, layer, {}, False))

        def run_forget(model, seed, psi, name, layer):
            f = inside.forget(catalog, model, name, layer)
            new = {f.layer: f.maps}
            text = ", ".join(str(m) for m in f.maps)
            return (f.grid, inside.forget_markdown(f), new, gr.update(value=f.layer), text, True, summary(new),
                    *draw(model, seed, psi, f.layer, new, True))

        def run_units(model, layer, src):
            if layer is None:
                raise DCGANError("this model has no discriminator")
            result = inside.d_units_grid(catalog, model, layer, 8, 8, src)
            return result.grid, gr.update(choices=[(f"unit {u}", u) for u in result.units], value=None)

        def show_guided(model, seed, psi, layer, chosen):
            if chosen is None or layer is None:
                return gr.skip()
            return inside.guided_backprop(catalog, model, seed, layer, chosen, psi)

        view = [image, feature_grid, strongest]
        ctx.on([ctx.demo.load, ctx.model.change], pick_model, ctx.model,
               [g_layer, drops, maps_text, attribute, d_layer, d_note, probe])
        ctx.on_light(g_layer.change, show_layer, [drops, g_layer], maps_text)
        ctx.on([g_layer.change, ctx.seed.change, ctx.truncation.release, renorm.input], draw,
               [ctx.model, ctx.seed, ctx.truncation, g_layer, drops, renorm], view, trigger_mode="always_last", show_progress="hidden")
        ctx.on([apply_btn.click, maps_text.submit], apply, [ctx.model, ctx.seed, ctx.truncation, g_layer, drops, maps_text, renorm],
               [drops, drops_note, *view])
        ctx.on(strongest_btn.click, drop_strongest, [ctx.model, ctx.seed, ctx.truncation, g_layer, drops, strongest, renorm],
               [maps_text, drops, drops_note, *view])
        ctx.on(clear_btn.click, clear, [ctx.model, ctx.seed, ctx.truncation, g_layer], [drops, maps_text, drops_note, *view])
        ctx.on(forget_btn.click, run_forget, [ctx.model, ctx.seed, ctx.truncation, attribute, g_layer],
               [forget_grid, forget_note, drops, g_layer, maps_text, renorm, drops_note, *view])
        ctx.on(units_btn.click, run_units, [ctx.model, d_layer, source], [units_grid, unit])
        ctx.on([unit.input, ctx.seed.change, ctx.truncation.release], show_guided, [ctx.model, ctx.seed, ctx.truncation, d_layer, unit],
               guided, trigger_mode="always_last", show_progress="hidden")


def register_inside_api(catalog: Catalog, out: OutputDir, *, concurrency_limit: int, budget: Optional[VisitorBudget] = None) -> None:
    """/g_features, /ablate, /forget, /d_units, /guided_backprop, /probe_results for gradio_client (call inside
    gr.Blocks). ``drops`` are {"layer": [map, ...]} (JSON keys are strings), at most inside.MAX_DROPS maps in all."""

    def png(img, stem: str) -> FileData:
        return FileData(path=str(out.png(img, stem)))

    def g_features(model: str, seed: Union[int, str], layer: int, truncation: float = 1.0, drops: Optional[dict[str, list[int]]] = None,
                   renormalise: bool = False) -> tuple[FileData, FileData, dict]:
        """(G(seed) with the maps ``drops`` ({{"layer": [map, ...]}}, at most {MAX_DROPS}) zeroed, the grid of G layer
        ``layer``'s maps for it (map i at row i // columns, dropped ones black), {{"columns", "strongest": maps by mean
        activation}}). renormalise: re-estimate G's BatchNorm statistics after dropping, as `dcgan forget` does."""
        f = inside.g_features(catalog, model, seed, layer, truncation, drops, renormalise)
        return png(f.image, f"{model}-seed{seed}-ablated"), png(f.maps, f"{model}-seed{seed}-layer{layer}"), \
            {"columns": f.columns, "strongest": f.strongest}

    def ablate(model: str, seed: Union[int, str], drops: Optional[dict[str, list[int]]] = None, truncation: float = 1.0,
               renormalise: bool = False) -> FileData:
        """G(seed) with the feature maps ``drops`` ({{"layer": [map, ...]}}, at most {MAX_DROPS}) zeroed everywhere
        (renormalise: BatchNorm statistics re-estimated after dropping)."""
        return png(inside.ablate(catalog, model, seed, drops, truncation, renormalise), f"{model}-seed{seed}-ablated")

    def forget(model: str, attribute: str, layer: Optional[int] = None) -> tuple[FileData, dict]:
        """Drop the maps of G layer ``layer`` (default: the second-highest) that draw ``attribute`` (a label of the
        model's classifier): (before/after grid of held-out seeds that had it, {{"layer", "maps", "had", "vanished",
        "rates": {{label: {{"before", "after"}}}}}}). Computed once per model, attribute and layer."""
        f = inside.forget(catalog, model, attribute, layer)
        return png(f.grid, f"{model}-forget-{f.attribute}"), {"attribute": f.attribute, "layer": f.layer, "maps": f.maps, **f.report}

    def d_units(model: str, layer: int, count: int = 8, k: int = 8, source: str = "real") -> tuple[FileData, dict]:
        """D's ``count`` (1-{MAX_UNITS}) most strongly firing units of ``layer`` over {POOL} images ("real": training
        images, when the server has them; "generated": seeds 0..{POOL_LAST}), each a row of its ``k`` (1-{MAX_PATCHES})
        top receptive-field patches: (grid PNG, {{"units", "patch_size", "source"}})."""
        result = inside.d_units_grid(catalog, model, layer, count, k, source)
        return png(result.grid, f"{model}-d-layer{layer}"), {"units": result.units, "patch_size": result.patch_size,
                                                             "source": result.source}

    def guided_backprop(model: str, seed: Union[int, str], layer: int, unit: int, truncation: float = 1.0) -> FileData:
        """G(seed) beside the guided-backpropagation map of D's unit (layer, unit) on it (grey 0, brighter: positive)."""
        return png(inside.guided_backprop(catalog, model, seed, layer, unit, truncation), f"{model}-seed{seed}-guided")

    def probe_results(model: str) -> dict:
        """The `dcgan probe` table measured for this model ({{"labels": {{"100": {{"trained", "random", "pixels"}}}}}}), or {{}}."""
        return inside.probe_results(catalog, model)

    for fn in (g_features, ablate, forget, d_units, guided_backprop, probe_results):
        fn.__doc__ = (fn.__doc__ or "").format(**inside.LIMITS)  # the documented limits are the enforced ones
    add_endpoints([probe_results], concurrency_limit=concurrency_limit)  # a stored table: no generator time
    add_endpoints((g_features, ablate, forget, d_units, guided_backprop), concurrency_limit=concurrency_limit, budget=budget)
