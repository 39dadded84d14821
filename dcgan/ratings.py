"""Classifier ratings of seeds 0..N-1 (predict_proba of G(seed)), cached beside the checkpoint like its directions.

Picking arithmetic exemplars (``dcgan.directions.pick_from_ratings``) needs the ratings of the same searched seeds
for every preset; rating them costs seconds to minutes on a CPU, reading them back milliseconds. The file is tagged
with fingerprints of the generator's and the classifier's weights, so a retrained model is never matched with
stale ratings.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .checkpoints import file_beside
from .directions import BATCH, generator_fingerprint, rate_latents
from .errors import CheckpointError
from .io import load_safetensors, metadata_json, save_safetensors
from .latent import latents_from_seeds

log = logging.getLogger(__name__)

RATINGS_FILE = "ratings.safetensors"
RATINGS_SUFFIX = ".ratings.safetensors"  # x.safetensors -> x.ratings.safetensors (no "model" metadata: never listed as a model)
RATINGS_FORMAT_VERSION = 1
MAX_RATINGS_BYTES = 64 * 2**20

Progress = Callable[[int, int], None]  # (seeds rated so far, seeds to rate)


def ratings_path(checkpoint_path: Path | str) -> Path:
    """<dir>/ratings.safetensors for a run dir (or its generator file), x.ratings.safetensors for any other x.safetensors."""
    return file_beside(checkpoint_path, RATINGS_FILE, RATINGS_SUFFIX)


def ratings_fingerprint(G: nn.Module, classifier: Any) -> str:
    """Names the pair (generator weights, classifier weights and labels) the ratings belong to."""
    digest = hashlib.sha256(generator_fingerprint(G).encode())
    digest.update(json.dumps([classifier.kind, list(classifier.label_names)]).encode())
    if isinstance(classifier, nn.Module):
        for name, tensor in classifier.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def rate_seeds(G: nn.Module, classifier: Any, count: int, *, z_dim: int, progress: Progress | None = None) -> torch.Tensor:
    """predict_proba of G(seed) for seeds 0..count-1: float32 [count, K]; ``progress`` is told after each batch."""
    out, seeds = [], list(range(count))
    for start in range(0, count, BATCH):
        out.append(rate_latents(G, classifier, latents_from_seeds(seeds[start:start + BATCH], z_dim)))
        if progress is not None:
            progress(min(start + BATCH, count), count)
    return torch.cat(out)


def save_ratings(proba: torch.Tensor, path: Path | str, *, fingerprint: str, label_names: list[str]) -> None:
    """Write ratings [N, K] (row i: seed i) with the label names and fingerprint as metadata, atomically."""
    if proba.ndim != 2 or proba.shape[1] != len(label_names):
        raise CheckpointError(f"ratings {tuple(proba.shape)} do not match {len(label_names)} label names")
    metadata = {"format_version": str(RATINGS_FORMAT_VERSION), "content": "dcgan-seed-ratings", "fingerprint": fingerprint,
                "label_names": json.dumps(list(label_names))}
    save_safetensors({"proba": proba.detach().float().cpu().contiguous()}, Path(path), metadata=metadata)


def load_ratings(path: Path | str, *, fingerprint: str, label_names: list[str]) -> torch.Tensor:
    """Ratings [N, K] from ``path``; CheckpointError if it is damaged, foreign or for another generator/classifier."""
    path = Path(path)
    metadata, tensors = load_safetensors(path, max_bytes=MAX_RATINGS_BYTES, what="ratings file")
    if metadata.get("content") != "dcgan-seed-ratings" or metadata.get("format_version") != str(RATINGS_FORMAT_VERSION):
        raise CheckpointError(f"{path}: not a version-{RATINGS_FORMAT_VERSION} ratings file")
    if metadata.get("fingerprint") != fingerprint or metadata_json(metadata, "label_names", path) != list(label_names):
        raise CheckpointError(f"{path}: rated by another generator or classifier (weights changed)")
    proba = tensors.get("proba")
    if proba is None or proba.ndim != 2 or proba.shape[1] != len(label_names) or proba.dtype != torch.float32 \
            or not torch.isfinite(proba).all():
        raise CheckpointError(f"{path}: damaged ratings (no finite float32 [N, {len(label_names)}] 'proba')")
    return proba


def load_or_rate_seeds(checkpoint_path: Path | str, G: nn.Module, classifier: Any, count: int, *, z_dim: int,
                       progress: Progress | None = None) -> torch.Tensor:
    """Ratings of seeds 0..count-1: from the file beside the checkpoint when it matches and covers them, else rated
    now (telling ``progress``) and saved there for next time (a read-only folder only costs the time)."""
    path, fingerprint = ratings_path(checkpoint_path), ratings_fingerprint(G, classifier)
    if path.exists():
        try:
            cached = load_ratings(path, fingerprint=fingerprint, label_names=list(classifier.label_names))
            if len(cached) >= count:
                return cached[:count]
            log.info("%s: rates %d seeds, %d needed; rating again", path, len(cached), count)
        except CheckpointError as exc:
            log.warning("%s; rating again", exc)
    proba = rate_seeds(G, classifier, count, z_dim=z_dim, progress=progress)
    try:
        save_ratings(proba, path, fingerprint=fingerprint, label_names=list(classifier.label_names))
    except (CheckpointError, OSError) as exc:
        log.info("ratings not cached: %s", exc)
    return proba
