"""An encoder x -> z, trained on the generator's own samples: the start of a projection (dcgan.project).

Why: the best of 1024 seeded latents starts a photo at ~12 dB; an encoder lands much nearer in one forward pass, so
fewer optimisation steps reach the same quality. It learns from pairs (z, G(z)) only, so it needs no data set, and it
ships beside its generator as encoder.safetensors, tied to that generator by the fingerprint of its weights.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .checkpoints import GENERATOR_FILE
from .errors import CheckpointError, ConfigError
from .io import load_safetensors, metadata_json, module_tensors, save_safetensors

ENCODER_FILE = "encoder.safetensors"
ENCODER_SUFFIX = ".encoder.safetensors"  # x.safetensors -> x.encoder.safetensors (no "model" metadata: never listed as a model)
ENCODER_FORMAT_VERSION = 1
MAX_ENCODER_BYTES = 32 * 2**20

log = logging.getLogger(__name__)

Progress = Callable[[int, int, float], None]  # (steps done, steps in all, loss of the last step)


@dataclass
class EncoderConfig:
    z_dim: int = 100
    image_size: int = 64
    channels: int = 3
    width: int = 32  # channels of the first conv; doubled at each halving, as in DCGAN's D

    def validate(self) -> None:
        sizes = (28, 8, 16, 32, 64, 128, 256)  # the generators' sizes: MNIST's 28 (Keras arch) or a power of two
        if self.image_size not in sizes or self.channels not in (1, 3) or not 1 <= self.z_dim <= 1024 or not 4 <= self.width <= 256:
            raise ConfigError(f"encoder {asdict(self)}: image_size one of {sizes}, channels 1 or 3, z_dim 1-1024, width 4-256")


class Encoder(nn.Module):
    """DCGAN's D with z_dim outputs: stride-2 convs (BN, LeakyReLU) down to 4x4 (7x7 for 28 px), then a linear map."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        halvings = 2 if cfg.image_size == 28 else int(math.log2(cfg.image_size)) - 2
        layers: list[nn.Module] = []
        c_in, width = cfg.channels, cfg.width
        for i in range(halvings):
            layers += [nn.Conv2d(c_in, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2, True)]
            c_in, width = width, width * 2
        side = cfg.image_size >> halvings
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * side * side, cfg.z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


@dataclass
class EncoderTraining:
    steps: int = 6000
    batch: int = 64
    lr: float = 1e-3          # Adam, cosine-decayed to 1% of it
    pixel_weight: float = 1.0  # |G(E(G(z))) - G(z)|^2 beside |E(G(z)) - z|^2 / z_dim: latents that redraw the image
    seed: int = 0
    max_minutes: float | None = None  # stop early (the encoder so far is kept)

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 2 or not (self.lr > 0 and math.isfinite(self.lr)) or self.pixel_weight < 0:
            raise ConfigError(f"encoder training {asdict(self)}: steps >= 1, batch >= 2, lr > 0, pixel_weight >= 0")


def train_encoder(G: nn.Module, *, z_dim: int, training: EncoderTraining = EncoderTraining(), width: int = 32,
                  progress: Progress | None = None) -> tuple[Encoder, dict[str, Any]]:
    """An encoder for G (kept in eval mode, frozen) from fresh (z, G(z)) batches; returns it in eval mode and a record
    of the training (steps, minutes, final latent and pixel losses)."""
    training.validate()
    p = next(G.parameters())
    G.eval()
    requires_grad = [q.requires_grad for q in G.parameters()]
    G.requires_grad_(False)
    with torch.no_grad():
        probe = G(torch.zeros(1, z_dim, device=p.device, dtype=p.dtype))
    E = Encoder(EncoderConfig(z_dim=z_dim, image_size=probe.shape[-1], channels=probe.shape[1], width=width)).to(p.device)
    optimiser = torch.optim.Adam(E.parameters(), lr=training.lr, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, training.steps, eta_min=training.lr / 100)
    rng = torch.Generator().manual_seed(training.seed)
    start, done, latent_loss, pixel_loss = time.monotonic(), 0, math.nan, math.nan
    try:
        for step in range(training.steps):
            z = torch.randn(training.batch, z_dim, generator=rng).to(p.device, p.dtype)
            with torch.no_grad():
                x = G(z)
            z_hat = E(x.float())
            latent = (z_hat - z.float()).square().mean()
            loss = latent
            if training.pixel_weight > 0:
                pixel = (G(z_hat.to(p.dtype)).float() - x.float()).square().mean()
                loss = loss + training.pixel_weight * pixel
                pixel_loss = pixel.item()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            done, latent_loss = step + 1, latent.item()
            if progress is not None:
                progress(done, training.steps, loss.item())
            if training.max_minutes is not None and time.monotonic() - start > 60 * training.max_minutes:
                break
    finally:
        for q, flag in zip(G.parameters(), requires_grad):
            q.requires_grad_(flag)
    record = {"steps": done, "minutes": round((time.monotonic() - start) / 60, 2), "latent_mse": round(latent_loss, 5),
              "pixel_mse": round(pixel_loss, 5), **asdict(training)}
    return E.eval(), record


