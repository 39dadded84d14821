"""Image helpers: [-1, 1] float batches to uint8, grids, PNG files (the app's GIF/MP4 writers are in explorer.outputs)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .io import atomic_write_bytes


def quantise(x: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] in [-1, 1] -> uint8 [N, C, H, W], rounded: the inverse of datasets.batch_to_float."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """x [N, C, H, W] in [-1, 1] -> img uint8 [N, H, W, C]."""
    return quantise(x).permute(0, 2, 3, 1).cpu().numpy()


def make_grid(x: torch.Tensor, *, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """x [N, C, H, W] in [-1, 1] -> one uint8 image [H', W', C] (C is 3; grey is repeated), ~square by default."""
    from torchvision.utils import make_grid as _tv_make_grid  # here, not at import: torchvision adds ~2 s to app start

    nrow = nrow or max(1, int(np.ceil(np.sqrt(len(x)))))
    grid = _tv_make_grid(x.detach().float().cpu(), nrow=nrow, padding=padding, value_range=(-1, 1), normalize=True, pad_value=1.0)
    return (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def to_pil(img: np.ndarray) -> Image.Image:
    """uint8 [H, W, C] (C in 1, 3) -> PIL image."""
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def save_png(img: np.ndarray, path: Path) -> None:
    """Write a PNG atomically: a watcher (or a full disk) never sees half an image."""
    buffer = io.BytesIO()
    to_pil(img).save(buffer, format="PNG")
    atomic_write_bytes(buffer.getvalue(), Path(path))
