"""The `dcgan` verbs that turn seeds into pictures: sample, edit, arithmetic, interpolate, nearest.

Each computes with ``dcgan.actions`` and encodes with ``dcgan.images``, exactly as the app's API endpoints do, so a
verb's PNG is byte for byte the endpoint's for the same arguments. Limits that only protect a shared server (frames,
seeds per group, neighbours) are lifted; the ones that keep a latent meaningful (amounts, truncation) stay.
Heavy modules are imported inside the functions: ``dcgan --help`` lists these verbs without torch.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, DCGANError

FPS_RANGE = (1.0, 60.0)        # as the API's: faster GIF delays are clamped by browsers
SAMPLE_KINDS = {".png": "grid", ".npy": "npy", ".zip": "zip"}  # --out suffix -> writer; no suffix or a trailing /: a folder


def _checkpoint_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="generator .safetensors file, run directory or hf://user/repo[@revision]")


def _truncation_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--truncation", type=float, metavar="PSI", default=1.0, help="scale latents toward 0 by PSI in [0, 1] (1: none)")


def _load(checkpoint: str, device: str = "cpu"):
    """(local checkpoint path, G in eval mode, its GeneratorInfo); an hf:// URL is fetched into the Hub cache first."""
    from .checkpoints import load_generator
    from .hub import local_checkpoint

    path = local_checkpoint(checkpoint)
    G, meta = load_generator(path, device=device)
    return path, G, meta


def _latents(seeds: list[int], z_dim: int, psi: float):
    """The seed contract plus truncation, as the app: truncate(latents_from_seeds(seeds), psi)."""
    from .latent import latents_from_seeds, truncate

    return truncate(latents_from_seeds(seeds, z_dim), psi)


def _check_truncation(psi: float) -> float:
    if not 0.0 <= psi <= 1.0:  # NaN fails this too
        raise ConfigError(f"--truncation {psi}: give a number from 0 to 1")
    return psi


def _write_png(img, path: Path) -> None:
    from .images import encode_png
    from .io import atomic_write_bytes

    atomic_write_bytes(encode_png(img), path)


# ----------------------------------------------------------------------------------------------------------------
# sample

def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    from .actions import BATCH
    from .latent import MAX_SEEDS

    p.description = ("Generate images for any number of seeds, in batches, with a progress bar; seed N is torch.randn(z_dim) from "
                     f"torch.Generator().manual_seed(N). --out picks the format: a grid .png (at most {MAX_SEEDS} seeds), a "
                     "memory-mapped uint8 .npy (N x H x W x C), a .zip of PNGs or a folder DIR/ of PNGs, one seed-NNNNNN.png per "
                     "seed (each the app's /generate PNG of that one seed). Memory stays flat however many seeds.")
    _checkpoint_argument(p)
    p.add_argument("--seeds", default="0-63", help="seed list such as 0-63, 3,7,42 or 0-49999 (any number)")
    p.add_argument("--latents", metavar="FILE", default=None,
                   help="render the latents saved in this .npy ([N, z_dim] or [z_dim], e.g. from dcgan project) instead of --seeds; "
                        "a folder or .zip gets one latent-NNNNNN.png per row")
    _truncation_argument(p)
    p.add_argument("--nrow", type=int, default=None, help="images per grid row (grid .png only) [default: ~square]")
    p.add_argument("--batch-size", type=int, metavar="N", default=BATCH, help="latents per generator call (the pixels do not depend on it)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--out", default="samples.png", help="grid .png, .npy, .zip, or a folder DIR/ (one PNG per seed)")
    p.set_defaults(func=cmd_sample)


def _sample_kind(out: str) -> str:
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir() or not path.suffix:
        return "folder"
    if path.suffix.lower() not in SAMPLE_KINDS:
        raise ConfigError(f"--out {out}: write a grid .png, a .npy array, a .zip of PNGs or a folder DIR/ of PNGs")
    return SAMPLE_KINDS[path.suffix.lower()]


def _seed_batches(ranges: list[range], size: int) -> Iterator[list[int]]:
    """The seeds of ``ranges`` in order, ``size`` at a time (the last batch may be shorter)."""
    batch: list[int] = []
    for r in ranges:
        for seed in r:
            batch.append(seed)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


