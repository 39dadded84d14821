"""The one reader and writer of our files: safetensors with JSON metadata (never pickle), and atomic writes.

Every write goes to a temp file that is fsynced, then renamed over the target, so a reader (the app polling a run
dir, a second process) sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .errors import CheckpointError

MAX_HEADER_BYTES = 1 * 2**20        # our headers are a few kB; a huge header is refused before parsing
PICKLE_MAGICS = (b"PK\x03\x04", b"\x80")  # torch.save zip archives and raw pickles


# ----------------------------------------------------------------------------------------------------------------
# atomic writes

def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where folders cannot be opened)."""
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
    fsync_dir(path.parent)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save, atomically (for state.pt and caches read back with ``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


# ----------------------------------------------------------------------------------------------------------------
# safetensors with JSON metadata

def module_tensors(module: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A module's state dict as contiguous CPU tensors, floating ones cast to ``dtype`` (integers such as BatchNorm's
    step counter are kept)."""
    tensors = {}
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu()
        tensors[name] = (tensor.to(dtype) if tensor.is_floating_point() else tensor).contiguous()
    return tensors


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, *, metadata: dict[str, str]) -> None:
    """Write ``tensors`` with string ``metadata`` (callers put a format_version and JSON values in it), atomically."""
    atomic_write_bytes(st_save(tensors, metadata=metadata), Path(path))


def parse_header(data: bytes, path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file from its first bytes (or all of them); CheckpointError for anything else.

    A huge header is refused before parsing, a pickle is named as one, and JSON nested too deeply for Python's
    parser is refused like any other non-safetensors file.
    """
    if len(data) < 8:
        raise CheckpointError(f"{path}: truncated file ({len(data)} bytes); not a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    # a safetensors length may start with any byte (0x80 included), so a pickle is named only once parsing fails
    looks_pickled = any(data.startswith(magic) for magic in PICKLE_MAGICS)
    pickle_error = CheckpointError(f"{path}: this is a pickle / torch.save file; only .safetensors files are accepted (nothing was loaded)")
    if header_len > MAX_HEADER_BYTES:
        if looks_pickled:
            raise pickle_error
        raise CheckpointError(f"{path}: safetensors header claims {header_len} bytes (limit {MAX_HEADER_BYTES}); refusing it")
    if 8 + header_len > len(data):
        raise CheckpointError(f"{path}: truncated file: header needs {header_len} bytes, file has {len(data) - 8}")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        if looks_pickled:
            raise pickle_error from exc
        reason = "header nests too deeply" if isinstance(exc, RecursionError) else "header is not JSON"
        raise CheckpointError(f"{path}: not a safetensors file ({reason})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
    return header


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, reading only its first 8 + N bytes; CheckpointError if it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(8)
            if len(data) == 8 and struct.unpack("<Q", data)[0] <= MAX_HEADER_BYTES:
                data += f.read(struct.unpack("<Q", data)[0])
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return parse_header(data, path)


DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}


def read_laid_out_header(path: Path) -> dict[str, Any]:
    """``read_header``, and the header's tensors checked against the file's size (each byte range matches its
    shape and dtype and lies within the data), so that what it promises can be planned for before anything loads."""
    path = Path(path)
    header = read_header(path)
    try:
        with open(path, "rb") as f:
            data_bytes = path.stat().st_size - 8 - struct.unpack("<Q", f.read(8))[0]
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(spec, dict) and spec.get("dtype") in DTYPE_BYTES and isinstance(spec.get("shape"), list) \
            and all(isinstance(d, int) and d >= 0 for d in spec["shape"]) and isinstance(spec.get("data_offsets"), list) \
            and len(spec["data_offsets"]) == 2 and all(isinstance(o, int) for o in spec["data_offsets"])
        if ok:
            start, end = spec["data_offsets"]
            ok = 0 <= start <= end <= data_bytes and end - start == math.prod(spec["shape"]) * DTYPE_BYTES[spec["dtype"]]
        if not ok:
            raise CheckpointError(f"{path}: not a valid safetensors file (tensor {name[:80]!r} does not fit the file)")
    return header


def read_metadata(path: Path) -> dict[str, str] | None:
    """The ``__metadata__`` of a safetensors file, reading only its header; None if it is not a readable one.

    For scanning folders cheaply: nothing is raised, and tensors are never read.
    """
    try:
        metadata = read_header(path).get("__metadata__")
    except CheckpointError:
        return None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return None
    return metadata


def load_safetensors(path: Path, *, max_bytes: int, what: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a whole safetensors file of at most ``max_bytes``; CheckpointError naming ``what``
    (e.g. "generator file") for a missing, oversized, foreign, truncated or pickled file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what}")
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(f"{path}: {size / 2**20:.0f} MB is larger than the {max_bytes // 2**20} MB limit for a {what}")
    data = path.read_bytes()
    metadata = parse_header(data, path).get("__metadata__") or {}
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from exc
    return metadata, tensors


def metadata_json(metadata: dict[str, str], key: str, path: Path, *, default: str | None = None) -> Any:
    """json.loads of one metadata value (``default`` when absent); CheckpointError when it is missing or damaged."""
    text = metadata.get(key, default)
    if not isinstance(text, str):
        raise CheckpointError(f"{path}: metadata has no {key!r}")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: metadata {key!r} is damaged ({type(exc).__name__})") from exc


def check_made_for(metadata: dict[str, str], path: Path, *, content: str, version: int, fingerprint: str | None,
                   what: str, remedy: str) -> None:
    """The identity checks of a file made for one generator (directions, encoder): its ``content`` tag, its format
    version and, given ``fingerprint``, the generator it was made for; CheckpointError naming ``what`` otherwise."""
    if metadata.get("content") != content:
        raise CheckpointError(f"{path}: not {what} (no 'content: {content}' metadata)")
    if metadata.get("format_version") != str(version):
        raise CheckpointError(f"{path}: format_version {metadata.get('format_version')}, expected {version}")
    if fingerprint is not None and metadata.get("generator_fingerprint") != fingerprint:
        raise CheckpointError(f"{path}: made for another generator (its weights differ); {remedy}")
