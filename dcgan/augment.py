"""DiffAugment (Zhao et al. 2020): the same random, differentiable transforms on every image D sees, real and fake.

On small data sets D memorises the real images and its gradients stop helping G; augmenting only the reals would
teach G to draw augmented images. Transforming reals and fakes alike, and differentiably (G's step backpropagates
through the transform), removes both problems. Every random draw comes from a ``torch.Generator`` the trainer owns,
so a resumed run draws exactly what the uninterrupted run would have.

Images are float [N, C, H, W] in [-1, 1]; each transform keeps the shape (values may leave [-1, 1], as in the paper).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .config import AUGMENTATIONS

TRANSLATION = 0.125   # shift by up to 1/8 of the side, zero-filled (the paper's setting)
CUTOUT = 0.5          # erase one square of half the side


def _uniform(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One U(0, 1) number per image, shaped to broadcast over [C, H, W]."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype, generator=gen)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random brightness (±0.5), saturation (x0-2) and contrast (x0.5-1.5), each per image."""
    x = x + (_uniform(x, gen) - 0.5)
    if x.shape[1] > 1:  # saturation needs colour
        grey = x.mean(1, keepdim=True)
        x = (x - grey) * (_uniform(x, gen) * 2) + grey
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, gen) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = TRANSLATION) -> torch.Tensor:
    """Shift each image by a random whole number of pixels (up to ``ratio`` of the side), filling with zeros."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device, generator=gen)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device, generator=gen)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy + 1  # +1: the padding row/column of zeros
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx + 1
    rows, cols = rows.clamp(0, h + 1).expand(n, h, w), cols.clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # [N, H + 2, W + 2, C]
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = CUTOUT) -> torch.Tensor:
    """Zero one square of ``ratio`` of the side per image, centred anywhere (it may hang over the edge)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), device=x.device, generator=gen)
    cx = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), device=x.device, generator=gen)
    top, left = cy - size_h // 2, cx - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "color": color, "translation": translation, "cutout": cutout,
}
assert tuple(TRANSFORMS) == AUGMENTATIONS  # the option's names (dcgan.config) and their functions, in one order


def diff_augment(x: torch.Tensor, policy: list[str], gen: torch.Generator) -> torch.Tensor:
    """``x`` through each transform of ``policy`` (from ``dcgan.config.parse_augment``), randomness from ``gen``."""
    for name in policy:
        x = TRANSFORMS[name](x, gen)
    return x


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left-right (real images only: a data augmentation, not DiffAugment)."""
    flip = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