class _NpyWriter:
    """A uint8 [N, H, W, C] .npy filled batch by batch. Each batch maps the file anew and unmaps it after: pages
    written through one long-lived map stay in the process's resident set, so memory would grow with N."""

    def __init__(self, path: Path, count: int, shape: tuple[int, ...]):
        import numpy as np
        from numpy.lib.format import open_memmap

        self.path, self.done = path, 0
        open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, *shape)).flush()  # the header and a sparse body

    def write(self, seeds: list[int], images) -> None:
        from numpy.lib.format import open_memmap

        array = open_memmap(self.path, mode="r+")
        array[self.done:self.done + len(images)] = images
        array.flush()
        del array
        self.done += len(images)

    def close(self) -> None:
        pass


class _PngWriter:
    """<prefix>-NNNNNN.png per seed (or latent row), into a folder or a .zip (stored: PNGs are compressed already)."""

    def __init__(self, path: Path, *, zipped: bool, prefix: str = "seed"):
        import zipfile

        self.folder, self.prefix = None if zipped else path, prefix
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) if zipped else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, seeds: list[int], images) -> None:
        from .images import encode_png

        for seed, img in zip(seeds, images):
            name = f"{self.prefix}-{seed:06d}.png"
            if self.zip is not None:
                self.zip.writestr(name, encode_png(img))
            else:
                (self.folder / name).write_bytes(encode_png(img))

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _device(name: str):
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device here; use --device cpu")
    return device


def cmd_sample(args) -> int:
    from tqdm import tqdm

    from .actions import render, render_float
    from .images import make_grid, save_png
    from .latent import MAX_SEEDS, seed_ranges

    kind, out, psi = _sample_kind(args.out), Path(args.out), _check_truncation(args.truncation)
    if args.latents:
        return _sample_latents(args, kind, out, psi)
    ranges = seed_ranges(args.seeds)
    count = sum(len(r) for r in ranges)
    if kind == "grid" and count > MAX_SEEDS:
        stem = out.with_suffix("")
        raise DCGANError(f"--seeds {args.seeds}: {count} seeds do not fit one grid PNG (at most {MAX_SEEDS}); for any number, "
                         f"write one PNG per seed (--out {stem}/), a .zip of them (--out {stem}.zip) or a uint8 array "
                         f"(--out {stem}.npy), streamed in batches")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: give at least 1")
    _, G, meta = _load(args.checkpoint, _device(args.device))
    z_dim, size, channels = meta.model.z_dim, meta.model.image_size, meta.model.channels
    if kind == "grid":
        x = render_float(G, _latents([s for r in ranges for s in r], z_dim, psi))
        save_png(make_grid(x, nrow=args.nrow), out)
        print(f"{out}: {count} samples from {meta.path}")
        return 0
    writer = _NpyWriter(out, count, (size, size, channels)) if kind == "npy" else _PngWriter(out, zipped=kind == "zip")
    try:
        with tqdm(total=count, unit="img", dynamic_ncols=True, disable=None) as bar:
            for seeds in _seed_batches(ranges, args.batch_size):
                writer.write(seeds, render(G, _latents(seeds, z_dim, psi), batch=args.batch_size))
                bar.update(len(seeds))
    finally:
        writer.close()
    print(f"{out}: {count} samples from {meta.path}")
    return 0


