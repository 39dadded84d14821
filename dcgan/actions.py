"""The pixels of the explorer's actions as plain functions of a generator: rendering latents, edits along
directions, the paper's arithmetic figure, interpolation walks and nearest training images.

The app's service layer and the CLI's verbs both call these (and ``dcgan.images.encode_png``), so a verb's PNG is
byte for byte the matching API endpoint's. Images are uint8 [N, H, W, C] at the model's native size; ``squeeze``
turns grey ones into 2-D arrays for PNG files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .config import DataConfig
from .datasets import DATASETS, ImageData, build
from .directions import Direction, apply_directions, condition, hold_judgements
from .errors import ConfigError, DatasetError, LatentError
from .images import tile_grid, to_uint8
from .latent import arithmetic as latent_arithmetic
from .latent import arithmetic_variants, interpolate_path

BATCH = 64                     # latents per generator call
STREAM_CHUNK = 16              # interpolation frames rendered between hand-offs to a video encoder
PRESET_SEARCH = 10_000         # seeds the classifier rates when picking an arithmetic preset's exemplars
LOOP_MODES = ("loop", "pingpong", "once")  # loop: back to the first keyframe; pingpong: forward then back; once: open path
NEAREST_CHUNK = 1024           # training images compared at once


def _device(G: nn.Module) -> torch.device:
    return next(G.parameters()).device


def render(G: nn.Module, z: torch.Tensor, *, batch: int = BATCH) -> np.ndarray:
    """z [N, z_dim] -> uint8 [N, H, W, C] (C = 1 or 3), ``batch`` latents per call (the pixels do not depend on it)."""
    device = _device(G)
    with torch.inference_mode():
        return np.concatenate([to_uint8(G(chunk.to(device))) for chunk in z.split(batch)])


def render_float(G: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """z [N, z_dim] -> x float32 [N, C, H, W] in [-1, 1] on the CPU."""
    device = _device(G)
    with torch.inference_mode():
        return torch.cat([G(chunk.to(device)).float().cpu() for chunk in z.split(BATCH)])


def squeeze(img: np.ndarray) -> np.ndarray:
    """[..., H, W, 1] -> [..., H, W]: grey images as 2-D arrays, as PIL and browsers expect."""
    return img[..., 0] if img.shape[-1] == 1 else img


# ----------------------------------------------------------------------------------------------------------------
# edits along directions

def edit_latent(z: torch.Tensor, directions: list[Direction], amounts: dict[str, float], keep_fixed: list[str] = (), *,
                G: nn.Module | None = None, classifier: Any = None) -> torch.Tensor:
    """z [N, z_dim] moved by amount * vector for each named direction; each moved direction is first made orthogonal
    to the ``keep_fixed`` ones (InterFaceGAN's conditional manipulation). Amounts stay within ±MAX_AMOUNT.

    Given G and the data set's classifier, fixed attributes (or classes) are also held where the classifier judged
    them before the edit (``hold_judgements``): orthogonality alone keeps them only to first order.
    """
    by_name = {d.name: d for d in directions}
    unknown = sorted((set(amounts) | set(keep_fixed)) - set(by_name))
    if unknown:
        raise LatentError(f"unknown direction(s) {unknown}; known: {sorted(by_name)}")
    fixed = [by_name[n] for n in keep_fixed]
    moved = {n: a for n, a in amounts.items() if a != 0.0}
    used = [condition(by_name[n], fixed) if fixed else by_name[n] for n in moved]
    edited = apply_directions(z, used, moved)
    if G is None or not fixed or not moved:
        return edited
    return hold_judgements(G, classifier, z, edited, fixed)


# ----------------------------------------------------------------------------------------------------------------
# vector arithmetic (section 6.3.2)

@dataclass
class Arithmetic:
    centre: np.ndarray         # G(Y), Y = mean(A) - mean(B) + mean(C)
    grid: np.ndarray           # the paper's 3x3: G(Y) in the centre, 8 variants Y + U(-noise, noise) around it
    pixel: np.ndarray          # the same arithmetic on images: mean(G(A)) - mean(G(B)) + mean(G(C))
    y: torch.Tensor = field(repr=False)  # [z_dim]


def arithmetic_images(G: nn.Module, za: torch.Tensor, zb: torch.Tensor, zc: torch.Tensor, *, noise: float = 0.25,
                      noise_seed: int = 0) -> Arithmetic:
    """The paper's figure for latent groups za, zb, zc [n_i, z_dim]: G(Y), its 3x3 of noisy variants, and pixel space."""
    y = latent_arithmetic(za, zb, zc)
    variants = arithmetic_variants(y, count=8, noise=noise, seed=noise_seed)
    imgs = render(G, variants)
    x = render_float(G, torch.cat([za, zb, zc]))
    xa, xb, xc = x.split([len(za), len(zb), len(zc)])
    pixel = to_uint8((xa.mean(0) - xb.mean(0) + xc.mean(0)).clamp(-1, 1)[None])[0]
    centre = len(variants) // 2  # arithmetic_variants puts Y itself in the middle of the 3x3
    return Arithmetic(squeeze(imgs[centre]), squeeze(tile_grid(imgs, 3, padding=2)), squeeze(pixel), y)


# ----------------------------------------------------------------------------------------------------------------
# interpolation (section 6.1)

def count_frames(keyframes: int, frames: int, loop: str) -> int:
    """Frames in the played sequence for ``keyframes`` seeds, ``frames`` per segment and a LOOP_MODES mode."""
    forward = keyframes * frames if loop == "loop" else (keyframes - 1) * frames + 1
    return 2 * forward - 2 if loop == "pingpong" else forward


def walk_frames(G: nn.Module, keyframes: torch.Tensor, frames: int, *, method: str = "slerp", loop: str = "loop",
                chunk: int = STREAM_CHUNK) -> Iterator[np.ndarray]:
    """uint8 [T, H, W, C] chunks of the walk through keyframe latents [K, z_dim], in playing order, ``chunk`` frames
    at a time, so a video encoder works while later frames render; count_frames(K, frames, loop) frames in all."""
    if loop not in LOOP_MODES:
        raise ConfigError(f"loop: {loop!r} is not one of {', '.join(LOOP_MODES)}")
    path = interpolate_path(keyframes, frames, method=method, loop=loop == "loop")
    forward = []
    for z in path.split(chunk):
        images = render(G, z)
        if loop == "pingpong":  # the way back replays these
            forward.append(images)
        yield images
    if loop == "pingpong":
        yield np.concatenate(forward)[-2:0:-1]


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


def nearest_images(G: nn.Module, z: torch.Tensor, images: torch.Tensor, k: int) -> Nearest:
    """The ``k`` training images (uint8 [N, C, H, W]) closest to G(z) (z [1, z_dim]) in pixel space."""
    x = render_float(G, z)
    query = ((x + 1) * 127.5).flatten(1)
    dist = torch.cat([(chunk.flatten(1).float() - query).square().mean(1) for chunk in images.split(NEAREST_CHUNK)])
    top = dist.topk(min(k, len(dist)), largest=False)
    found = images[top.indices].permute(0, 2, 3, 1).numpy()
    return Nearest(squeeze(to_uint8(x)[0]), found, [round(float(d.sqrt()), 2) for d in top.values], top.indices.tolist())


def data_configs_under(dataset: str, roots: list[Path]) -> list[DataConfig]:
    """Where ``dataset`` may lie under each root: only where DatasetSpec says it lives (celeba: celeba10k/) when its
    files are there (a root laid out like ../shared/data, as the Train tab finds it; the root itself would be searched
    for every image under it), else the root itself, its folder of that name, and that DatasetSpec folder."""
    spec = DATASETS.get(dataset)
    found: list[DataConfig] = []
    for root in roots:
        present = spec is not None and spec.is_present(root)
        for folder in [spec.root_under(root)] if present else [root, root / dataset] + ([spec.root_under(root)] if spec else []):
            cfg = DataConfig(dataset=dataset, root=str(folder))
            if cfg not in found:
                found.append(cfg)
    return found


def load_training_images(dataset: str, roots: list[Path], image_size: int, channels: int) -> ImageData:
    """The training images of ``dataset`` at the model's size and channels, from the first root holding them;
    DatasetError naming every place looked at otherwise."""
    tried = []
    for cfg in data_configs_under(dataset, roots):
        try:
            return build(cfg, image_size, channels)
        except (DatasetError, ConfigError) as exc:
            tried.append(f"{cfg.root}: {exc}")
    raise DatasetError(f"training data of {dataset!r} not found; looked in: {'; '.join(tried) or 'no folder given'}")
