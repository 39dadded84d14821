"""Downloads of what the explorer shows: the Generate grid as a .zip of native-size PNGs (one ``seed-NNNNNN.png``
each, the files ``dcgan sample --out DIR/`` writes) and the current seed's latent as a .npy."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dcgan.images import encode_png
from dcgan.latent import format_seeds

from . import service
from .derived import Catalog
from .outputs import OutputDir


def seed_png_name(seed: int) -> str:
    return f"seed-{seed:06d}.png"


def grid_zip(catalog: Catalog, model: str, seeds: Any, truncation: Any = 1.0, *, out: OutputDir) -> Path:
    """A .zip (stored, PNGs are compressed already) of one PNG per seed of a seed list, as /generate checks it."""
    samples = service.generate(catalog, model, seeds, truncation)
    path = out.path(f"{model}-{format_seeds(samples.seeds)[:40]}", ".zip")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for seed, img in dict(zip(samples.seeds, samples.images)).items():  # a seed listed twice is one file
            archive.writestr(seed_png_name(seed), encode_png(img))
    return path


def latent_npy(catalog: Catalog, model: str, seed: Any, truncation: Any = 1.0, *, out: OutputDir) -> Path:
    """float32 [z_dim]: the latent the current seed's image comes from, ``truncate(latent_from_seed(seed, z_dim), ψ)``
    (a latent name's own values, truncated the same way)."""
    seed, psi = service.check_ref(seed), service.check_float("truncation", truncation, 0.0, 1.0)
    z = service.seed_latents(catalog.state(model).model, [seed], psi, catalog.latents)[0]
    path = out.path(f"{model}-{seed if isinstance(seed, str) else f'seed{seed}'}-psi{psi:g}-z", ".npy")
    np.save(path, z.numpy().astype(np.float32))
    return path
