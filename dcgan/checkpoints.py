"""Checkpoints: `generator.safetensors` and `discriminator.safetensors` (weights + config as JSON metadata, never
pickle) and `state.pt` (full training state, read with ``weights_only=True``). All are written atomically through dcgan.io.
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
from .errors import CheckpointError, ConfigError, brief
from .io import atomic_torch_save, load_safetensors, metadata_json, module_tensors, read_laid_out_header, save_safetensors
from .models import build_discriminator, build_generator
from .version import __version__

FORMAT_VERSION = 1
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
DISCRIMINATOR_NETWORK = "discriminator"  # metadata["network"] of a D file, so no scan or loader takes it for a generator
STATE_FILE = "state.pt"
MAX_GENERATOR_BYTES = 256 * 2**20   # a 256x256 DCGAN generator in fp32 is ~50 MB
MAX_GENERATOR_PARAMETERS = 32_000_000  # ~2.5x the 256x256, ngf 64 DCGAN (12.7M); checked before anything is built
FLOAT_DTYPES = ("F32", "F16", "BF16")  # safetensors' names; int8/fp8 weights would expand 4x on loading: refused


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


def describe_generator(metadata: dict[str, str], path: Path | str) -> GeneratorInfo:
    """What a generator's metadata says (its model config and info), from the metadata alone: for loading, and
    for listing models without loading their weights."""
    meta = upgrade_metadata(metadata, Path(path))
    try:
        model = ModelConfig.from_dict(meta["model"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: invalid model config in metadata: {exc}") from exc
    return GeneratorInfo(model, meta["info"] if isinstance(meta["info"], dict) else {}, str(path))


def resolve_generator_path(path: Path | str) -> Path:
    """The generator file of a `.safetensors` path, a run directory or an ``hf://user/repo[@revision]`` (dcgan.hub)."""
    if isinstance(path, str) and path.startswith("hf://"):
        from .hub import download_checkpoint

        path = download_checkpoint(path)
    path = Path(path)
    if path.is_dir():
        path = path / GENERATOR_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no such generator file")
    return path


def load_generator(path: Path | str, *, model: ModelConfig | None = None,
                   device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorInfo]:
    """Load a generator from a `.safetensors` file, run directory or ``hf://user/repo[@revision]``; returns (G in eval mode, its info).

    ``model`` is needed only for a plain state dict saved without our metadata (e.g. pytorch/examples' netG
    converted to safetensors). Anything foreign, truncated or mismatched raises CheckpointError.
    """
    path = resolve_generator_path(path)
    header = read_laid_out_header(path)  # only the header: nothing is allocated before the tensors are known to fit
    metadata = header.get("__metadata__") or {}
    info: dict[str, Any] = {}
    if "format_version" in metadata:
        described = describe_generator(metadata, path)
        model, info = described.model, described.info
    elif model is None:
        raise CheckpointError(f"{path}: has no dcgan-explorer metadata; give its model config (arch, image_size, channels, z_dim, ngf)")
    if metadata.get("network") == DISCRIMINATOR_NETWORK:
        raise CheckpointError(f"{path}: this is a discriminator file; load it with load_discriminator (the generator is {GENERATOR_FILE})")
    check_tensors(header, model, path)
    tensors = _finite_tensors(path, "generator file")
    G = build_generator(model)
    expected = G.state_dict()
    G.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return G.to(device).eval(), GeneratorInfo(model, info, str(path))


