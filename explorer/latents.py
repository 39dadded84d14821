"""Your image as a latent: projected (dcgan.project) or uploaded latents, named ``img-<sha12>`` and kept server-side.

A ``LatentStore`` holds the latents this app has projected or received, bounded (the oldest are forgotten) and
never written to disk; a name is a content hash, so only whoever projected or uploaded a latent knows it. Every
seed list accepts these names too (``resolve``). Nothing here imports gradio.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from dcgan.errors import LatentError, brief
from dcgan.latent import latent_from_seed, truncate
from dcgan.project import PRESETS, Projector, check_latents, is_latent_name, latent_name, load_latents, read_image, save_latents

MAX_LATENTS = 4096   # latents kept per app (100 floats each: ~1.6 MB in all)
MAX_LATENT_FILE_BYTES = 1 * 2**20


class LatentStore:
    """name -> float32 [z_dim], thread-safe, least recently used forgotten past ``max_latents``."""

    def __init__(self, max_latents: int = MAX_LATENTS):
        self.max_latents = max_latents
        self._latents: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, z: torch.Tensor) -> str:
        """Keep one latent [z_dim]; returns its name (the same vector always gets the same name)."""
        z = z.detach().float().cpu().reshape(-1).clone()
        name = latent_name(z)
        with self._lock:
            self._latents[name] = z
            self._latents.move_to_end(name)
            while len(self._latents) > self.max_latents:
                self._latents.popitem(last=False)
        return name

    def get(self, name: Any, z_dim: int) -> torch.Tensor:
        """The latent called ``name`` [z_dim]; LatentError when the name is malformed, unknown or for another z_dim."""
        if not is_latent_name(name):
            raise LatentError(f"latent name {brief(name)}: latent names look like img-0123456789ab")
        with self._lock:
            z = self._latents.get(name)
            if z is not None:
                self._latents.move_to_end(name)
        if z is None:
            raise LatentError(f"latent {name} is unknown here (forgotten, or from another server): project the image "
                              "again or upload its .npy")
        if z.numel() != z_dim:
            raise LatentError(f"latent {name} has {z.numel()} dims; this model's z_dim is {z_dim}")
        return z.clone()


def resolve(store: LatentStore, refs: list[int | str], z_dim: int, truncation: float = 1.0) -> torch.Tensor:
    """Seeds and latent names -> z [N, z_dim]; truncation scales both, as for seeds."""
    if not refs:
        raise LatentError("no seeds given")
    return truncate(torch.stack([store.get(r, z_dim) if isinstance(r, str) else latent_from_seed(r, z_dim) for r in refs]), truncation)


@dataclass
class ProjectedImage:
    name: str                 # the latent's name, usable wherever a seed is
    prepared: np.ndarray      # the crop the model saw: uint8 [H, W] or [H, W, 3]
    reconstruction: np.ndarray  # G(z), same layout
    quality: dict[str, Any]   # psnr, feature_distance, agreement, per-label probabilities (dcgan.project.quality)


def _uint8(x: torch.Tensor) -> np.ndarray:
    img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return img[..., 0] if img.shape[-1] == 1 else img


def project_image(store: LatentStore, projector: Projector, image: Any, *, mode: str = "fast",
                  progress: Callable[[int, int], None] | None = None) -> ProjectedImage:
    """Project one image (file bytes, a path, a PIL image or a uint8 array) and keep its latent in ``store``."""
    if mode not in PRESETS:
        raise LatentError(f"mode {brief(mode)}: choose {' or '.join(sorted(PRESETS))}")
    if isinstance(image, (bytes, bytearray, str)):
        image = read_image(image)
    result = projector.project([image] if not isinstance(image, (list, tuple)) else image[:1], settings=PRESETS[mode], progress=progress)
    quality = dict(result.quality[0])
    return ProjectedImage(store.add(result.z[0]), _uint8(result.target[0]), _uint8(result.reconstruction[0]), quality)


def latent_bytes(store: LatentStore, name: Any, z_dim: int) -> bytes:
    """The .npy file of one latent: float32 [z_dim]."""
    return save_latents(store.get(name, z_dim))


def upload_latents(store: LatentStore, data: bytes, z_dim: int) -> list[str]:
    """Names of the latents in a .npy of shape [z_dim] or [N, z_dim] (finite, bounded; never unpickled)."""
    if len(data) > MAX_LATENT_FILE_BYTES:
        raise LatentError(f"latent file is {len(data) / 2**20:.1f} MB; at most {MAX_LATENT_FILE_BYTES // 2**20} MB")
    return [store.add(z) for z in load_latents(data, z_dim)]


__all__ = ["LatentStore", "ProjectedImage", "check_latents", "latent_bytes", "project_image", "resolve", "upload_latents"]