def encoder_path(checkpoint_path: Path | str) -> Path:
    """<dir>/encoder.safetensors for a folder (or its generator.safetensors), x.encoder.safetensors for any other x.safetensors."""
    path = Path(checkpoint_path)
    if path.is_dir():
        return path / ENCODER_FILE
    if path.name == GENERATOR_FILE:
        return path.parent / ENCODER_FILE
    return path.with_name(path.name.removesuffix(".safetensors") + ENCODER_SUFFIX)


def save_encoder(E: Encoder, path: Path | str, *, fingerprint: str, training: dict[str, Any],
                 dtype: torch.dtype = torch.float16) -> None:
    """Weights (cast to ``dtype``), the architecture and the generator's fingerprint as metadata."""
    metadata = {"format_version": str(ENCODER_FORMAT_VERSION), "content": "dcgan-encoder", "config": json.dumps(asdict(E.cfg)),
                "generator_fingerprint": fingerprint, "training": json.dumps(training)}
    save_safetensors(module_tensors(E, dtype), Path(path), metadata=metadata)


def load_encoder(path: Path | str, *, fingerprint: str | None = None) -> Encoder:
    """An encoder file -> Encoder in eval mode on the CPU; CheckpointError if it is damaged, foreign, or (given
    ``fingerprint``) trained for another generator."""
    path = Path(path)
    metadata, tensors = load_safetensors(path, max_bytes=MAX_ENCODER_BYTES, what="encoder file")
    if metadata.get("content") != "dcgan-encoder":
        raise CheckpointError(f"{path}: not an encoder file (no 'content: dcgan-encoder' metadata)")
    if metadata.get("format_version") != str(ENCODER_FORMAT_VERSION):
        raise CheckpointError(f"{path}: format_version {metadata.get('format_version')}, expected {ENCODER_FORMAT_VERSION}")
    if fingerprint is not None and metadata.get("generator_fingerprint") != fingerprint:
        raise CheckpointError(f"{path}: trained for another generator (its weights differ); retrain it with `dcgan encoder`")
    try:
        E = Encoder(EncoderConfig(**metadata_json(metadata, "config", path)))
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: invalid encoder config in metadata: {exc}") from exc
    expected = E.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise CheckpointError(f"{path}: tensors do not match the encoder described in its metadata")
    if not all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
        raise CheckpointError(f"{path}: encoder weights contain NaN or infinite values")
    E.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return E.eval().requires_grad_(False)


def encoder_for(checkpoint_path: Path | str, G: nn.Module) -> Encoder | None:
    """The encoder beside a checkpoint if there is one trained for exactly this G, else None (with a warning when
    the file is there but unusable: the projection then starts from seeded latents alone)."""
    from .directions import generator_fingerprint

    path = encoder_path(checkpoint_path)
    if not path.is_file():
        return None
    try:
        return load_encoder(path, fingerprint=generator_fingerprint(G))
    except CheckpointError as exc:
        log.warning("%s; projecting without it", exc)
        return None


def encoder_training_record(path: Path | str) -> dict[str, Any]:
    """The training record saved with an encoder (for model cards)."""
    metadata, _ = load_safetensors(Path(path), max_bytes=MAX_ENCODER_BYTES, what="encoder file")
    return metadata_json(metadata, "training", Path(path), default="{}")
