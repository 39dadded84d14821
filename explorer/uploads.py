"""Bring your own generator: `.safetensors` files uploaded by users, validated before anything else sees them.

A file is read only through ``dcgan.checkpoints.load_generator`` (safetensors, never pickle; sizes, header, shapes
and values checked), re-saved with our metadata as ``<uploads>/upload-<sha12>/generator.safetensors`` and registered
in the CheckpointRegistry under that name. Registered names are not listed by ``/models`` or in other sessions'
pickers: only the uploader gets the name. The uploads folder is private (never served); the oldest uploads are
dropped past ``max_uploads``. Nothing here imports gradio.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from dcgan.checkpoints import GENERATOR_FILE, check_tensors, describe_generator, load_generator, save_generator
from dcgan.config import ModelConfig
from dcgan.errors import CheckpointError, ConfigError
from dcgan.io import read_header

from .registry import CheckpointRegistry
from .validation import check_choice, check_int

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 64 * 2**20   # the largest generator accepted (a 128 px, ngf 64 DCGAN is ~14 MB in fp32)
MAX_UPLOADS = 32                # uploads kept per app; the oldest is forgotten (and deleted) past this
MAX_FORM_WIDTH = 1024           # z_dim / ngf bound for the form (the parameter count is capped by the loader too)
PREFIX = "upload-"
SUFFIX = ".safetensors"
IMAGE_SIZES = (16, 28, 32, 64, 128, 256)


def model_from_form(arch: Any = None, image_size: Any = None, channels: Any = None, z_dim: Any = None,
                    ngf: Any = None) -> ModelConfig | None:
    """The config of a plain state dict from the form / API fields, None when none is given (missing ones take
    ModelConfig's defaults), each within the form's bounds."""
    fields = {"arch": arch, "image_size": image_size, "channels": channels, "z_dim": z_dim, "ngf": ngf}
    given = {k: v for k, v in fields.items() if v is not None and v != ""}
    if not given:
        return None
    values: dict[str, Any] = {}
    if "arch" in given:
        values["arch"] = check_choice("arch", given["arch"], ("dcgan", "keras"))
    if "image_size" in given:
        values["image_size"] = check_int("image_size", given["image_size"], 16, 256)
    if "channels" in given:
        values["channels"] = check_int("channels", given["channels"], 1, 3)
    for name in ("z_dim", "ngf"):
        if name in given:
            values[name] = check_int(name, given[name], 1, MAX_FORM_WIDTH)
    cfg = ModelConfig(**values)
    try:
        cfg.validate()
    except ConfigError as exc:
        raise CheckpointError(f"model config: {exc}") from None
    return cfg


def config_of_file(path: Path | str) -> tuple[ModelConfig | None, str]:
    """What the upload form should say for the file at ``path``, read from its safetensors header only: (config,
    where it came from) with where "metadata" (the file carries its config; the form is ignored), "tensors" (a
    plain state dict whose shapes name exactly one DCGAN/Keras generator) or "" (config unknown: None)."""
    try:
        header = read_header(Path(path))
        metadata = header.get("__metadata__") or {}
        if "format_version" in metadata:
            return describe_generator(metadata, path).model, "metadata"
    except CheckpointError:
        return None, ""
    shapes = {k: tuple(v.get("shape") or ()) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    guess = _config_from_shapes(shapes)
    if guess is None:
        return None, ""
    try:
        check_tensors(header, guess, Path(path))
    except CheckpointError:
        return None, ""
    return guess, "tensors"


def _config_from_shapes(shapes: dict[str, tuple[int, ...]]) -> ModelConfig | None:
    """The generator config these weight shapes imply (dcgan.models' names), before check_tensors confirms it."""
    try:
        layers = sorted((int(name.split(".")[1]), shape) for name, shape in shapes.items()
                        if name.startswith("main.") and name.endswith(".weight") and len(shape) == 4)
        if not layers:
            return None
        first, last = layers[0][1], layers[-1][1]
        if "project.0.weight" in shapes:  # the Keras-GAN 28x28 net: Linear(z_dim, 2*ngf*7*7), then Conv2d [out, in, 3, 3]
            return ModelConfig(arch="keras", image_size=28, channels=last[0], z_dim=shapes["project.0.weight"][1], ngf=first[0] // 2)
        # the paper's net: ConvTranspose2d weights [in, out, 4, 4], from z_dim to the last hidden width (ngf) to channels
        return ModelConfig(arch="dcgan", image_size=4 * 2 ** (len(layers) - 1), channels=last[1], z_dim=first[0], ngf=last[0])
    except (IndexError, ValueError, TypeError):
        return None


class UploadStore:
    """Validates, stores and registers uploaded generators; thread-safe."""

    def __init__(self, registry: CheckpointRegistry, root: Path | str | None = None, *, max_bytes: int = MAX_UPLOAD_BYTES,
                 max_uploads: int = MAX_UPLOADS):
        self.registry = registry
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="dcgan-uploads-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self.max_bytes = max_bytes
        self.max_uploads = max_uploads
        self._names: list[str] = []  # oldest first
        self._lock = threading.Lock()

    def add(self, path: Path | str, model: ModelConfig | None = None, *, orig_name: str = "") -> str:
        """Validate the file at ``path`` (its original name ``orig_name``) and register it; returns its model name.

        ``model`` is used only when the file carries no dcgan-explorer metadata (a plain DCGAN state dict).
        Raises CheckpointError with a message naming the file (never the server's temp path) and the problem.
        """
        path = Path(path)
        shown = Path(orig_name or path.name).name[:100] or "upload"
        if not shown.lower().endswith(SUFFIX):
            raise CheckpointError(f"{shown}: only {SUFFIX} generators are accepted (pickles and .pt/.pth/.ckpt files are "
                                  "refused: loading them can run code); convert with safetensors.torch.save_file")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise CheckpointError(f"{shown}: cannot read the upload ({exc.strerror or exc})") from None
        if size > self.max_bytes:
            raise CheckpointError(f"{shown}: {size / 2**20:.1f} MB is over the {self.max_bytes / 2**20:g} MB limit for a generator")
        data = path.read_bytes()
        name = PREFIX + hashlib.sha256(data).hexdigest()[:12]
        with self._lock:
            if name in self._names and self.registry.is_registered(name):
                return name
        try:
            G, info = load_generator(path, model=model)
        except CheckpointError as exc:
            raise CheckpointError(str(exc).replace(str(path), shown)) from None
        dest = self.root / name / GENERATOR_FILE
        dest.parent.mkdir(exist_ok=True)
        meta = {k: v for k, v in info.info.items() if isinstance(k, str)}
        save_generator(G, dest, model=info.model, info={**meta, "source": "upload", "uploaded_as": shown})
        with self._lock:
            self.registry.register(name, dest)
            if name not in self._names:
                self._names.append(name)
            evicted = self._names[: max(0, len(self._names) - self.max_uploads)]
            del self._names[: len(evicted)]
        for old in evicted:
            self.registry.unregister(old)
            shutil.rmtree(self.root / old, ignore_errors=True)
            log.info("upload %s dropped (more than %d uploads)", old, self.max_uploads)
        log.info("upload %s registered as %s (%s)", shown, name, info.model)
        return name
