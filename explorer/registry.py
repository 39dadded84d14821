"""CheckpointRegistry: finds generators in checkpoint folders and run dirs, and LRU-caches them with their directions.

Models are addressed by name (the folder or file stem), and a name only ever resolves to something the scan found,
so a request cannot point the app at an arbitrary path. Loading happens on first use, never at import.
"""
from __future__ import annotations

import json
import logging
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from dcgan.checkpoints import GENERATOR_FILE, MAX_HEADER_BYTES, GeneratorInfo, load_generator, upgrade_metadata
from dcgan.config import ModelConfig
from dcgan.errors import CheckpointError, ConfigError, DatasetError

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
DIRECTIONS_SUFFIX = ".directions.safetensors"  # dcgan.directions' cache files sit beside checkpoints; never models
LABELLED_KINDS = ("class", "attribute")


@dataclass(frozen=True)
class ModelEntry:
    """One generator the scan found."""
    name: str
    path: Path              # the generator .safetensors file
    card_path: Path | None  # README.md beside it (or <stem>.md for a loose file), if any


@dataclass
class LoadedModel:
    """A loaded generator and what was derived from it; dropped together when the file changes or the LRU evicts it."""
    entry: ModelEntry
    G: nn.Module
    info: GeneratorInfo
    mtime_ns: int
    device: torch.device
    directions: list | None = None          # every Direction once complete; None until first asked for
    quick_directions: list | None = None    # SeFa + PCA, available in milliseconds while labelled ones compute
    directions_error: str = ""              # why labelled directions are missing, if they are
    directions_pending: bool = False        # a background thread is computing the full set
    memo: dict[Any, Any] = field(default_factory=dict)  # per-model results worth keeping (presets, training data)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def z_dim(self) -> int:
        return self.info.model.z_dim

    @property
    def dataset(self) -> str:
        value = self.info.info.get("dataset") if isinstance(self.info.info, dict) else None
        return value if isinstance(value, str) else ""


