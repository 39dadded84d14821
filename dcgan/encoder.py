"""An encoder x -> z, trained on the generator's own samples: the start of a projection (dcgan.project).

Why: the best of 1024 seeded latents starts a photo at ~12 dB; an encoder lands much nearer in one forward pass, so
fewer optimisation steps reach the same quality. It learns from pairs (z, G(z)) only, so it needs no data set, and it
ships beside its generator as encoder.safetensors, tied to that generator by the fingerprint of its weights.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .checkpoints import file_beside
from .errors import CheckpointError, ConfigError
from .io import check_made_for, load_safetensors, metadata_json, module_tensors, save_safetensors

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
    real_weight: float = 1.0   # with real images: |G(E(x)) - x|^2 + embedding_weight * classifier-embedding distance
    embedding_weight: float = 0.05
    seed: int = 0
    max_minutes: float | None = None  # stop early (the encoder so far is kept)

    def validate(self) -> None:
        weights_ok = all(w >= 0 and math.isfinite(w) for w in (self.pixel_weight, self.real_weight, self.embedding_weight))
        if self.steps < 1 or self.batch < 2 or not (self.lr > 0 and math.isfinite(self.lr)) or not weights_ok:
            raise ConfigError(f"encoder training {asdict(self)}: steps >= 1, batch >= 2, lr > 0, weights finite and >= 0")


def train_encoder(G: nn.Module, *, z_dim: int, training: EncoderTraining = EncoderTraining(), width: int = 32,
                  real: torch.Tensor | None = None, classifier: Any = None, init: Encoder | None = None,
                  progress: Progress | None = None) -> tuple[Encoder, dict[str, Any]]:
    """An encoder for G (kept in eval mode, frozen), returned in eval mode with a record of the training.

    Every step draws fresh (z, G(z)) pairs. Given ``real`` images (uint8 [N, C, H, W], prepared like the training
    data), each step also fits a batch of them through G: pixel MSE plus ``classifier``'s embedding distance, so the
    encoder learns photos, which G never draws exactly (celeba-64: 16.4 dB from G's samples alone, README). ``init``
    continues from an encoder (it is not changed).
    """
    from .project import _activations, feature_network

    training.validate()
    p = next(G.parameters())
    G.eval()
    requires_grad = [q.requires_grad for q in G.parameters()]
    G.requires_grad_(False)
    with torch.no_grad():
        probe = G(torch.zeros(1, z_dim, device=p.device, dtype=p.dtype))
    cfg = EncoderConfig(z_dim=z_dim, image_size=probe.shape[-1], channels=probe.shape[1], width=width)
    if init is not None:  # its own width
        if (init.cfg.z_dim, init.cfg.image_size, init.cfg.channels) != (cfg.z_dim, cfg.image_size, cfg.channels):
            raise ConfigError(f"the encoder to continue from is for {asdict(init.cfg)}; this generator needs {asdict(cfg)}")
        E = copy.deepcopy(init).requires_grad_(True)
    else:
        E = Encoder(cfg)
    E = E.to(p.device).train()
    if real is not None and (real.ndim != 4 or tuple(real.shape[1:]) != tuple(probe.shape[1:])):
        raise ConfigError(f"real images {tuple(real.shape)} do not match the generator's {tuple(probe.shape[1:])}")
    features = feature_network(classifier) if real is not None and classifier is not None and training.embedding_weight > 0 else None
    optimiser = torch.optim.Adam(E.parameters(), lr=training.lr, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, training.steps, eta_min=training.lr / 100)
    rng = torch.Generator().manual_seed(training.seed)
    start, done = time.monotonic(), 0
    last = {"latent_mse": math.nan, "pixel_mse": math.nan, "real_pixel_mse": math.nan}
    try:
        for step in range(training.steps):
            z = torch.randn(training.batch, z_dim, generator=rng).to(p.device, p.dtype)
            with torch.no_grad():
                x = G(z)
            z_hat = E(x.float())
            latent = (z_hat - z.float()).square().mean()
            loss = latent
            last["latent_mse"] = latent.item()
            if training.pixel_weight > 0:
                pixel = (G(z_hat.to(p.dtype)).float() - x.float()).square().mean()
                loss = loss + training.pixel_weight * pixel
                last["pixel_mse"] = pixel.item()
            if real is not None and training.real_weight > 0:
                index = torch.randint(len(real), (training.batch,), generator=rng)
                x_real = real[index].float().div(127.5).sub(1).to(p.device)
                redrawn = G(E(x_real).to(p.dtype)).float()
                real_pixel = (redrawn - x_real).square().mean()
                real_loss = real_pixel
                if features is not None:
                    with torch.no_grad():
                        wanted = _activations(features, x_real)[1]
                    got = _activations(features, redrawn)[1]
                    distance = (got - wanted).square().sum(1) / wanted.square().sum(1).clamp_min(1e-8)
                    real_loss = real_loss + training.embedding_weight * distance.mean()
                loss = loss + training.real_weight * real_loss
                last["real_pixel_mse"] = real_pixel.item()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            done = step + 1
            if progress is not None:
                progress(done, training.steps, loss.item())
            if training.max_minutes is not None and time.monotonic() - start > 60 * training.max_minutes:
                break
    finally:
        for q, flag in zip(G.parameters(), requires_grad):
            q.requires_grad_(flag)
    record = {"steps": done, "minutes": round((time.monotonic() - start) / 60, 2), **{k: round(v, 5) for k, v in last.items()},
              "real_images": 0 if real is None else len(real), "continued": init is not None, **asdict(training)}
    return E.eval().requires_grad_(False), record


def encoder_path(checkpoint_path: Path | str) -> Path:
    """<dir>/encoder.safetensors for a folder (or its generator.safetensors), x.encoder.safetensors for any other x.safetensors."""
    return file_beside(checkpoint_path, ENCODER_FILE, ENCODER_SUFFIX)


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
    check_made_for(metadata, path, content="dcgan-encoder", version=ENCODER_FORMAT_VERSION, fingerprint=fingerprint,
                   what="an encoder file", remedy="retrain it with `dcgan encoder`")
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

