"""Explorer actions as plain functions: (catalog, model name, ...) -> uint8 images or file paths; no gradio here.

Images are numpy uint8 at the model's native size: [H, W, 3] for colour, [H, W] for grey. Bad input raises a
``dcgan.errors.DCGANError`` subclass whose message says what was wrong and what is allowed; every limit is below.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan.directions import ARITHMETIC_PRESETS, MAX_AMOUNT, apply_directions, concept_direction, condition, pick_preset_seeds
from dcgan.errors import ConfigError, DCGANError, LatentError, brief
from dcgan.images import to_uint8
from dcgan.latent import MAX_SEED, arithmetic_variants, interpolate_path, latents_from_seeds, truncate  # noqa: F401 (MAX_SEED: for the UI)
from dcgan.latent import arithmetic as latent_arithmetic

from .derived import Catalog, ModelState
from .latents import LatentStore, ProjectedImage, latent_bytes, project_image, resolve, upload_latents
from .outputs import Mp4Writer, OutputDir, tile_grid, write_gif
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
    format_seeds,
    ref_list,
    seed_list,
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
PRESET_SEARCH = 1000           # seeds the classifier rates when picking preset exemplars
LOOP_MODES = ("loop", "pingpong", "once")  # loop: back to the first keyframe; pingpong: forward then back; once: open path
METHODS = ("slerp", "linear")
WALK_POINTS = 9                # the paper's walk through 9 random points (section 6.1)
JUMP_FACTOR = 3.0              # a frame change above this many times the median change is flagged as a sharp jump
JUMP_FLOOR = 2.0               # ...and only if it is above this many grey levels (0-255) on average
STRIP_COLUMNS = 17             # frames shown per keyframe-to-keyframe row of the PNG strip
MP4_MIN_SIDE = 256             # video codecs smear tiny frames: the MP4 is enlarged (nearest) to at least this side
BATCH = 64                     # latents per generator call
IMAGE_CACHE = 2048             # rendered seed images kept per loaded model (~12 kB each at 64x64)
STREAM_CHUNK = 16              # interpolation frames generated between hand-offs to the video encoder
LIMITS = {name: value for name, value in globals().items() if name.startswith("MAX_")} | {
    "MAX_AMOUNT": MAX_AMOUNT, "MP4_MIN_SIDE": MP4_MIN_SIDE, "PRESET_SEARCH_LAST": PRESET_SEARCH - 1}  # for docs


# ----------------------------------------------------------------------------------------------------------------
# rendering

def render(model: LoadedModel, z: torch.Tensor) -> np.ndarray:
    """z [N, z_dim] -> uint8 [N, H, W, C] (C = 1 or 3), in batches of BATCH."""
    with torch.inference_mode():
        return np.concatenate([to_uint8(model.G(chunk.to(model.device))) for chunk in z.split(BATCH)])


def render_float(model: LoadedModel, z: torch.Tensor) -> torch.Tensor:
    """z [N, z_dim] -> x float32 [N, C, H, W] in [-1, 1] on the CPU."""
    with torch.inference_mode():
        return torch.cat([model.G(chunk.to(model.device)).float().cpu() for chunk in z.split(BATCH)])


def render_seeds(state: ModelState, seeds: list[int | str], truncation: float, store: LatentStore | None = None) -> np.ndarray:
    """uint8 [N, H, W, C] for seeds, remembering the last IMAGE_CACHE renders per model (the default grid and the
    current seed are asked for again and again). Exact: a seed's image does not depend on its batch."""
    cache, model = state.seed_images, state.model
    found: dict[int, np.ndarray] = {}
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


def squeeze(img: np.ndarray) -> np.ndarray:
    """[..., H, W, 1] -> [..., H, W]: grey images as 2-D arrays, as PIL and browsers expect."""
    return img[..., 0] if img.shape[-1] == 1 else img


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


