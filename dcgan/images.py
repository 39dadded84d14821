"""Image helpers: [-1, 1] float batches to uint8, grids, PNG files, and the fast GIF/MP4 writers the app and the CLI share.

The writers trade a little compression for speed (an interactive 64-frame GIF must take well under a second on a
laptop CPU): per-frame fast-octree palettes for GIFs, x264 "veryfast" with ffmpeg doing the nearest-neighbour
enlargement for MP4s. ``encode_png`` is the one PNG encoder of every image the app's API and the CLI's verbs hand out,
so both give the same bytes.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .io import atomic_write_bytes

MP4_MIN_SIDE = 256  # video codecs smear tiny frames: MP4s are enlarged (nearest neighbour) to at least this side


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


def encode_png(img: np.ndarray) -> bytes:
    """uint8 [H, W], [H, W, 1] or [H, W, 3] -> PNG bytes, fast compression (the API's and the CLI verbs' images)."""
    buffer = io.BytesIO()
    Image.fromarray(img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def tile_grid(images: np.ndarray, columns: int, *, padding: int = 0, pad_value: int = 255) -> np.ndarray:
    """uint8 [N, H, W, C] -> one [rows * (H + p) - p, columns * (W + p) - p, C] image, row-major, unused cells blank."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + padding) - padding, columns * (w + padding) - padding, c), pad_value, dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * (h + padding): r * (h + padding) + h, col * (w + padding): col * (w + padding) + w] = img
    return grid


def write_gif(frames: np.ndarray, path: Path, *, fps: float = 12.0) -> None:
    """uint8 [T, H, W, C] -> an animated GIF that loops forever, one frame per image (grey stays grey)."""
    frames = frames[..., 0] if frames.shape[-1] == 1 else frames
    if frames.ndim == 3:
        images = [Image.fromarray(f, mode="L") for f in frames]
    else:  # fast octree is ~20x quicker than median cut and looks the same on smooth GAN frames
        images = [Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                   optimize=False, disposal=1)


class Mp4Writer:
    """Streams uint8 [H, W, C] frames into an H.264 MP4 (yuv420p, plays in browsers), enlarged ``scale`` times by
    nearest neighbour inside ffmpeg. ffmpeg encodes in its own process while the caller renders the next frames."""

    def __init__(self, path: Path, size: tuple[int, int], *, fps: float = 12.0, scale: int = 1):
        import imageio_ffmpeg

        h, w = size
        out_w, out_h = w * scale + (w * scale) % 2, h * scale + (h * scale) % 2
        self._writer = imageio_ffmpeg.write_frames(
            str(path), (w, h), fps=fps, codec="libx264", quality=None, macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-vf", f"scale={w * scale}:{h * scale}:flags=neighbor,pad={out_w}:{out_h}", "-preset", "veryfast",
                           "-crf", "16", "-movflags", "+faststart"])
        self._writer.send(None)

    def write(self, frames: np.ndarray) -> None:
        """frames uint8 [T, H, W, C] (C = 1 or 3)."""
        if frames.shape[-1] == 1:
            frames = frames.repeat(3, axis=-1)
        for frame in frames:
            self._writer.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        self._writer.close()
