"""Files the explorer hands out (PNGs, GIFs, MP4s) in one private folder, pruned by age; fast GIF/MP4 writers.

The writers here trade a little compression for speed (an interactive 64-frame GIF must take well under a second
on a laptop CPU): per-frame fast-octree palettes for GIFs, x264 "veryfast" with ffmpeg doing the nearest-neighbour
enlargement for MP4s.
"""
from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


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


class OutputDir:
    """A folder of generated files with unique names; files older than ``max_age_s`` are deleted now and then.

    Gradio copies every returned file into its own cache, so a file here only has to outlive one request.
    """

    def __init__(self, root: Path | str | None = None, *, max_age_s: float = 3600.0, prune_every: int = 200):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="dcgan-explorer-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self.prune_every = prune_every
        self._lock = threading.Lock()
        self._count = 0

    def path(self, stem: str, suffix: str) -> Path:
        """A fresh file name ``<stem>-<random>.<suffix>`` in the folder (stem reduced to safe characters)."""
        with self._lock:
            self._count += 1
            due = self._count % self.prune_every == 0
        if due:
            self.prune()
        safe = re.sub(r"[^A-Za-z0-9_.,-]+", "_", stem)[:80] or "file"
        return self.root / f"{safe}-{uuid.uuid4().hex[:10]}{suffix}"

    def save_png(self, img: np.ndarray, path: Path) -> Path:
        """uint8 [H, W] or [H, W, 3] -> PNG (fast compression: these files are small and short-lived)."""
        Image.fromarray(img).save(path, format="PNG", compress_level=1)
        return path

    def png(self, img: np.ndarray, stem: str = "image") -> Path:
        return self.save_png(img, self.path(stem, ".png"))

    def prune(self) -> int:
        """Delete files older than max_age_s; returns how many went."""
        cutoff, removed = time.time() - self.max_age_s, 0
        for path in self.root.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError as exc:  # another request may be deleting it too
                log.debug("prune %s: %s", path, exc)
        return removed