def model_card(catalog: Catalog, model: str) -> str:
    """Markdown for the model picker: the README beside the checkpoint (if any) and the facts from its metadata."""
    meta = catalog.registry.describe(model)
    cfg, info = meta.model, meta.info
    facts = [("data set", info.get("dataset", "unknown")),
             ("image", f"{cfg.image_size}x{cfg.image_size}, {cfg.channels} channel{'s' if cfg.channels > 1 else ''}"),
             ("architecture", f"{cfg.arch}, z_dim {cfg.z_dim}, ngf {cfg.ngf}"), ("training step", info.get("step", "?")),
             ("images seen", info.get("images_seen", "?")), ("saved", info.get("date", "?"))]
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in facts)
    card = catalog.registry.card(model).strip()
    return (card + "\n\n" if card else f"### {model}\n\n_No model card (README.md) beside this checkpoint._\n\n") + table


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
    orthogonal to them (InterFaceGAN's conditional manipulation, ``dcgan.directions.condition``).
    """
    seed, psi = check_ref(seed), _truncation(truncation)
    amounts, fixed_names = _amounts(amounts), _names(keep_fixed, "keep_fixed")
    found = _directions_for(catalog, model, set(amounts) | set(fixed_names))
    by_name = {d.name: d for d in found}
    unknown = sorted((set(amounts) | set(fixed_names)) - set(by_name))
    if unknown:
        raise LatentError(f"unknown direction(s) {brief(unknown)} for model {brief(model)}; known: {sorted(by_name)}")
    fixed = [by_name[n] for n in fixed_names]
    moved = {n: a for n, a in amounts.items() if a != 0.0}
    used = [condition(by_name[n], fixed) if fixed else by_name[n] for n in moved]
    return apply_directions(seed_latents(catalog.state(model).model, [seed], psi, catalog.latents), used, moved)


def seed_image(catalog: Catalog, model: str, seed: Any, truncation: Any = 1.0) -> np.ndarray:
    """The image of one seed (from the per-model cache when it was rendered before)."""
    return squeeze(render_seeds(catalog.state(model), [check_ref(seed)], _truncation(truncation), catalog.latents)[0])


def edit(catalog: Catalog, model: str, seed: Any, amounts: Any = None, truncation: Any = 1.0, keep_fixed: Any = None) -> np.ndarray:
    """The image of ``seed`` moved along named directions: amounts {name: amount}, each within ±MAX_AMOUNT."""
    z = edited_latent(catalog, model, seed, amounts, truncation, keep_fixed)
    if not any(_amounts(amounts).values()):  # nothing moved: the plain seed, possibly already rendered
        return seed_image(catalog, model, seed, truncation)
    return squeeze(render(catalog.state(model).model, z)[0])


def edit_snippet(catalog: Catalog, model: str, seed: int, amounts: dict[str, float], truncation: float = 1.0,
                 keep_fixed: list[str] | None = None, url: str = "http://127.0.0.1:7860/") -> str:
    """Python that reproduces an edit exactly, through the API and offline with the library."""
    amounts = {k: round(float(v), 4) for k, v in amounts.items() if v != 0}
    keep_fixed = list(keep_fixed or [])
    path = catalog.registry.entry(model).path
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    lines = [
        f"# seed {seed} of {model!r}, truncation {truncation:g}, moved along {len(amounts)} direction(s)",
        "from gradio_client import Client",
        f"img = Client({url!r}).predict({model!r}, {seed}, {amounts!r}, {truncation!r}, {keep_fixed!r}, api_name=\"/edit\")",
        "",
        "# offline, with the library (same pixels):",
        "import torch",
        "from dcgan import load_generator, latent_from_seed",
        "from dcgan.directions import apply_directions, condition, load_or_compute_directions",
        f"G, info = load_generator({str(shown)!r})",
        f"dirs = {{d.name: d for d in load_or_compute_directions({str(shown)!r}, G, info)}}",
    ]
    if keep_fixed:
        lines.append(f"fixed = [dirs[n] for n in {keep_fixed!r}]")
        lines.append(f"used = [condition(dirs[n], fixed) for n in {list(amounts)!r}]")
    else:
        lines.append(f"used = [dirs[n] for n in {list(amounts)!r}]")
    lines += [
        f"z = apply_directions(latent_from_seed({seed}, info.model.z_dim)[None] * {truncation!r}, used, {amounts!r})",
        "with torch.no_grad():",
        "    x = G(z)  # [1, C, H, W] in [-1, 1]",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# vector arithmetic (section 6.3.2)

@dataclass
class Arithmetic:
    centre: np.ndarray         # G(Y), Y = mean(A) - mean(B) + mean(C)
    grid: np.ndarray           # the paper's 3x3: G(Y) in the centre, 8 variants Y + U(-noise, noise) around it
    pixel: np.ndarray          # the same arithmetic on images: mean(G(A)) - mean(G(B)) + mean(G(C))
    y: torch.Tensor = field(repr=False)  # [z_dim]


def _groups(seeds_a: Any, seeds_b: Any, seeds_c: Any) -> tuple[list[int], list[int], list[int]]:
    return tuple(ref_list(s, what=f"group {g}", max_count=MAX_GROUP_SEEDS) for g, s in zip("ABC", (seeds_a, seeds_b, seeds_c)))


def arithmetic(catalog: Catalog, model: str, seeds_a: Any, seeds_b: Any, seeds_c: Any, noise: Any = 0.25,
               noise_seed: Any = 0, truncation: Any = 1.0) -> Arithmetic:
    """The paper's face arithmetic on seed groups of 1-8 exemplars each."""
    a, b, c = _groups(seeds_a, seeds_b, seeds_c)
    noise, noise_seed, psi = check_float("noise", noise, 0.0, MAX_NOISE), check_seed(noise_seed, "noise_seed"), _truncation(truncation)
    m = catalog.state(model).model
    za, zb, zc = (seed_latents(m, g, psi, catalog.latents) for g in (a, b, c))
    y = latent_arithmetic(za, zb, zc)
    variants = arithmetic_variants(y, count=8, noise=noise, seed=noise_seed)
    imgs = render(m, variants)
    x = render_float(m, torch.cat([za, zb, zc]))
    xa, xb, xc = x.split([len(a), len(b), len(c)])
    pixel = to_uint8((xa.mean(0) - xb.mean(0) + xc.mean(0)).clamp(-1, 1)[None])[0]
    centre = len(variants) // 2  # arithmetic_variants puts Y itself in the middle of the 3x3
    return Arithmetic(squeeze(imgs[centre]), squeeze(tile_grid(imgs, 3, padding=2)), squeeze(pixel), y)


def arithmetic_preset(catalog: Catalog, model: str, preset: Any, count: Any = 3) -> dict[str, list[int]]:
    """Exemplar seeds for a named preset, picked by the model's attribute classifier: {"A": [...], "B": [...], "C": [...]}."""
    preset = check_choice("preset", preset, tuple(ARITHMETIC_PRESETS))
    count = check_int("count", count, 1, MAX_PRESET_COUNT)
    state = catalog.state(model)
    m = state.model
    classifier = catalog.classifier(state)
    if classifier is None or classifier.kind != "attributes":
        raise ConfigError(f"model {model!r} (data set {m.dataset or 'unknown'!r}) has no attribute classifier; presets need a face "
                          "model (CelebA attributes). Pick exemplars by clicking samples instead.")
    groups = catalog.preset_seeds(state, (preset, count),
                                  lambda: pick_preset_seeds(m.G, classifier, preset, count=count, search=PRESET_SEARCH, z_dim=m.z_dim))
    return dict(zip("ABC", (list(g) for g in groups)))


def preset_record(catalog: Catalog, model: str, preset: Any) -> str:
    """How often ``preset`` works on ``model``, as measured by `dcgan eval --arithmetic` into the metrics.json beside
    the checkpoint (shipped models have one); '' when it was not measured."""
    preset = check_choice("preset", preset, tuple(ARITHMETIC_PRESETS))
    try:
        measured = json.loads((catalog.registry.entry(model).path.parent / "metrics.json").read_text()).get("arithmetic", {})
        r = measured[preset]
        return (f"This preset works in {100 * r['rate']:.0f}% of draws on this model ({r['successes']} of {r['draws']}; "
                f"95% interval {100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}%), by `dcgan eval --arithmetic`.")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def concept(catalog: Catalog, model: str, seed: Any, seeds_a: Any, seeds_b: Any, amount: Any = 1.0,
            truncation: Any = 1.0) -> np.ndarray:
    """``seed`` moved by ``amount`` along the unit concept vector mean(A) - mean(B) (e.g. "smile")."""
    seed, psi = check_ref(seed), _truncation(truncation)
    amount = check_float("amount", amount, -MAX_AMOUNT, MAX_AMOUNT)
    a = seed_list(seeds_a, what="group A", max_count=MAX_GROUP_SEEDS)
    b = seed_list(seeds_b, what="group B", max_count=MAX_GROUP_SEEDS)
    m = catalog.state(model).model
    direction = concept_direction("concept", seed_latents(m, a, 1.0), seed_latents(m, b, 1.0))
    z = apply_directions(seed_latents(m, [seed], psi, catalog.latents), [direction], {"concept": amount})
    return squeeze(render(m, z)[0])


def concept_length(catalog: Catalog, model: str, seeds_a: Any, seeds_b: Any) -> float:
    """|mean(A) - mean(B)|: the amount that adds the whole difference."""
    a = seed_list(seeds_a, what="group A", max_count=MAX_GROUP_SEEDS)
    b = seed_list(seeds_b, what="group B", max_count=MAX_GROUP_SEEDS)
    m = catalog.state(model).model
    return float((seed_latents(m, a, 1.0).mean(0) - seed_latents(m, b, 1.0).mean(0)).norm())


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


def count_frames(keyframes: int, frames: int, loop: str) -> int:
    """Frames in the played sequence for ``keyframes`` seeds, ``frames`` per segment and a LOOP_MODES mode."""
    forward = keyframes * frames if loop == "loop" else (keyframes - 1) * frames + 1
    return 2 * forward - 2 if loop == "pingpong" else forward


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
    path = interpolate_path(seed_latents(m, seeds, psi, catalog.latents), frames, method=method, loop=loop == "loop")
    stem = f"{model}-{format_seeds(seeds)[:40]}-{method}-{frames}f"
    gif_path, mp4_path = out.path(stem, ".gif"), out.path(stem, ".mp4")
    size = m.info.model.image_size
    video = Mp4Writer(mp4_path, (size, size), fps=fps, scale=max(1, math.ceil(MP4_MIN_SIDE / size)))
    try:
        chunks = []
        for z in path.split(STREAM_CHUNK):
            chunks.append(render(m, z))
            video.write(chunks[-1])
        forward = np.concatenate(chunks)
        backward = forward[-2:0:-1] if loop == "pingpong" else forward[:0]
        video.write(backward)
    finally:
        video.close()
    played = np.concatenate([forward, backward])
    write_gif(played, gif_path, fps=fps)
    strip_path = None
    if strip:
        strip_path = out.save_png(squeeze(_strip(np.concatenate([forward, forward[:1]]) if loop == "loop" else forward, frames)),
                                  out.path(stem + "-strip", ".png"))
    changes, jumps = frame_changes(played, wrap=loop != "once")
    return Interpolation(played, gif_path, mp4_path, strip_path, changes, jumps)


# ----------------------------------------------------------------------------------------------------------------
# memorisation check: nearest training images

@dataclass
class Nearest:
    query: np.ndarray          # the generated image
    images: np.ndarray         # uint8 [k, H, W, C] nearest training images, closest first
    distances: list[float]     # RMS pixel difference to the query, in grey levels (0-255)
    indices: list[int]         # positions in the training set

    def row(self) -> np.ndarray:
        """The query then its neighbours in one row, 2 px apart."""
        query = self.query[..., None] if self.query.ndim == 2 else self.query
        return squeeze(tile_grid(np.concatenate([query[None], self.images]), len(self.images) + 1, padding=2))


def nearest(catalog: Catalog, model: str, seed: Any, truncation: Any = 1.0, k: Any = 8) -> Nearest:
    """The ``k`` training images closest to G(seed) in pixel space (needs the model's training data on disk)."""
    seed, psi, k = check_ref(seed), _truncation(truncation), check_int("k", k, 1, MAX_NEAREST)
    state = catalog.state(model)
    m, data = state.model, catalog.training_data(state)
    x = render_float(m, seed_latents(m, [seed], psi, catalog.latents))
    query = ((x + 1) * 127.5).flatten(1)
    dist = torch.cat([(chunk.flatten(1).float() - query).square().mean(1) for chunk in data.images.split(1024)])
    top = dist.topk(min(k, len(dist)), largest=False)
    images = data.images[top.indices].permute(0, 2, 3, 1).numpy()
    return Nearest(squeeze(to_uint8(x)[0]), images, [round(float(d.sqrt()), 2) for d in top.values], top.indices.tolist())


# ----------------------------------------------------------------------------------------------------------------
# your image: projection into the latent space (dcgan.project), latent files

def projector(catalog: Catalog, model: str) -> Any:
    """The model's dcgan.project.Projector, built once (its start bank: PRESETS["full"].candidates seeded samples)."""
    from dcgan.project import PRESETS, Projector

    state = catalog.state(model)
    m = state.model
    return state.projector.get(lambda: Projector(m.G, z_dim=m.z_dim, classifier=catalog.classifier(state), dataset=m.dataset or None,
                                                 candidates=PRESETS["full"].candidates))


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
