"""Service functions of the Inside tab (the paper's §5, §6.2, §6.3.1 by hand): G's feature maps of a seed, the
image with maps dropped, forgetting an attribute, D's units and their guided-backprop maps, the probe table.
Plain functions (catalog, model name, ...) -> uint8 images and JSON-ready dicts; no gradio here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dcgan import forget as forgetting
from dcgan import units as d_units
from dcgan.actions import render_float, squeeze
from dcgan.checkpoints import DISCRIMINATOR_FILE, discriminator_beside, load_discriminator
from dcgan.datasets import batch_to_float
from dcgan.errors import CheckpointError, ConfigError, DatasetError, brief
from dcgan.images import tile_grid, to_uint8
from dcgan.latent import latents_from_seeds

from .derived import Catalog, ModelState, Once
from .service import check_choice, check_int, check_ref, seed_latents
from .validation import check_float

MAX_DROPS = 512            # maps dropped in one /ablate call (all layers together)
MAX_UNITS = 16             # D units shown per layer
MAX_PATCHES = 16           # top patches per unit
POOL = 1000                # images D's units are ranked on (the first training images, or seeds 0..POOL-1)
FORGET_FIT = 1500          # seeds the tab's forget fits on (the CLI's default is 4000)
FORGET_EVAL = 800          # held-out seeds it reports on
MAP_TILE = 24              # feature maps are drawn at least this many pixels wide
RENORMALISE = 4            # batches of 256 latents that re-estimate G's BatchNorm statistics when asked (a few seconds)
ABLATED_CACHE = 4          # ablated copies of G kept per model (the last drop sets)
SOURCES = ("real", "generated")
PROBE_FILE = "probe.json"  # `dcgan probe ... --json CHECKPOINT_DIR/probe.json` puts the table here
LIMITS = {"MAX_DROPS": MAX_DROPS, "MAX_UNITS": MAX_UNITS, "MAX_PATCHES": MAX_PATCHES, "POOL": POOL, "POOL_LAST": POOL - 1}


# ----------------------------------------------------------------------------------------------------------------
# G: feature maps and dropping them

def _drops(value: Any, G: torch.nn.Module) -> dict[int, list[int]]:
    """{layer: [maps]} from a dict (JSON keys may be strings) with at most MAX_DROPS maps; ConfigError otherwise."""
    if value is None or value == {}:
        return {}
    if not isinstance(value, dict) or len(value) > len(forgetting.feature_layers(G)):
        raise ConfigError(f"drops: {brief(value)} must be {{layer: [map indices]}} for G's {len(forgetting.feature_layers(G))} layers")
    drops: dict[int, list[int]] = {}
    for key, maps in value.items():
        layer = int(key) if isinstance(key, str) and key.isdigit() else key
        if not isinstance(maps, (list, tuple)) or len(maps) > MAX_DROPS:
            raise ConfigError(f"drops: layer {brief(key)} must list at most {MAX_DROPS} map indices")
        drops[layer] = list(maps)
    if sum(len(m) for m in drops.values()) > MAX_DROPS:
        raise ConfigError(f"drops: at most {MAX_DROPS} maps at once")
    return forgetting.check_drops(G, drops)


def g_layers(catalog: Catalog, model: str) -> list[dict[str, int]]:
    """G's feature layers: [{"layer", "maps", "side"}], from the latent to the image."""
    m = catalog.state(model).model
    with torch.no_grad():
        shapes = []
        hooks = [bn.register_forward_hook(lambda _m, _i, out: shapes.append(out.shape)) for bn in forgetting.feature_layers(m.G)]
        try:
            m.G(torch.zeros(1, m.z_dim, device=m.device))
        finally:
            for hook in hooks:
                hook.remove()
    return [{"layer": i, "maps": int(s[1]), "side": int(s[-1])} for i, s in enumerate(shapes)]


@dataclass
class Features:
    image: np.ndarray        # uint8 [H, W(, 3)]: G(seed) with ``drops`` applied
    maps: np.ndarray         # uint8 grey grid of the layer's maps (dropped ones black), MAP_TILE px per map at least
    columns: int             # maps per row of the grid (map i at row i // columns)
    strongest: list[int]     # the layer's maps by mean activation on this seed, strongest first


