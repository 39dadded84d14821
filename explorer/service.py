"""Explorer actions as plain functions: (catalog, model name, ...) -> uint8 images or file paths; no gradio here.

Images are numpy uint8 at the model's native size: [H, W, 3] for colour, [H, W] for grey. Bad input raises a
``dcgan.errors.DCGANError`` subclass whose message says what was wrong and what is allowed; every limit is below.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dcgan import actions
from dcgan.actions import (  # noqa: F401 (LOOP_MODES: for the UI)
    LOOP_MODES,
    PRESET_SEARCH,
    STREAM_CHUNK,
    Arithmetic,
    Nearest,
    arithmetic_images,
    count_frames,
    edit_latent,
    nearest_images,
    squeeze,
    walk_frames,
)
from dcgan.directions import ARITHMETIC_PRESETS, MAX_AMOUNT, apply_directions, concept_direction, pick_from_ratings
from dcgan.errors import ConfigError, DCGANError, LatentError, brief
from dcgan.images import MP4_MIN_SIDE, Mp4Writer, tile_grid, to_uint8, write_gif
from dcgan.latent import MAX_SEED, format_seeds, latents_from_seeds, truncate  # noqa: F401 (MAX_SEED: for the UI)
from dcgan.ratings import load_or_rate_seeds

from .cards import ModelCard, build_card
from .derived import Catalog, ModelState
from .latents import LatentStore, ProjectedImage, latent_bytes, project_image, resolve, upload_latents
from .outputs import OutputDir
from .registry import LoadedModel
from .validation import (  # noqa: F401 (the UI reaches them through service)
    RANDOM_COUNT,
    RANDOM_SEED_MAX,
    check_choice,
    check_float,
    check_int,
    check_ref,
    check_seed,
    concept_name,
    ref_list,
    seed_list,
    seed_text,
)

# ----------------------------------------------------------------------------------------------------------------
# limits: every endpoint checks its inputs against these (the README's API section lists them)

MAX_GENERATE_SEEDS = 64        # images in one /generate call
MAX_GROUP_SEEDS = 8            # exemplars in each of A, B, C
MAX_NOISE = 1.0                # uniform noise of the arithmetic variants: U(-noise, noise), the paper's 0.25
MAX_KEYFRAMES = 32             # seeds on one interpolation path
MAX_FRAMES_PER_SEGMENT = 120   # frames between two keyframes
MAX_TOTAL_FRAMES = 512         # frames in one GIF/MP4 (after loop / ping-pong)
FPS_RANGE = (1.0, 60.0)
MAX_AMOUNT_ENTRIES = 64        # directions named in one /edit call
MAX_NEAREST = 16               # training images returned by /nearest
MAX_PRESET_COUNT = MAX_GROUP_SEEDS
METHODS = ("slerp", "linear")
WALK_POINTS = 9                # the paper's walk through 9 random points (section 6.1)
JUMP_FACTOR = 3.0              # a frame change above this many times the median change is flagged as a sharp jump
JUMP_FLOOR = 2.0               # ...and only if it is above this many grey levels (0-255) on average
STRIP_COLUMNS = 17             # frames shown per keyframe-to-keyframe row of the PNG strip
IMAGE_CACHE = 2048             # rendered seed images kept per loaded model (~12 kB each at 64x64)
LIMITS = {name: value for name, value in globals().items() if name.startswith("MAX_")} | {
    "MAX_AMOUNT": MAX_AMOUNT, "MP4_MIN_SIDE": MP4_MIN_SIDE, "PRESET_SEARCH_LAST": PRESET_SEARCH - 1}  # for docs


# ----------------------------------------------------------------------------------------------------------------
# rendering

def render(model: LoadedModel, z: torch.Tensor) -> np.ndarray:
    """z [N, z_dim] -> uint8 [N, H, W, C] (C = 1 or 3), as ``dcgan.actions.render`` (the CLI's verbs)."""
    return actions.render(model.G, z)


def render_seeds(state: ModelState, seeds: list[int | str], truncation: float, store: LatentStore | None = None) -> np.ndarray:
    """uint8 [N, H, W, C] for seeds, remembering the last IMAGE_CACHE renders per model (the default grid and the
    current seed are asked for again and again). Exact: a seed's image does not depend on its batch."""
    cache, model = state.seed_images, state.model
    found: dict[int | str, np.ndarray] = {}
    with state.lock:
        for s in seeds:
            if (s, truncation) in cache:
                found[s] = cache[(s, truncation)]
                cache.move_to_end((s, truncation))
    missing = [s for s in dict.fromkeys(seeds) if s not in found]
    if missing:
        fresh = render(model, seed_latents(model, missing, truncation, store))
        found.update(zip(missing, fresh))
        with state.lock:
            for s, img in zip(missing, fresh):
                cache[(s, truncation)] = img
            while len(cache) > IMAGE_CACHE:
                cache.popitem(last=False)
    return np.stack([found[s] for s in seeds])


def seed_latents(model: LoadedModel, seeds: list[int | str], truncation: float, store: LatentStore | None = None) -> torch.Tensor:
    """The seed contract plus truncation, exactly as ``dcgan sample``: truncate(latents_from_seeds(seeds), psi).

    Latent names (img-<sha12>, explorer.latents) among the seeds are looked up in ``store``."""
    if store is not None and any(isinstance(s, str) for s in seeds):
        return resolve(store, seeds, model.z_dim, truncation)
    return truncate(latents_from_seeds(seeds, model.z_dim), truncation)


def _truncation(value: Any) -> float:
    return check_float("truncation", value, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# models and directions

def models(catalog: Catalog) -> list[dict[str, Any]]:
    """Every model the registry found, from checkpoint metadata (no weights loaded): name, data set, sizes, step."""
    registry = catalog.registry
    out = []
    for name in registry.names():
        row: dict[str, Any] = {"name": name}
        try:
            meta = registry.describe(name)
        except DCGANError as exc:  # a broken file must not hide the others; its row says what is wrong
            row["error"] = str(exc)
        else:
            cfg = meta.model
            row.update(dataset=meta.info.get("dataset", ""), arch=cfg.arch, image_size=cfg.image_size, channels=cfg.channels,
                       z_dim=cfg.z_dim, step=meta.info.get("step"))
        out.append(row)
    return out


def model_card(catalog: Catalog, model: str) -> ModelCard:
    """The model picker's card: the README beside the checkpoint made short (explorer.cards), its picture, and the
    facts from the checkpoint's metadata."""
    meta = catalog.registry.describe(model)
    cfg, info = meta.model, meta.info
    facts = [("data set", info.get("dataset", "unknown")),
             ("image", f"{cfg.image_size}x{cfg.image_size}, {cfg.channels} channel{'s' if cfg.channels > 1 else ''}"),
             ("architecture", f"{cfg.arch}, z_dim {cfg.z_dim}, ngf {cfg.ngf}"), ("training step", info.get("step", "?")),
             ("images seen", info.get("images_seen", "?")), ("saved", info.get("date", "?"))]
    card_path = catalog.registry.entry(model).card_path
    return build_card(model, catalog.registry.card(model), card_path.parent if card_path else None, facts)


def _directions_for(catalog: Catalog, model: str, names: set[str]) -> list:
    """Directions of ``model``, waiting for the labelled ones only if ``names`` needs them."""
    found = catalog.directions(model)
    if names - {d.name for d in found}:
        found = catalog.directions(model, wait=True)
    return found


def directions(catalog: Catalog, model: str) -> list[str]:
    """Names of every direction of ``model`` (SeFa, PCA, then class/attribute ones), waiting for labelled ones."""
    return [d.name for d in catalog.directions(model, wait=True)]


def direction_info(catalog: Catalog, model: str) -> list[dict[str, Any]]:
    """The directions available now, for sliders: name, label, kind, strength."""
    return [{"name": d.name, "label": d.label or d.name, "kind": d.kind, "strength": d.strength} for d in catalog.directions(model)]


def directions_status(catalog: Catalog, model: str) -> tuple[bool, str]:
    """(labelled directions still computing, a sentence for the UI or '')."""
    return catalog.directions_pending(model), catalog.directions_status(model)


def refresh(catalog: Catalog) -> list[str]:
    """Scan the checkpoint folders again (a run has just written its generator); returns the listed model names."""
    return catalog.registry.rescan()


def picker_names(catalog: Catalog, mine: list[str] = ()) -> list[str]:
    """The model picker of one session: every scanned model, then this session's uploads that are still registered."""
    registry = catalog.registry
    return registry.names() + [n for n in dict.fromkeys(mine) if registry.is_registered(n)]


# ----------------------------------------------------------------------------------------------------------------
# generate and edit

@dataclass
class Samples:
    images: np.ndarray   # uint8 [N, H, W, C]
    seeds: list[int | str]  # seeds, or latent names (explorer.latents) in their place

    def grid(self, columns: int | None = None, padding: int = 0) -> np.ndarray:
        """Native-size tiles in a grid (no padding by default): tile i at row i // columns, column i % columns."""
        return squeeze(tile_grid(self.images, columns or grid_columns(len(self.images)), padding=padding))


def grid_columns(n: int) -> int:
    return max(1, math.ceil(math.sqrt(n)))


def generate(catalog: Catalog, model: str, seeds: Any = "0-15", truncation: Any = 1.0) -> Samples:
    """Images for a seed list ("0-15", "3,7,42", "random" or a list), up to MAX_GENERATE_SEEDS."""
    psi = _truncation(truncation)
    seeds = ref_list(seeds, what="seeds", max_count=MAX_GENERATE_SEEDS, allow_random=True)
    return Samples(render_seeds(catalog.state(model), seeds, psi, catalog.latents), seeds)


def current_seed(catalog: Catalog, model: str | None, value: Any) -> int | str:
    """What the header's current-seed box may hold: a seed, or the name of a latent this app keeps that fits
    ``model``'s z_dim (checked now, so a bad entry is refused before any tab tries it)."""
    ref = seed_text(value)
    if isinstance(ref, str) and model:
        catalog.latents.get(ref, catalog.state(model).model.z_dim)
    return ref


def _amounts(amounts: Any) -> dict[str, float]:
    if amounts is None:
        return {}
    if not isinstance(amounts, dict):
        raise LatentError(f"amounts: {brief(amounts)} must be a mapping of direction name -> amount, e.g. {{\"sefa-0\": 2.0}}")
    if len(amounts) > MAX_AMOUNT_ENTRIES:
        raise LatentError(f"amounts: {len(amounts)} directions; at most {MAX_AMOUNT_ENTRIES} per edit")
    out = {}
    for name, value in amounts.items():
        if not isinstance(name, str):
            raise LatentError(f"amounts: direction names are strings, got {brief(name)}")
        try:
            out[name] = check_float(f"amount of direction {brief(name)}", value, -MAX_AMOUNT, MAX_AMOUNT)
        except ConfigError as exc:
            raise LatentError(str(exc)) from None
    return out


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value) or len(value) > MAX_AMOUNT_ENTRIES:
        raise LatentError(f"{what}: {brief(value)} must be a list of at most {MAX_AMOUNT_ENTRIES} direction names")
    return list(value)


def edited_latent(catalog: Catalog, model: str, seed: Any, amounts: Any = None, truncation: Any = 1.0,
                  keep_fixed: Any = None) -> torch.Tensor:
    """z [1, z_dim] of ``seed`` (truncated) moved by amount * direction for each named direction.

    ``keep_fixed`` names directions (usually attributes) to hold still: each moved direction is first made
    orthogonal to them (InterFaceGAN's conditional manipulation, ``dcgan.directions.condition``), then attributes
    are held where the classifier judged them (``dcgan.directions.hold_judgements``).
    """
    seed, psi = check_ref(seed), _truncation(truncation)
    amounts, fixed_names = _amounts(amounts), _names(keep_fixed, "keep_fixed")
    found = _directions_for(catalog, model, set(amounts) | set(fixed_names))
    by_name = {d.name: d for d in found}
    unknown = sorted((set(amounts) | set(fixed_names)) - set(by_name))
    if unknown:
        raise LatentError(f"unknown direction(s) {brief(unknown)} for model {brief(model)}; known: {sorted(by_name)}")
    state = catalog.state(model)
    classifier = catalog.classifier(state) if fixed_names else None
    return edit_latent(seed_latents(state.model, [seed], psi, catalog.latents), found, amounts, fixed_names, G=state.model.G,
                       classifier=classifier)


def seed_image(catalog: Catalog, model: str, seed: Any, truncation: Any = 1.0) -> np.ndarray:
    """The image of one seed (from the per-model cache when it was rendered before)."""
    return squeeze(render_seeds(catalog.state(model), [check_ref(seed)], _truncation(truncation), catalog.latents)[0])


def edit(catalog: Catalog, model: str, seed: Any, amounts: Any = None, truncation: Any = 1.0, keep_fixed: Any = None) -> np.ndarray:
    """The image of ``seed`` moved along named directions: amounts {name: amount}, each within ±MAX_AMOUNT."""
    z = edited_latent(catalog, model, seed, amounts, truncation, keep_fixed)
    if not any(_amounts(amounts).values()):  # nothing moved: the plain seed, possibly already rendered
        return seed_image(catalog, model, seed, truncation)
    return squeeze(render(catalog.state(model).model, z)[0])


def edit_snippet(catalog: Catalog, model: str, seed: int | str, amounts: dict[str, float], truncation: float = 1.0,
                 keep_fixed: list[str] | None = None, url: str = "http://127.0.0.1:7860/") -> str:
    """Python that reproduces an edit exactly, through the API and offline with the library. A latent name's
    values come from the server's /latent (it keeps them; the library cannot make them from the name)."""
    amounts = {k: round(float(v), 4) for k, v in amounts.items() if v != 0}
    keep_fixed = list(keep_fixed or [])
    path = catalog.registry.entry(model).path
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    what = f"latent {seed}" if isinstance(seed, str) else f"seed {seed}"
    lines = [
        f"# {what} of {model!r}, truncation {truncation:g}, moved along {len(amounts)} direction(s)",
        "from gradio_client import Client",
        f"img = Client({url!r}).predict({model!r}, {seed!r}, {amounts!r}, {truncation!r}, {keep_fixed!r}, api_name=\"/edit\")",
        "",
        "# offline, with the library (same pixels):",
        "import torch",
        *(["import numpy as np"] if isinstance(seed, str) else []),
        "from dcgan import load_generator, latent_from_seed",
        "from dcgan.actions import edit_latent",
        "from dcgan.directions import load_or_compute_directions, shipped_classifier",
        f"G, info = load_generator({str(shown)!r})",
        f"dirs = load_or_compute_directions({str(shown)!r}, G, info)",
    ]
    if isinstance(seed, str):
        lines.append(f"z0 = torch.from_numpy(np.load(Client({url!r}).predict({model!r}, {seed!r}, api_name=\"/latent\")))")
    else:
        lines.append(f"z0 = latent_from_seed({seed}, info.model.z_dim)")
    lines += [
        (f"z = edit_latent(z0[None] * {truncation!r}, dirs, {amounts!r}, {keep_fixed!r}, G=G, "
         "classifier=shipped_classifier(info.info.get('dataset')))" if keep_fixed else
         f"z = edit_latent(z0[None] * {truncation!r}, dirs, {amounts!r})"),
        "with torch.no_grad():",
        "    x = G(z)  # [1, C, H, W] in [-1, 1]",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# vector arithmetic (section 6.3.2)

def _groups(seeds_a: Any, seeds_b: Any, seeds_c: Any) -> tuple[list[int | str], list[int | str], list[int | str]]:
    return tuple(ref_list(s, what=f"group {g}", max_count=MAX_GROUP_SEEDS) for g, s in zip("ABC", (seeds_a, seeds_b, seeds_c)))


def arithmetic(catalog: Catalog, model: str, seeds_a: Any, seeds_b: Any, seeds_c: Any, noise: Any = 0.25,
               noise_seed: Any = 0, truncation: Any = 1.0) -> Arithmetic:
    """The paper's face arithmetic on seed groups of 1-8 exemplars each."""
    a, b, c = _groups(seeds_a, seeds_b, seeds_c)
    noise, noise_seed, psi = check_float("noise", noise, 0.0, MAX_NOISE), check_seed(noise_seed, "noise_seed"), _truncation(truncation)
    m = catalog.state(model).model
    za, zb, zc = (seed_latents(m, g, psi, catalog.latents) for g in (a, b, c))
    return arithmetic_images(m.G, za, zb, zc, noise=noise, noise_seed=noise_seed)


def arithmetic_preset(catalog: Catalog, model: str, preset: Any, count: Any = 3,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, list[int]]:
    """Exemplar seeds for a named preset, picked by the model's attribute classifier: {"A": [...], "B": [...], "C": [...]}.

    The classifier's ratings of seeds 0..PRESET_SEARCH-1 are read from the file beside the checkpoint (shipped
    models have one) or made once per model, telling ``progress(rated, total)`` as they go."""
    preset = check_choice("preset", preset, tuple(ARITHMETIC_PRESETS))
    count = check_int("count", count, 1, MAX_PRESET_COUNT)
    state = catalog.state(model)
    m = state.model
    classifier = catalog.classifier(state)
    if classifier is None or classifier.kind != "attributes":
        raise ConfigError(f"model {model!r} (data set {m.dataset or 'unknown'!r}) has no attribute classifier; presets need a face "
                          "model (CelebA attributes). Pick exemplars by clicking samples instead.")
    proba = catalog.seed_ratings(state, lambda: load_or_rate_seeds(m.entry.path, m.G, classifier, PRESET_SEARCH, z_dim=m.z_dim,
                                                                   progress=progress))
    groups = catalog.preset_seeds(state, (preset, count), lambda: pick_from_ratings(proba, classifier, preset, count=count, z_dim=m.z_dim,
                                                                                  G=m.G))
    return dict(zip("ABC", (list(g) for g in groups)))


def preset_record(catalog: Catalog, model: str, preset: Any) -> str:
    """How often ``preset`` works on ``model``, as measured by `dcgan eval --arithmetic` into the metrics.json beside
    the checkpoint (shipped models have one); '' when it was not measured."""
    preset = check_choice("preset", preset, tuple(ARITHMETIC_PRESETS))
    try:
        measured = json.loads((catalog.registry.entry(model).path.parent / "metrics.json").read_text()).get("arithmetic", {})
        r = measured[preset]
        judge = ", judged by a second classifier the picks never saw" if "picker" in r else ""
        return (f"This preset works in {100 * r['rate']:.0f}% of draws on this model ({r['successes']} of {r['draws']}; "
                f"95% interval {100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}%), by `dcgan eval --arithmetic`{judge}.")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def _concept_groups(seeds_a: Any, seeds_b: Any) -> tuple[list[int | str], list[int | str]]:
    return (ref_list(seeds_a, what="group A", max_count=MAX_GROUP_SEEDS), ref_list(seeds_b, what="group B", max_count=MAX_GROUP_SEEDS))


def concept(catalog: Catalog, model: str, seed: Any, seeds_a: Any, seeds_b: Any, amount: Any = 1.0,
            truncation: Any = 1.0) -> np.ndarray:
    """``seed`` moved by ``amount`` along the unit concept vector mean(A) - mean(B) (e.g. "smile"); A and B are
    seeds or latent names, as the arithmetic's groups."""
    seed, psi = check_ref(seed), _truncation(truncation)
    amount = check_float("amount", amount, -MAX_AMOUNT, MAX_AMOUNT)
    a, b = _concept_groups(seeds_a, seeds_b)
    m = catalog.state(model).model
    direction = concept_direction("concept", seed_latents(m, a, 1.0, catalog.latents), seed_latents(m, b, 1.0, catalog.latents))
    z = apply_directions(seed_latents(m, [seed], psi, catalog.latents), [direction], {"concept": amount})
    return squeeze(render(m, z)[0])


def concept_length(catalog: Catalog, model: str, seeds_a: Any, seeds_b: Any) -> float:
    """|mean(A) - mean(B)|: the amount that adds the whole difference."""
    a, b = _concept_groups(seeds_a, seeds_b)
    m = catalog.state(model).model
    return float((seed_latents(m, a, 1.0, catalog.latents).mean(0) - seed_latents(m, b, 1.0, catalog.latents).mean(0)).norm())


# ----------------------------------------------------------------------------------------------------------------
# interpolation (section 6.1)

@dataclass
class Interpolation:
    frames: np.ndarray          # uint8 [T, H, W, C], in playing order
    gif_path: Path
    mp4_path: Path
    strip_path: Path | None     # None when not asked for
    changes: list[float]        # mean |frame[t+1] - frame[t]| in grey levels (0-255); the wrap-around included unless "once"
    jumps: list[int]            # t where changes[t] is a sharp jump

    @property
    def median_change(self) -> float:
        """The median of ``changes``: the yardstick of the jump rule."""
        return float(np.median(self.changes)) if self.changes else 0.0


def walk_keyframes(seed: Any = 0, count: int = WALK_POINTS) -> list[int]:
    """The paper's walk: ``count`` random points (seeds), reproducible from ``seed``."""
    rng = torch.Generator().manual_seed(check_seed(seed))
    return torch.randint(0, RANDOM_SEED_MAX, (count,), generator=rng).tolist()


def frame_changes(frames: np.ndarray, *, wrap: bool) -> tuple[list[float], list[int]]:
    """Mean absolute change between consecutive frames (grey levels) and the indices flagged as sharp jumps."""
    seq = np.concatenate([frames, frames[:1]]) if wrap else frames
    diffs = np.abs(np.diff(seq.astype(np.int16), axis=0)).reshape(len(seq) - 1, -1).mean(1)
    median = float(np.median(diffs)) if len(diffs) else 0.0
    jumps = [i for i, d in enumerate(diffs) if d > JUMP_FACTOR * median and d > JUMP_FLOOR]
    return [round(float(d), 3) for d in diffs], jumps


def _strip(path_frames: np.ndarray, frames: int) -> np.ndarray:
    """One row per keyframe-to-keyframe segment (both ends shown), at most STRIP_COLUMNS frames per row."""
    segments = (len(path_frames) - 1) // frames
    cols = np.unique(np.round(np.linspace(0, frames, min(STRIP_COLUMNS, frames + 1))).astype(int))
    rows = [path_frames[s * frames + cols] for s in range(segments)]
    return tile_grid(np.concatenate(rows), len(cols), padding=1)


def interpolate(catalog: Catalog, model: str, keyframes: Any, frames: Any = 16, method: Any = "slerp", fps: Any = 12.0,
                loop: Any = "loop", truncation: Any = 1.0, *, out: OutputDir, strip: bool = True) -> Interpolation:
    """Frames along a lerp/slerp path through keyframe seeds, written as a looping GIF, an MP4 and (if ``strip``) a PNG
    strip. The MP4 is encoded by ffmpeg while later frames are still being generated."""
    if isinstance(loop, bool):
        loop = "loop" if loop else "once"
    loop = check_choice("loop", loop, LOOP_MODES)
    method = check_choice("method", method, METHODS)
    seeds = ref_list(keyframes, what="keyframes", max_count=MAX_KEYFRAMES, min_count=2)
    frames = check_int("frames", frames, 1, MAX_FRAMES_PER_SEGMENT)
    fps, psi = check_float("fps", fps, *FPS_RANGE), _truncation(truncation)
    total = count_frames(len(seeds), frames, loop)
    if total > MAX_TOTAL_FRAMES:
        raise ConfigError(f"{len(seeds)} keyframes x {frames} frames ({loop}) make {total} frames; at most {MAX_TOTAL_FRAMES}")
    m = catalog.state(model).model
    stem = f"{model}-{format_seeds(seeds)[:40]}-{method}-{frames}f"
    gif_path, mp4_path = out.path(stem, ".gif"), out.path(stem, ".mp4")
    size = m.info.model.image_size
    video = Mp4Writer(mp4_path, (size, size), fps=fps, scale=max(1, math.ceil(MP4_MIN_SIDE / size)))
    try:
        chunks = []
        for chunk in walk_frames(m.G, seed_latents(m, seeds, psi, catalog.latents), frames, method=method, loop=loop, chunk=STREAM_CHUNK):
            chunks.append(chunk)
            video.write(chunk)
    finally:
        video.close()
    played = np.concatenate(chunks)
    forward = played[:count_frames(len(seeds), frames, "loop" if loop == "loop" else "once")]
    write_gif(played, gif_path, fps=fps)
    strip_path = None
    if strip:
        strip_path = out.save_png(squeeze(_strip(np.concatenate([forward, forward[:1]]) if loop == "loop" else forward, frames)),
                                  out.path(stem + "-strip", ".png"))
    changes, jumps = frame_changes(played, wrap=loop != "once")
    return Interpolation(played, gif_path, mp4_path, strip_path, changes, jumps)


# ----------------------------------------------------------------------------------------------------------------
# memorisation check: nearest training images

def nearest(catalog: Catalog, model: str, seed: Any, truncation: Any = 1.0, k: Any = 8) -> Nearest:
    """The ``k`` training images closest to G(seed) in pixel space (needs the model's training data on disk)."""
    seed, psi, k = check_ref(seed), _truncation(truncation), check_int("k", k, 1, MAX_NEAREST)
    state = catalog.state(model)
    m, data = state.model, catalog.training_data(state)
    return nearest_images(m.G, seed_latents(m, [seed], psi, catalog.latents), data.images, k)


# ----------------------------------------------------------------------------------------------------------------
# your image: projection into the latent space (dcgan.project), latent files

def projector(catalog: Catalog, model: str) -> Any:
    """The model's dcgan.project.Projector, built once (its start bank: PRESETS["full"].candidates seeded samples, and
    the encoder beside the checkpoint when there is one for this generator)."""
    from dcgan.encoder import encoder_for
    from dcgan.project import PRESETS, Projector

    state = catalog.state(model)
    m = state.model
    return state.projector.get(lambda: Projector(m.G, z_dim=m.z_dim, classifier=catalog.classifier(state), dataset=m.dataset or None,
                                                 candidates=PRESETS["full"].candidates, encoder=encoder_for(m.entry.path, m.G)))


def prepared_image(catalog: Catalog, model: str, image: Any) -> np.ndarray:
    """The crop the model will see of ``image`` (file bytes, path, PIL image or uint8 array): uint8 [H, W(, 3)]."""
    from dcgan.project import prepare_images, read_image

    m = catalog.state(model).model
    if isinstance(image, (bytes, bytearray, str, Path)):
        image = read_image(image)
    x = prepare_images([image], image_size=m.info.model.image_size, channels=m.info.model.channels, dataset=m.dataset or None)
    return squeeze(to_uint8(x)[0])


def project(catalog: Catalog, model: str, image: Any, mode: Any = "fast", progress: Any = None) -> ProjectedImage:
    """Project one image into the model's latent space; its latent is kept under the returned name (img-<sha12>),
    usable wherever a seed is. mode: "fast" (the live UI) or "full" (best quality)."""
    if isinstance(image, Path):
        image = str(image)
    return project_image(catalog.latents, projector(catalog, model), image, mode=mode, progress=progress)


def latent_file(catalog: Catalog, model: str, name: Any, *, out: OutputDir) -> Path:
    """A latent as a .npy file (float32 [z_dim]) in the output folder."""
    data = latent_bytes(catalog.latents, name, catalog.state(model).model.z_dim)
    path = out.path(f"{model}-{name}", ".npy")
    path.write_bytes(data)
    return path


def latent_upload(catalog: Catalog, model: str, data: bytes) -> list[str]:
    """Names for the latents of a .npy ([z_dim] or [N, z_dim], float, finite, bounded), kept for this model's z_dim."""
    return upload_latents(catalog.latents, data, catalog.state(model).model.z_dim)
