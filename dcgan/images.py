"""Image helpers: [-1, 1] float batches to uint8, grids, PNG/GIF/MP4 files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """x [N, C, H, W] in [-1, 1] -> img uint8 [N, H, W, C]."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


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
    import io

    from .checkpoints import atomic_write_bytes

    buffer = io.BytesIO()
    to_pil(img).save(buffer, format="PNG")
    atomic_write_bytes(buffer.getvalue(), Path(path))


def enlarge(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling for showing small images [H, W, C]."""
    return img.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else img


def save_gif(frames: np.ndarray, path: Path, *, fps: float = 12.0) -> None:
    """frames uint8 [T, H, W, C] -> an animated GIF that loops forever."""
    import imageio.v3 as iio

    frames = frames[..., 0] if frames.shape[-1] == 1 else frames
    iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)


def save_mp4(frames: np.ndarray, path: Path, *, fps: float = 12.0, scale: int = 1) -> None:
    """frames uint8 [T, H, W, C] -> H.264 MP4 (sides enlarged by ``scale`` and padded to even sizes for players)."""
    import imageio.v3 as iio

    frames = np.stack([enlarge(f, scale) for f in frames])
    if frames.shape[-1] == 1:
        frames = frames.repeat(3, axis=-1)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    iio.imwrite(path, frames, extension=".mp4", fps=fps, codec="libx264", macro_block_size=1)