def _ablated(state: ModelState, drops: dict[int, list[int]], renormalise: bool) -> torch.nn.Module:
    """G with ``drops`` zeroed (and its BatchNorm statistics re-estimated if asked), the last ABLATED_CACHE kept."""
    if not drops:
        return state.model.G
    key = ("ablated", tuple(sorted((k, tuple(v)) for k, v in drops.items())), renormalise)
    with state.lock:
        once = state.inside.pop(key, None) or Once()
        state.inside[key] = once  # most recent last
        stale = [k for k in state.inside if k[0] == "ablated"][:-ABLATED_CACHE]
        for k in stale:
            del state.inside[k]
    return once.get(lambda: forgetting.ablate(state.model.G, drops, renormalise=RENORMALISE if renormalise else 0))


def g_features(catalog: Catalog, model: str, seed: Any, layer: Any, truncation: Any = 1.0, drops: Any = None,
               renormalise: Any = False) -> Features:
    """The maps of one G layer for the current seed (with ``drops`` applied to the whole network) and the image."""
    state = catalog.state(model)
    m = state.model
    seed, psi = check_ref(seed), check_float("truncation", truncation, 0.0, 1.0)
    layer = check_int("layer", layer, 0, len(forgetting.feature_layers(m.G)) - 1)
    G = _ablated(state, _drops(drops, m.G), _flag("renormalise", renormalise))
    maps, x = forgetting.feature_maps(G, seed_latents(m, [seed], psi, catalog.latents).to(m.device), layer)
    maps = maps[0].float().cpu()
    scaled = (maps / maps.amax().clamp_min(1e-8)).clamp(0, 1)  # one scale for the layer, so strengths compare
    side = maps.shape[-1]
    repeat = max(1, -(-MAP_TILE // side))
    tiles = (scaled * 255).round().to(torch.uint8).repeat_interleave(repeat, 1).repeat_interleave(repeat, 2)
    columns = int(np.ceil(np.sqrt(len(tiles))))
    grid = tile_grid(tiles[..., None].numpy(), columns, padding=1)
    strongest = maps.flatten(1).mean(1).argsort(descending=True).tolist()
    return Features(squeeze(to_uint8(x)[0]), squeeze(grid), columns, strongest)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: {brief(value)} must be true or false")
    return value


def ablate(catalog: Catalog, model: str, seed: Any, drops: Any = None, truncation: Any = 1.0, renormalise: Any = False) -> np.ndarray:
    """G(seed) with the feature maps ``drops`` ({layer: [maps]}) zeroed everywhere; no drops: the ordinary image."""
    state = catalog.state(model)
    m = state.model
    seed, psi = check_ref(seed), check_float("truncation", truncation, 0.0, 1.0)
    G = _ablated(state, _drops(drops, m.G), _flag("renormalise", renormalise))
    with torch.inference_mode():
        return squeeze(to_uint8(G(seed_latents(m, [seed], psi, catalog.latents).to(m.device)))[0])


@dataclass
class Forgotten:
    attribute: str
    layer: int
    maps: list[int]
    grid: np.ndarray                 # seeds that had the attribute (top row) and the same seeds ablated (bottom row)
    report: dict[str, Any]           # held-out rates: {"had", "vanished", "rates": {label: {"before", "after"}}}


def forget(catalog: Catalog, model: str, attribute: Any, layer: Any = None) -> Forgotten:
    """dcgan.forget at the tab's size (FORGET_FIT fitting seeds, FORGET_EVAL held-out ones, no FID), once per
    model, attribute and layer."""
    state = catalog.state(model)
    uploaded = catalog.registry.is_registered(state.name) and not catalog.labelled_for_uploads
    classifier = None if uploaded else catalog.classifier(state)  # an upload gets no classifier work, whatever data set it claims
    if classifier is None:
        raise ConfigError(f"model {model!r} has no classifier for its data set, so no attribute can be forgotten")
    attribute = check_choice("attribute", attribute, tuple(classifier.label_names))
    m = state.model
    count = len(forgetting.feature_layers(m.G))
    layer = forgetting.default_layer(m.G) if layer in (None, "") else check_int("layer", layer, 0, count - 1)
    with state.lock:
        once = state.inside.setdefault(("forget", attribute, layer), Once())

    def compute() -> Forgotten:
        result = forgetting.forget_attribute(m.G, classifier, attribute, z_dim=m.z_dim, layer=layer, n_fit=FORGET_FIT,
                                             n_eval=FORGET_EVAL, fid_n=0, grid_seeds=8)
        e = result.report["eval"]
        watched = {n: e["rates"][n] for n in result.report["watch"]}
        return Forgotten(attribute, layer, result.plan.maps, result.grid,
                         {"had": e["had"], "vanished": e["vanished"], "seeds": e["seeds"], "rates": watched, "sweep": result.plan.sweep})

    return once.get(compute)


def attributes(catalog: Catalog, model: str) -> list[str]:
    """Labels that can be forgotten: the classifier's, or none (uploads: none)."""
    state = catalog.state(model)
    if catalog.registry.is_registered(state.name) and not catalog.labelled_for_uploads:
        return []
    classifier = catalog.classifier(state)
    return list(classifier.label_names) if classifier is not None else []


# ----------------------------------------------------------------------------------------------------------------
# D: its units and guided backprop

def discriminator(catalog: Catalog, state: ModelState) -> torch.nn.Module:
    """The model's D, loaded once; CheckpointError (which the tab shows) when none ships beside the generator."""
    path = discriminator_beside(state.model.entry.path)
    if catalog.registry.is_registered(state.name) or not path.is_file():
        raise CheckpointError(f"model {state.name!r} has no discriminator beside it ({DISCRIMINATOR_FILE}); "
                              "export one with `dcgan export RUN_DIR`")
    with state.lock:
        once = state.inside.setdefault(("D",), Once())
    return once.get(lambda: load_discriminator(path, device=state.model.device)[0].requires_grad_(False))


def has_discriminator(catalog: Catalog, model: str) -> bool:
    state = catalog.state(model)
    return not catalog.registry.is_registered(state.name) and discriminator_beside(state.model.entry.path).is_file()


def d_layers(catalog: Catalog, model: str) -> list[dict[str, int]]:
    """D's hidden layers: [{"layer", "units", "side"}]."""
    state = catalog.state(model)
    D = discriminator(catalog, state)
    cfg = state.model.info.model
    x = torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size, device=state.model.device)
    out = []
    with torch.no_grad():
        for i, target in enumerate(d_units.hidden_activations(D)):
            shape = d_units.forward_to(D, x, target).shape
            out.append({"layer": i, "units": int(shape[1]), "side": int(shape[-1])})
    return out


def _pool(catalog: Catalog, state: ModelState, source: str) -> tuple[torch.Tensor, list[int] | None]:
    """(x [N, C, H, W] in [-1, 1], seeds or None): the first POOL training images, or G's samples of seeds 0..POOL-1."""
    def load() -> tuple[torch.Tensor, list[int] | None]:
        if source == "real":
            data = catalog.training_data(state)
            return batch_to_float(data.images[:POOL]), None
        seeds = list(range(POOL))
        return render_float(state.model.G, latents_from_seeds(seeds, state.model.z_dim)), seeds

    with state.lock:
        once = state.inside.setdefault(("pool", source), Once())
    return once.get(load)


@dataclass
class Units:
    units: list[int]          # the layer's most strongly firing units, strongest first
    rows: list[np.ndarray]    # uint8 per unit: its top patches left to right (receptive fields, enlarged)
    grid: np.ndarray          # uint8: the rows stacked, one per unit
    patch_size: int           # receptive-field side in input pixels
    source: str               # "real" or "generated" (real needs the training data on the server)


def d_units_grid(catalog: Catalog, model: str, layer: Any, count: Any = 8, k: Any = 8, source: Any = "real") -> Units:
    """The top ``count`` units of D's ``layer`` over the pool, each with its ``k`` top-activating patches; with
    source "real" and no training data on the server, generated samples are used (``source`` says which)."""
    state = catalog.state(model)
    D = discriminator(catalog, state)
    layer = check_int("layer", layer, 0, len(d_units.hidden_activations(D)) - 1)
    count, k = check_int("count", count, 1, MAX_UNITS), check_int("k", k, 1, MAX_PATCHES)
    source = check_choice("source", source, SOURCES)
    try:
        x, _ = _pool(catalog, state, source)
    except DatasetError:
        source = "generated"
        x, _ = _pool(catalog, state, source)
    with state.lock:
        once = state.inside.setdefault(("responses", source, layer), Once())
    responses = once.get(lambda: d_units.unit_responses(D, x, layer))
    chosen = d_units.top_units(responses[0], count)
    patches, _ = d_units.top_patches(D, x, layer, chosen, k, responses=responses)
    size = patches.shape[-1]
    repeat = max(1, -(-MAP_TILE // size))
    tiles = to_uint8(patches.flatten(0, 1).repeat_interleave(repeat, 2).repeat_interleave(repeat, 3))
    per_unit = patches.shape[1]
    rows = [squeeze(tile_grid(tiles[i * per_unit: (i + 1) * per_unit], per_unit, padding=2)) for i in range(len(chosen))]
    return Units(chosen, rows, squeeze(tile_grid(tiles, per_unit, padding=2)), int(size), source)


def guided_backprop(catalog: Catalog, model: str, seed: Any, layer: Any, unit: Any, truncation: Any = 1.0) -> np.ndarray:
    """G(seed) beside the guided-backprop map of D's unit (``layer``, ``unit``) on it (grey: zero; brighter: the
    unit's response grows with that pixel), one row."""
    state = catalog.state(model)
    D = discriminator(catalog, state)
    seed, psi = check_ref(seed), check_float("truncation", truncation, 0.0, 1.0)
    layer = check_int("layer", layer, 0, len(d_units.hidden_activations(D)) - 1)
    widths = d_layers(catalog, model)
    unit = check_int("unit", unit, 0, widths[layer]["units"] - 1)
    x = render_float(state.model.G, seed_latents(state.model, [seed], psi, catalog.latents)).to(state.model.device)
    g = d_units.guided_backprop(D, x, d_units.check_unit(D, layer, unit), unit).cpu()
    shown = g / g.abs().amax().clamp_min(1e-12)  # [-1, 1], 0 stays grey
    return squeeze(tile_grid(to_uint8(torch.cat([x.cpu(), shown])), 2, padding=2))


# ----------------------------------------------------------------------------------------------------------------
# §5: the probe table shipped beside the checkpoint

def probe_results(catalog: Catalog, model: str) -> dict[str, Any]:
    """The `dcgan probe` JSON beside the model (probe.json), or {} when none was measured."""
    path = catalog.state(model).model.entry.path.parent / PROBE_FILE
    if not path.is_file():
        return {}
    try:
        result = json.loads(path.read_text()[:1_000_000])
    except (OSError, json.JSONDecodeError):
        return {}
    return result if isinstance(result, dict) and isinstance(result.get("labels"), dict) else {}


def probe_markdown(result: dict[str, Any]) -> str:
    """The probe table as Markdown (accuracy %, mean ± std over draws)."""
    if not result:
        return ("No probe measured for this model. Run `dcgan probe CHECKPOINT_DIR --data-root DIR --labels 100,1000 "
                f"--json CHECKPOINT_DIR/{PROBE_FILE}` to add one.")
    rows = ["| labels | trained D | random D | pixels |", "|---|---|---|---|"]
    for n, row in result["labels"].items():
        cells = [f"{100 * row[k]['mean']:.1f} ± {100 * row[k]['std']:.1f}" if k in row else "—" for k in ("trained", "random", "pixels")]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    return f"Test accuracy (%) of a linear classifier on D's features ({result.get('dataset', '')}, step {result.get('step')}):\n\n" + \
        "\n".join(rows)


def forget_markdown(f: Forgotten) -> str:
    r = f.report
    rows = "\n".join(f"| {name} | {100 * v['before']:.1f}% | {100 * v['after']:.1f}% |" for name, v in r["rates"].items())
    return (f"Dropped {len(f.maps)} maps of layer {f.layer}: `{f.maps}`. **{f.attribute} vanished from {100 * r['vanished']:.0f}%** "
            f"of the {r['had']} held-out seeds ({r['seeds'][0]}-{r['seeds'][1]}) that had it.\n\n"
            f"| label | rate before | after |\n|---|---|---|\n{rows}")