def _sample_latents(args, kind: str, out: Path, psi: float) -> int:
    """`dcgan sample --latents FILE`: the saved latents (checked, truncated by psi as seeds are) in the formats of --seeds."""
    import numpy as np

    from .actions import render, render_float
    from .images import make_grid, save_png
    from .latent import truncate
    from .project import load_latents

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: give at least 1")
    _, G, meta = _load(args.checkpoint, _device(args.device))
    z = truncate(load_latents(args.latents, meta.model.z_dim), psi)
    if kind == "grid":
        save_png(make_grid(render_float(G, z), nrow=args.nrow), out)
    elif kind == "npy":
        np.save(out, render(G, z, batch=args.batch_size))
    else:
        writer = _PngWriter(out, zipped=kind == "zip", prefix="latent")
        try:
            writer.write(list(range(len(z))), render(G, z, batch=args.batch_size))
        finally:
            writer.close()
    print(f"{out}: {len(z)} latents of {args.latents} from {meta.path}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# edit

def add_edit_arguments(p: argparse.ArgumentParser) -> None:
    from .directions import MAX_AMOUNT

    p.description = ("The image of one seed moved along named directions (`dcgan directions CK --list` names them), the PNG the "
                     f"app's /edit returns. Amounts are multiples of unit vectors in z, within ±{MAX_AMOUNT:g}.")
    _checkpoint_argument(p)
    p.add_argument("--seed", type=int, required=True, help="the seed to edit")
    p.add_argument("--amount", action="append", metavar="NAME=A", default=[],
                   help="move A along direction NAME, e.g. sefa-0=2 or Smiling=3 (repeat for several)")
    p.add_argument("--keep-fixed", action="append", metavar="NAME", default=[],
                   help="hold this direction still: each moved one is made orthogonal to it, and an attribute (or class) is then "
                        "held where the data set's classifier judged it before the edit (repeatable)")
    _truncation_argument(p)
    p.add_argument("--out", default="edit.png", help="output PNG")
    p.set_defaults(func=cmd_edit)


def _amounts(pairs: list[str]) -> dict[str, float]:
    amounts: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.rpartition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = None
        if not sep or not name or amount is None:
            raise ConfigError(f"--amount {pair}: write NAME=AMOUNT, e.g. --amount sefa-0=2")
        if name in amounts:
            raise ConfigError(f"--amount {name} is given twice")
        amounts[name] = amount
    return amounts


def cmd_edit(args) -> int:
    from .actions import edit_latent, render, squeeze
    from .directions import load_or_compute_directions, shipped_classifier

    amounts, psi = _amounts(args.amount), _check_truncation(args.truncation)
    path, G, meta = _load(args.checkpoint)
    directions = load_or_compute_directions(path, G, meta)
    classifier = shipped_classifier(meta.info.get("dataset")) if args.keep_fixed else None
    z = edit_latent(_latents([args.seed], meta.model.z_dim, psi), directions, amounts, args.keep_fixed, G=G, classifier=classifier)
    _write_png(squeeze(render(G, z)[0]), Path(args.out))
    moved = ", ".join(f"{name} {amount:+g}" for name, amount in amounts.items()) or "nothing moved"
    print(f"{args.out}: seed {args.seed} of {meta.path} ({moved}{'; fixed: ' + ', '.join(args.keep_fixed) if args.keep_fixed else ''})")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# arithmetic

def add_arithmetic_arguments(p: argparse.ArgumentParser) -> None:
    from .directions import ARITHMETIC_PRESETS

    presets = "; ".join(f'"{name}"' for name in ARITHMETIC_PRESETS)
    p.description = ("The paper's vector arithmetic (section 6.3.2): Y = mean(A) - mean(B) + mean(C) over seed groups. Writes "
                     "OUT/centre.png (G(Y)), OUT/grid.png (the paper's 3x3: G(Y) amid 8 variants Y + U(-noise, noise)) and "
                     "OUT/pixels.png (the same arithmetic on images), the three PNGs of the app's /arithmetic.")
    _checkpoint_argument(p)
    for group in "abc":
        p.add_argument(f"--{group}", metavar="SEEDS", default=None, help=f"seeds of group {group.upper()}, e.g. 1,2,3")
    p.add_argument("--preset", metavar="NAME", default=None,
                   help=f"pick A, B and C with the attribute classifier instead (face models), as the app's presets; one of {presets}, "
                        "or a unique start of one")
    p.add_argument("--count", type=int, metavar="N", default=3, help="exemplars per group with --preset")
    p.add_argument("--noise", type=float, default=0.25, help="the variants' uniform noise U(-noise, noise) (the paper's 0.25)")
    p.add_argument("--noise-seed", type=int, default=0, help="seeds the variants' noise")
    _truncation_argument(p)
    p.add_argument("--out", metavar="DIR", default="arithmetic", help="output folder")
    p.set_defaults(func=cmd_arithmetic)


def _preset_name(text: str) -> str:
    from .directions import ARITHMETIC_PRESETS

    matches = [name for name in ARITHMETIC_PRESETS if name == text] or [n for n in ARITHMETIC_PRESETS if n.lower().startswith(text.lower())]
    if len(matches) != 1:
        raise ConfigError(f"--preset {text!r} is {'ambiguous' if matches else 'unknown'}; the presets: "
                          + "; ".join(f'"{n}"' for n in ARITHMETIC_PRESETS))
    return matches[0]


def _preset_groups(args, G, meta) -> list[list[int]]:
    from .actions import PRESET_SEARCH
    from .directions import pick_from_ratings, shipped_classifier
    from .ratings import load_or_rate_seeds

    preset = _preset_name(args.preset)
    dataset = meta.info.get("dataset") if isinstance(meta.info, dict) else None
    classifier = shipped_classifier(dataset)
    if classifier is None or classifier.kind != "attributes":
        raise DCGANError(f"{meta.path} (data set {dataset or 'unknown'!r}) has no attribute classifier; presets need a face model "
                         "(CelebA attributes). Give the groups yourself: --a SEEDS --b SEEDS --c SEEDS")
    z_dim = meta.model.z_dim  # the ratings beside the checkpoint, as the app's preset button reads them
    proba = load_or_rate_seeds(meta.path, G, classifier, PRESET_SEARCH, z_dim=z_dim)
    return pick_from_ratings(proba, classifier, preset, count=args.count, z_dim=z_dim, G=G)


def cmd_arithmetic(args) -> int:
    from .actions import arithmetic_images
    from .latent import MAX_SEED, format_seeds, parse_seeds

    given = {g: getattr(args, g) for g in "abc" if getattr(args, g) is not None}
    if args.preset is not None and given:
        raise ConfigError("give either --preset or the groups --a, --b, --c, not both")
    if args.preset is None and len(given) < 3:
        raise ConfigError(f"give all three groups (missing: {', '.join('--' + g for g in 'abc' if g not in given)}) or --preset NAME")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise ConfigError(f"--noise {args.noise}: give a number >= 0 (the paper's 0.25)")
    if not 0 <= args.noise_seed <= MAX_SEED:
        raise ConfigError(f"--noise-seed {args.noise_seed}: give an integer from 0 to {MAX_SEED}")
    psi = _check_truncation(args.truncation)
    if args.preset is None:
        groups = [parse_seeds(given[g]) for g in "abc"]
    _, G, meta = _load(args.checkpoint)
    if args.preset is not None:
        groups = _preset_groups(args, G, meta)
    za, zb, zc = (_latents(g, meta.model.z_dim, psi) for g in groups)
    result = arithmetic_images(G, za, zb, zc, noise=args.noise, noise_seed=args.noise_seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, img in (("centre", result.centre), ("grid", result.grid), ("pixels", result.pixel)):
        _write_png(img, out / f"{name}.png")
    a, b, c = (format_seeds(g) for g in groups)
    print(f"{out}/: centre.png, grid.png, pixels.png for A={a} B={b} C={c} of {meta.path}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# interpolate

def add_interpolate_arguments(p: argparse.ArgumentParser) -> None:
    from .actions import LOOP_MODES
    from .images import MP4_MIN_SIDE
    from .latent import INTERPOLATIONS

    p.description = ("A walk through keyframe seeds (section 6.1) as a GIF looping forever at native size, or an H.264 MP4 enlarged "
                     f"by nearest neighbour to at least {MP4_MIN_SIDE} px: the app's /interpolate, without its frame limits.")
    _checkpoint_argument(p)
    p.add_argument("--keyframes", metavar="SEEDS", required=True, help="two or more seeds, e.g. 1,2,3")
    p.add_argument("--frames", type=int, default=16, help="frames per keyframe-to-keyframe segment")
    p.add_argument("--method", choices=sorted(INTERPOLATIONS), default="slerp", help="path between keyframes")
    p.add_argument("--loop", choices=LOOP_MODES, default="loop",
                   help="loop: back to the first keyframe; pingpong: forward then back; once: an open path")
    p.add_argument("--fps", type=float, default=12.0, help=f"frames per second ({FPS_RANGE[0]:g}-{FPS_RANGE[1]:g})")
    _truncation_argument(p)
    p.add_argument("--out", default="walk.gif", help="output .gif or .mp4")
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from .actions import count_frames, walk_frames
    from .images import MP4_MIN_SIDE, Mp4Writer, write_gif
    from .latent import format_seeds, parse_seeds

    out = Path(args.out)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"--out {args.out}: write a .gif or an .mp4")
    seeds = parse_seeds(args.keyframes)
    if len(seeds) < 2:
        raise ConfigError(f"--keyframes {args.keyframes}: a walk needs at least two seeds")
    if args.frames < 1:
        raise ConfigError(f"--frames {args.frames}: give at least 1 frame per segment")
    if not FPS_RANGE[0] <= args.fps <= FPS_RANGE[1]:
        raise ConfigError(f"--fps {args.fps}: give a number from {FPS_RANGE[0]:g} to {FPS_RANGE[1]:g}")
    psi = _check_truncation(args.truncation)
    _, G, meta = _load(args.checkpoint)
    size, total = meta.model.image_size, count_frames(len(seeds), args.frames, args.loop)
    scale = max(1, math.ceil(MP4_MIN_SIDE / size))
    video = Mp4Writer(out, (size, size), fps=args.fps, scale=scale) if out.suffix.lower() == ".mp4" else None
    chunks: list[Any] = []
    try:
        with tqdm(total=total, unit="frame", dynamic_ncols=True, disable=None) as bar:
            for chunk in walk_frames(G, _latents(seeds, meta.model.z_dim, psi), args.frames, method=args.method, loop=args.loop):
                if video is not None:
                    video.write(chunk)
                else:  # a GIF is written at the end, from every frame
                    chunks.append(chunk)
                bar.update(len(chunk))
    finally:
        if video is not None:
            video.close()
    if video is None:
        write_gif(np.concatenate(chunks), out, fps=args.fps)
    print(f"{out}: {total} frames through seeds {format_seeds(seeds)} ({args.method}, {args.loop}) of {meta.path}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# nearest

def add_nearest_arguments(p: argparse.ArgumentParser) -> None:
    from .datasets import default_data_root

    p.description = ("The k training images nearest to a seed's sample in pixel space (RMS, grey levels), a memorisation check: "
                     "writes the query then its neighbours in one row (the app's /nearest PNG) and prints their indices.")
    _checkpoint_argument(p)
    p.add_argument("--seed", type=int, required=True, help="the seed whose sample is compared")
    p.add_argument("--data-root", metavar="DIR", default=os.environ.get("DCGAN_DATA_ROOT") or str(default_data_root()),
                   help="folder holding the training data (itself, DIR/<dataset> or where the data set usually lies under it, "
                        "e.g. celeba10k/) [default: $DCGAN_DATA_ROOT, else the user cache data folder]")
    p.add_argument("--dataset", default=None, help="the training data set [default: the checkpoint's]")
    p.add_argument("-k", type=int, default=8, help="neighbours to show")
    _truncation_argument(p)
    p.add_argument("--out", default="nearest.png", help="output PNG")
    p.set_defaults(func=cmd_nearest)


def cmd_nearest(args) -> int:
    from .actions import load_training_images, nearest_images

    if args.k < 1:
        raise ConfigError(f"-k {args.k}: give at least 1 neighbour")
    psi = _check_truncation(args.truncation)
    _, G, meta = _load(args.checkpoint)
    dataset = args.dataset or (meta.info.get("dataset") if isinstance(meta.info, dict) else None)
    if not dataset:
        raise DCGANError(f"{meta.path}: its metadata names no data set; pass --dataset NAME")
    data = load_training_images(dataset, [Path(args.data_root)], meta.model.image_size, meta.model.channels)
    result = nearest_images(G, _latents([args.seed], meta.model.z_dim, psi), data.images, args.k)
    _write_png(result.row(), Path(args.out))
    print(f"{args.out}: seed {args.seed}, then its {len(result.indices)} nearest of {len(data.images)} {dataset} images")
    print("index  RMS distance (grey levels)")
    for index, distance in zip(result.indices, result.distances):
        print(f"{index:5d}  {distance:.2f}")
    return 0
