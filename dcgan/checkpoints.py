"""Checkpoints: `generator.safetensors` (weights + config as JSON metadata, never pickle) and `state.pt`
(full training state, read with ``weights_only=True``). Both are written atomically through dcgan.io.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig
from .errors import CheckpointError, ConfigError
from .io import MAX_HEADER_BYTES as MAX_HEADER_BYTES  # re-exported: explorer/registry.py imports it from here
from .io import atomic_torch_save, load_safetensors, metadata_json, module_tensors, save_safetensors
from .models import build_generator
from .version import __version__

FORMAT_VERSION = 1
GENERATOR_FILE = "generator.safetensors"
STATE_FILE = "state.pt"
MAX_GENERATOR_BYTES = 256 * 2**20   # a 256x256 DCGAN generator in fp32 is ~50 MB


@dataclass
class GeneratorInfo:
    """What a generator file says about itself (all from its safetensors metadata)."""
    model: ModelConfig
    info: dict[str, Any] = field(default_factory=dict)  # dataset, step, images_seen, date, version, label_names…
    path: str = ""


# ----------------------------------------------------------------------------------------------------------------
# generator.safetensors

def save_generator(G: nn.Module, path: Path, *, model: ModelConfig, info: dict[str, Any], dtype: torch.dtype = torch.float32) -> None:
    """Write G's weights (floats cast to ``dtype``) with the model config and ``info`` as JSON metadata."""
    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "version": __version__, **info}
    metadata = {"format_version": str(FORMAT_VERSION), "model": json.dumps(asdict(model)), "info": json.dumps(info)}
    save_safetensors(module_tensors(G, dtype), path, metadata=metadata)


def upgrade_metadata(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    """The one place that reads (and would upgrade) generator metadata of older format versions."""
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: format_version {version}, expected {FORMAT_VERSION}")
    return {"model": metadata_json(metadata, "model", path), "info": metadata_json(metadata, "info", path, default="{}")}


def resolve_generator_path(path: Path | str) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / GENERATOR_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no such generator file")
    return path


def load_generator(path: Path | str, *, model: ModelConfig | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorInfo]:
    """Load a generator from a `.safetensors` file or run directory; returns (G in eval mode, its info).

    ``model`` is needed only for a plain state dict saved without our metadata (e.g. pytorch/examples' netG
    converted to safetensors). Anything foreign, truncated or mismatched raises CheckpointError.
    """
    path = resolve_generator_path(path)
    metadata, tensors = load_safetensors(path, max_bytes=MAX_GENERATOR_BYTES, what="generator file")
    info: dict[str, Any] = {}
    if "format_version" in metadata:
        meta = upgrade_metadata(metadata, path)
        try:
            model = ModelConfig.from_dict(meta["model"])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: invalid model config in metadata: {exc}") from exc
        info = meta["info"] if isinstance(meta["info"], dict) else {}
    elif model is None:
        raise CheckpointError(f"{path}: has no dcgan-explorer metadata; give its model config (arch, image_size, channels, z_dim, ngf)")
    G = build_generator(model)
    expected = G.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match a {model.arch} generator of this config: missing {missing[:4]}, unexpected {unexpected[:4]}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)} for this config")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: {name} contains NaN or infinite values")
    G.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return G.to(device).eval(), GeneratorInfo(model, info, str(path))


# ----------------------------------------------------------------------------------------------------------------
# state.pt

def save_state(state: dict[str, Any], path: Path) -> None:
    atomic_torch_save({"format_version": FORMAT_VERSION, **state}, Path(path))


def load_state(path: Path | str) -> dict[str, Any]:
    """Read a training state with ``weights_only=True`` (no code runs); raises CheckpointError if unusable.

    The one place that upgrades older states: those written before ``world_size`` was stored get 1.
    """
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or unsafe files; all mean "unusable"
        raise CheckpointError(f"{path}: cannot read training state ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {state.get('format_version') if isinstance(state, dict) else None}, expected {FORMAT_VERSION}")
    state.setdefault("world_size", 1)
    return state

