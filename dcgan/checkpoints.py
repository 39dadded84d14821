"""Checkpoints: `generator.safetensors` (weights + config as JSON metadata, never pickle) and `state.pt`
(full training state, read with ``weights_only=True``). Every write is atomic: temp file, fsync, rename.
"""
from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .config import ModelConfig
from .errors import CheckpointError, ConfigError
from .models import build_generator
from .version import __version__

FORMAT_VERSION = 1
GENERATOR_FILE = "generator.safetensors"
STATE_FILE = "state.pt"
MAX_GENERATOR_BYTES = 256 * 2**20   # a 256x256 DCGAN generator in fp32 is ~50 MB
MAX_HEADER_BYTES = 1 * 2**20        # our headers are a few kB; a huge header is refused before parsing
PICKLE_MAGICS = (b"PK\x03\x04", b"\x80")  # torch.save zip archives and raw pickles


@dataclass
class GeneratorInfo:
    """What a generator file says about itself (all from its safetensors metadata)."""
    model: ModelConfig
    info: dict[str, Any] = field(default_factory=dict)  # dataset, step, images_seen, date, version, label_names…
    path: str = ""


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a half-written one."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(f"{path.parent}: cannot write here ({exc.strerror or exc})") from exc
    try:
        os.fchmod(fd, 0o644)  # readable like any file the user writes (mkstemp makes it private)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(f"{path}: write failed ({exc.strerror or exc}); the previous file, if any, is intact") from exc
    _fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


# ----------------------------------------------------------------------------------------------------------------
# generator.safetensors

def save_generator(G: nn.Module, path: Path, *, model: ModelConfig, info: dict[str, Any], dtype: torch.dtype = torch.float32) -> None:
    """Write G's weights (floats cast to ``dtype``) with the model config and ``info`` as JSON metadata."""
    tensors = {}
    for name, tensor in G.state_dict().items():
        tensor = tensor.detach().cpu()
        tensors[name] = (tensor.to(dtype) if tensor.is_floating_point() else tensor).contiguous()
    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "version": __version__, **info}
    metadata = {"format_version": str(FORMAT_VERSION), "model": json.dumps(asdict(model)), "info": json.dumps(info)}
    atomic_write_bytes(st_save(tensors, metadata=metadata), Path(path))


def _read_header(data: bytes, path: Path) -> dict[str, Any]:
    if len(data) < 8:
        raise CheckpointError(f"{path}: truncated file ({len(data)} bytes); not a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    # a safetensors length may start with any byte (0x80 included), so a pickle is named only once parsing fails
    looks_pickled = any(data.startswith(magic) for magic in PICKLE_MAGICS)
    pickle_error = CheckpointError(f"{path}: this is a pickle / torch.save file; only .safetensors generators are accepted (nothing was loaded)")
    if header_len > MAX_HEADER_BYTES:
        if looks_pickled:
            raise pickle_error
        raise CheckpointError(f"{path}: safetensors header claims {header_len} bytes (limit {MAX_HEADER_BYTES}); refusing it")
    if 8 + header_len > len(data):
        raise CheckpointError(f"{path}: truncated file: header needs {header_len} bytes, file has {len(data) - 8}")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if looks_pickled:
            raise pickle_error from exc
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON)") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
    return header


def upgrade_metadata(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    """The one place that reads (and would upgrade) generator metadata of older format versions."""
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: format_version {version}, expected {FORMAT_VERSION}")
    try:
        return {"model": json.loads(metadata["model"]), "info": json.loads(metadata.get("info", "{}"))}
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: metadata is damaged ({exc})") from exc


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
    size = path.stat().st_size
    if size > MAX_GENERATOR_BYTES:
        raise CheckpointError(f"{path}: {size / 2**20:.0f} MB is larger than the {MAX_GENERATOR_BYTES // 2**20} MB limit for a generator")
    data = path.read_bytes()
    header = _read_header(data, path)
    metadata = header.get("__metadata__") or {}
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
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from exc
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
    """Read a training state with ``weights_only=True`` (no code runs); raises CheckpointError if unusable."""
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
    return state