def read_metadata(path: Path) -> dict[str, str] | None:
    """The ``__metadata__`` of a safetensors file, reading only its header; None if it is not one."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER_BYTES:
                return None
            header = json.loads(f.read(length))
    except (OSError, struct.error, ValueError):
        return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else None


def _is_generator_file(path: Path) -> bool:
    """True for a safetensors file whose metadata describes a dcgan-explorer generator (reads only the header)."""
    if path.name.endswith(DIRECTIONS_SUFFIX) or path.name == "directions.safetensors":
        return False
    metadata = read_metadata(path)
    return metadata is not None and "model" in metadata and "format_version" in metadata


def scan_dirs(dirs: list[Path]) -> dict[str, ModelEntry]:
    """Generators in ``dirs``: each dir holding generator.safetensors, each subdir holding one, and each loose
    generator *.safetensors. Names are folder names (or file stems); a repeated name gets a -2, -3 suffix."""
    found: dict[str, ModelEntry] = {}

    def add(name: str, path: Path, card: Path | None) -> None:
        if any(e.path == path for e in found.values()):
            return
        unique, n = name, 2
        while unique in found:
            unique, n = f"{name}-{n}", n + 1
        found[unique] = ModelEntry(unique, path, card if card is not None and card.is_file() else None)

    for root in dirs:
        root = Path(root).resolve()
        if not root.is_dir():
            if root.is_file() and _is_generator_file(root):
                add(root.stem, root, root.with_suffix(".md"))
            continue
        if (root / GENERATOR_FILE).is_file():
            add(root.name, root / GENERATOR_FILE, root / CARD_FILE)
            continue
        for child in sorted(root.iterdir()):
            if child.is_dir() and (child / GENERATOR_FILE).is_file():
                add(child.name, child / GENERATOR_FILE, child / CARD_FILE)
            elif child.is_file() and child.suffix == ".safetensors" and _is_generator_file(child):
                add(child.stem, child, child.with_suffix(".md"))
    return found


class CheckpointRegistry:
    """Thread-safe registry of generators under ``dirs`` with an LRU cache of ``capacity`` loaded models.

    A model is reloaded when its file changes (a run being trained refreshes it). Directions come from
    ``dcgan.directions``: the file beside the checkpoint when it matches, else SeFa + PCA at once and the labelled
    (classifier) directions in a background thread, which also saves the file for next time.
    """

    def __init__(self, dirs: list[Path | str], *, capacity: int = 4, device: str = "cpu", data_roots: list[Path | str] = ()):
        if capacity < 1:
            raise ValueError(f"capacity: {capacity} must be at least 1")
        self.dirs = [Path(d) for d in dirs]
        self.capacity = capacity
        self.device = torch.device(device)
        self.data_roots = [Path(d) for d in data_roots]
        self._lock = threading.RLock()
        self._entries: dict[str, ModelEntry] = {}
        self._registered: dict[str, ModelEntry] = {}  # added by register() (uploads): unlisted, kept across rescans
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self.rescan()

    # ------------------------------------------------------------------------------------------------ scanning

    def rescan(self) -> list[str]:
        """Scan the folders again (new run dirs appear, deleted ones vanish); returns the model names."""
        entries = scan_dirs(self.dirs)
        with self._lock:
            entries.update({n: e for n, e in self._registered.items() if n not in entries})
            self._entries = entries
            for name in [n for n, m in self._cache.items() if n not in entries or entries[n].path != m.entry.path]:
                del self._cache[name]
            return [n for n in entries if n not in self._registered]

    def names(self) -> list[str]:
        """The scanned models (registered ones, e.g. uploads, are not listed: only their session knows the name)."""
        with self._lock:
            return [n for n in self._entries if n not in self._registered]

    def register(self, name: str, path: Path) -> None:
        """Make the generator file ``path`` (already validated) available as ``name`` until ``unregister``; it is
        not listed by ``names()`` and survives rescans. A scanned model of the same name is refused."""
        with self._lock:
            if name in self._entries and name not in self._registered:
                raise CheckpointError(f"model {name!r} already exists")
            entry = ModelEntry(name, Path(path).resolve(), None)
            self._registered[name] = entry
            self._entries[name] = entry
            self._cache.pop(name, None)

    def unregister(self, name: str) -> None:
        """Forget a registered model (and drop it from the cache)."""
        with self._lock:
            if self._registered.pop(name, None) is not None:
                self._entries.pop(name, None)
                self._cache.pop(name, None)

    def is_registered(self, name: str) -> bool:
        with self._lock:
            return isinstance(name, str) and name in self._registered

    def entry(self, name: str) -> ModelEntry:
        """The scanned entry called ``name``; CheckpointError for anything else (names are never paths)."""
        with self._lock:
            entry = self._entries.get(name) if isinstance(name, str) else None
            known = [n for n in self._entries if n not in self._registered]
        if entry is None:
            listed = ", ".join(known) if known else "none; add a folder with --checkpoints DIR"
            raise CheckpointError(f"model {name!r} is unknown; available models: {listed}")
        return entry

    def card(self, name: str) -> str:
        """The model card (README.md beside the checkpoint) as Markdown, or '' if there is none."""
        entry = self.entry(name)
        if entry.card_path is None:
            return ""
        try:
            return entry.card_path.read_text(encoding="utf-8", errors="replace")[:50_000]
        except OSError as exc:
            log.warning("%s: cannot read model card (%s)", entry.card_path, exc)
            return ""

    def describe(self, name: str) -> GeneratorInfo:
        """What the checkpoint's metadata says (model config, dataset, step...) without loading its weights."""
        entry = self.entry(name)
        with self._lock:
            if name in self._cache:
                return self._cache[name].info
        metadata = read_metadata(entry.path)
        if metadata is None:
            raise CheckpointError(f"{entry.path}: not a readable safetensors file")
        meta = upgrade_metadata(metadata, entry.path)
        try:
            model = ModelConfig.from_dict(meta["model"])
        except ConfigError as exc:
            raise CheckpointError(f"{entry.path}: invalid model config in metadata: {exc}") from exc
        return GeneratorInfo(model, meta["info"] if isinstance(meta["info"], dict) else {}, str(entry.path))

    # ------------------------------------------------------------------------------------------------ loading

    def get(self, name: str) -> LoadedModel:
        """The loaded model ``name`` (from the cache, or loaded now and made most recent)."""
        entry = self.entry(name)
        try:
            mtime = entry.path.stat().st_mtime_ns
        except OSError as exc:
            raise CheckpointError(f"{entry.path}: cannot read ({exc.strerror or exc})") from exc
        with self._lock:
            model = self._cache.get(name)
            if model is not None and model.mtime_ns == mtime and model.entry == entry:
                self._cache.move_to_end(name)
                return model
            G, info = load_generator(entry.path, device=self.device)
            G.requires_grad_(False)
            model = LoadedModel(entry, G, info, mtime, self.device)
            self._cache[name] = model
            self._cache.move_to_end(name)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
            log.info("loaded %s from %s", name, entry.path)
            return model

    def cached_names(self) -> list[str]:
        """Loaded models, least recently used first."""
        with self._lock:
            return list(self._cache)

    # ------------------------------------------------------------------------------------------------ directions

    def directions(self, name: str, *, wait: bool = False, timeout: float = 600.0) -> list:
        """Directions of model ``name``: all of them if ready, else SeFa + PCA (labelled ones are computed in the
        background; ``wait=True`` blocks until they are done)."""
        model = self.get(name)
        with model.lock:
            if model.directions is None and not model.directions_pending:
                self._start_directions(model)
            if model.directions is not None:
                return model.directions
            event = model.memo.setdefault("_directions_done", threading.Event())
        if wait:
            event.wait(timeout)
            with model.lock:
                if model.directions is not None:
                    return model.directions
        return model.quick_directions or []

    def directions_status(self, name: str) -> str:
        """'' when every direction is ready, else a sentence for the UI."""
        model = self.get(name)
        with model.lock:
            if model.directions_pending:
                return "Attribute directions are being computed (classifier on generated samples); the sliders appear when they are ready."
            return model.directions_error

    def _start_directions(self, model: LoadedModel) -> None:
        from dcgan import directions as dirs

        path = dirs.directions_path(model.entry.path)
        loaded = None
        if path.exists():
            try:
                loaded = dirs.load_directions(path, fingerprint=dirs.generator_fingerprint(model.G))
                if any(d.vector.numel() != model.z_dim for d in loaded):
                    log.warning("%s: directions do not match z_dim %d; recomputing", path, model.z_dim)
                    loaded = None
            except CheckpointError as exc:
                log.warning("%s; recomputing", exc)
        classifier = self.classifier(model) if model.dataset else None
        if loaded is not None and (classifier is None or any(d.kind in LABELLED_KINDS for d in loaded)):
            model.directions = loaded
            return
        if loaded is not None:  # saved before a classifier existed: keep these, add the labelled ones
            model.quick_directions = loaded
        else:
            model.quick_directions = dirs.compute_directions(model.G, model.info, labeled=False)
        if classifier is None:
            model.directions = model.quick_directions
            self._save_directions(model)
            return
        model.directions_pending = True
        model.memo.setdefault("_directions_done", threading.Event())
        threading.Thread(target=self._compute_labelled, args=(model, classifier), daemon=True,
                         name=f"directions-{model.entry.name}").start()

    def _compute_labelled(self, model: LoadedModel, classifier: Any) -> None:
        from dcgan import directions as dirs

        try:
            labelled = dirs.labeled_directions(model.G, classifier)
            error = ""
        except Exception as exc:  # a failed background job must not kill the app; the UI says what happened
            log.exception("labelled directions for %s failed", model.entry.name)
            labelled, error = [], f"Attribute directions could not be computed: {exc}"
        with model.lock:
            model.directions = list(model.quick_directions or []) + labelled
            model.directions_error = error
            model.directions_pending = False
            model.memo["_directions_done"].set()
        if not error:
            self._save_directions(model)

    @staticmethod
    def _save_directions(model: LoadedModel) -> None:
        from dcgan import directions as dirs

        try:
            dirs.save_directions(model.directions, dirs.directions_path(model.entry.path), fingerprint=dirs.generator_fingerprint(model.G))
        except (CheckpointError, OSError) as exc:  # a read-only folder only costs recomputation next start
            log.info("directions for %s not cached: %s", model.entry.name, exc)

    # ------------------------------------------------------------------------------------------------ extras

    def classifier(self, model: LoadedModel) -> Any | None:
        """The shipped classifier for the model's data set (cached), or None when there is none."""
        key = "_classifier"
        with model.lock:
            if key not in model.memo:
                try:
                    from dcgan.classifiers import load_classifier

                    model.memo[key] = load_classifier(model.dataset) if model.dataset else None
                except (CheckpointError, ImportError) as exc:
                    log.info("no classifier for %s: %s", model.dataset or "(unknown data set)", exc)
                    model.memo[key] = None
            return model.memo[key]

    def memoize(self, model: LoadedModel, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per loaded model and key (dropped with the model); a failure is not remembered."""
        with model.lock:
            if key in model.memo:
                return model.memo[key]
            key_lock = model.memo.setdefault(("_lock", key), threading.Lock())
        with key_lock:  # one computation per key; other keys and directions stay available meanwhile
            with model.lock:
                if key in model.memo:
                    return model.memo[key]
            value = compute()
            with model.lock:
                model.memo[key] = value
            return value

    def training_data_configs(self, model: LoadedModel) -> list[dict[str, Any]]:
        """Where the model's training data may be: the run's config.json first, then each --data-root."""
        candidates: list[dict[str, Any]] = []
        config_path = model.entry.path.parent / "config.json"
        if config_path.is_file():
            try:
                data = json.loads(config_path.read_text()).get("data", {})
                if isinstance(data, dict) and data.get("dataset"):
                    text = data.get("root") or ""
                    root = Path(text)
                    bases = [""] if not text else [str(root)] if root.is_absolute() else [str(Path.cwd() / root), str(model.entry.path.parent / root)]
                    for base in bases:
                        candidates.append({"dataset": data["dataset"], "root": base, "max_images": data.get("max_images")})
            except (OSError, ValueError, AttributeError) as exc:
                log.info("%s: unreadable (%s)", config_path, exc)
        if model.dataset:
            for root in self.data_roots:
                candidates += [{"dataset": model.dataset, "root": str(root), "max_images": None},
                               {"dataset": model.dataset, "root": str(root / model.dataset), "max_images": None}]
        unique = []
        for c in candidates:
            if c not in unique:
                unique.append(c)
        return unique

    def training_data(self, model: LoadedModel) -> Any:
        """The model's training images (dcgan.datasets.ImageData at its size), cached; DatasetError if not found."""
        def load() -> Any:
            from dcgan.config import DataConfig
            from dcgan.datasets import build

            tried = []
            for candidate in self.training_data_configs(model):
                try:
                    cfg = DataConfig(dataset=candidate["dataset"], root=candidate["root"], max_images=candidate["max_images"])
                    return build(cfg, model.info.model.image_size, model.info.model.channels)
                except (DatasetError, ConfigError) as exc:
                    tried.append(f"{candidate['root'] or '(default)'}: {exc}")
            where = "; ".join(tried) if tried else "the checkpoint names no data set and no config.json sits beside it"
            raise DatasetError(f"training data for model {model.entry.name!r} (dataset {model.dataset or 'unknown'!r}) "
                               f"is not available ({where}). Start the app with --data-root DIR pointing at it.")

        return self.memoize(model, "_training_data", load)