def check_tensors(header: dict[str, Any], model: ModelConfig, path: Path, *, network: str = "generator") -> None:
    """Refuse, from the safetensors header alone, a file whose tensors are not exactly the ``network`` ("generator"
    or "discriminator") of ``model`` (names, shapes, float dtypes), or a config too large to build: a 100-byte file
    must not make us allocate GBs."""
    build = build_discriminator if network == DISCRIMINATOR_NETWORK else build_generator
    with torch.device("meta"):  # shapes without memory
        expected = build(model).state_dict()
    count = sum(t.numel() for t in expected.values())
    if count > MAX_GENERATOR_PARAMETERS:
        raise CheckpointError(f"{path}: a {model.arch} {network} of this config has {count:,} parameters; "
                              f"the limit is {MAX_GENERATOR_PARAMETERS:,}")
    specs = {k: v for k, v in header.items() if k != "__metadata__"}
    missing, unexpected = sorted(set(expected) - set(specs)), sorted(set(specs) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match a {model.arch} {network} of this config: "
                              f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    for name, spec in specs.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        if not isinstance(shape, list) or tuple(shape) != tuple(expected[name].shape):
            raise CheckpointError(f"{path}: {name} has shape {brief(shape)}, expected {tuple(expected[name].shape)} for this config")
        if expected[name].is_floating_point() and dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: {name} is stored as {brief(dtype)}; a {network}'s weights are {', '.join(FLOAT_DTYPES)}")


def _finite_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    _, tensors = load_safetensors(path, max_bytes=MAX_GENERATOR_BYTES, what=what)
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: {name} contains NaN or infinite values")
    return tensors


# ----------------------------------------------------------------------------------------------------------------
# discriminator.safetensors: the D trained with a generator, for dcgan.probe and dcgan.units (never for training)

def save_discriminator(D: nn.Module, path: Path, *, model: ModelConfig, info: dict[str, Any], dtype: torch.dtype = torch.float32) -> None:
    """Write D's weights (spectral norm's parametrisation and power-iteration vectors included) like a generator's,
    marked as a discriminator in the metadata."""
    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "version": __version__, **info}
    metadata = {"format_version": str(FORMAT_VERSION), "network": DISCRIMINATOR_NETWORK, "model": json.dumps(asdict(model)),
                "info": json.dumps(info)}
    save_safetensors(module_tensors(D, dtype), path, metadata=metadata)


def file_beside(checkpoint_path: Path | str, name: str, suffix: str) -> Path:
    """Where a checkpoint's companion file lives: <dir>/``name`` for a folder (or its generator.safetensors),
    x``suffix`` beside any other x.safetensors (directions, ratings, encoder)."""
    path = Path(checkpoint_path)
    if path.is_dir():
        return path / name
    if path.name == GENERATOR_FILE:
        return path.parent / name
    return path.with_name(path.name.removesuffix(".safetensors") + suffix)


def discriminator_beside(generator_path: Path | str) -> Path:
    """Where a generator's D lives: DIR/discriminator.safetensors beside DIR/generator.safetensors, else
    X.discriminator.safetensors beside X.safetensors (dcgan export, kept generators)."""
    generator_path = Path(generator_path)
    if generator_path.name == GENERATOR_FILE:
        return generator_path.with_name(DISCRIMINATOR_FILE)
    return generator_path.with_name(generator_path.stem + ".discriminator.safetensors")


def discriminator_path(path: Path | str) -> Path:
    """``path`` itself, or the discriminator.safetensors inside a folder (a shipped checkpoint or run directory)."""
    path = Path(path)
    return path / DISCRIMINATOR_FILE if path.is_dir() else path


def load_discriminator(path: Path | str, *, device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorInfo]:
    """Load a discriminator from a `.safetensors` file or a folder holding discriminator.safetensors; returns (D in
    eval mode, its info). A generator file, a foreign, truncated or mismatched one raises CheckpointError."""
    path = discriminator_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such discriminator file (export one with `dcgan export RUN_DIR`)")
    header = read_laid_out_header(path)
    metadata = header.get("__metadata__") or {}
    if metadata.get("network") != DISCRIMINATOR_NETWORK:
        raise CheckpointError(f"{path}: not a dcgan-explorer discriminator file (its metadata has no network={DISCRIMINATOR_NETWORK!r})")
    described = describe_generator(metadata, path)
    check_tensors(header, described.model, path, network=DISCRIMINATOR_NETWORK)
    tensors = _finite_tensors(path, "discriminator file")
    D = build_discriminator(described.model)
    expected = D.state_dict()
    D.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return D.to(device).eval(), described


# ----------------------------------------------------------------------------------------------------------------
# state.pt

def save_state(state: dict[str, Any], path: Path) -> None:
    atomic_torch_save({"format_version": FORMAT_VERSION, **state}, Path(path))


def load_state(path: Path | str) -> dict[str, Any]:
    """Read a training state with ``weights_only=True`` (no code runs); raises CheckpointError if unusable.

    The one place that upgrades older states: those written before ``world_size`` was stored get 1, and those
    from before augmentation no augmentation generator state.
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
        raise CheckpointError(f"{path}: format_version {state.get('format_version') if isinstance(state, dict) else None}, "
                              f"expected {FORMAT_VERSION}")
    state.setdefault("world_size", 1)
    state["rng"].setdefault("augment", None)  # states from before flips and DiffAugment: the trainer seeds a fresh generator
    return state

