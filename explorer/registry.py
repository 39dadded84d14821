"""CheckpointRegistry: finds generators in checkpoint folders and run dirs, and keeps the recently used ones loaded.

Models are addressed by name (the folder or file stem), and a name only ever resolves to something the scan found,
so a request cannot point the app at an arbitrary path. Loading happens on first use, never at import. What is
derived from a loaded generator (directions, classifier, training data) lives in ``explorer.derived``.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from dcgan.checkpoints import GENERATOR_FILE, GeneratorInfo, describe_generator, load_generator
from dcgan.directions import DIRECTIONS_FILE, DIRECTIONS_SUFFIX
from dcgan.errors import CheckpointError, brief
from dcgan.hub import repo_name
from dcgan.io import read_metadata

log = logging.getLogger(__name__)

CARD_FILE = "README.md"


@dataclass(frozen=True)
class ModelEntry:
    """One generator the scan found."""
    name: str
    path: Path              # the generator .safetensors file
    card_path: Path | None  # README.md beside it (or <stem>.md for a loose file), if any


@dataclass(eq=False)  # compared (and hashed) by identity: explorer.derived keys per-model state on the object
class LoadedModel:
    """A loaded generator; replaced by a new object when its file changes, dropped when the LRU evicts it."""
    entry: ModelEntry
    G: nn.Module
    info: GeneratorInfo
    mtime_ns: int
    device: torch.device

    @property
    def z_dim(self) -> int:
        return self.info.model.z_dim

    @property
    def dataset(self) -> str:
        value = self.info.info.get("dataset") if isinstance(self.info.info, dict) else None
        return value if isinstance(value, str) else ""


def _is_generator_file(path: Path) -> bool:
    """True for a safetensors file whose metadata describes a dcgan-explorer generator (reads only the header)."""
    if path.name.endswith(DIRECTIONS_SUFFIX) or path.name == DIRECTIONS_FILE:  # dcgan.directions' caches, never models
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
            add(repo_name(root) or root.name, root / GENERATOR_FILE, root / CARD_FILE)  # a Hub snapshot: its repo, not its commit
            continue
        for child in sorted(root.iterdir()):
            if child.is_dir() and (child / GENERATOR_FILE).is_file():
                add(child.name, child / GENERATOR_FILE, child / CARD_FILE)
            elif child.is_file() and child.suffix == ".safetensors" and _is_generator_file(child):
                add(child.stem, child, child.with_suffix(".md"))
    return found


@contextlib.contextmanager
def _errors_by_name(entry: ModelEntry) -> Iterator[None]:
    """A broken checkpoint's error names the model, not the server's path (that goes to the log only)."""
    try:
        yield
    except CheckpointError as exc:
        log.warning("%s", exc)
        raise CheckpointError(str(exc).replace(str(entry.path), f"model {entry.name!r}")) from None


class CheckpointRegistry:
    """Thread-safe registry of generators under ``dirs`` with an LRU cache of ``capacity`` loaded models.

    A model is reloaded when its file changes (a run being trained refreshes it).
    """

    def __init__(self, dirs: list[Path | str], *, capacity: int = 4, device: str = "cpu"):
        if capacity < 1:
            raise ValueError(f"capacity: {capacity} must be at least 1")
        self.dirs = [Path(d) for d in dirs]
        self.capacity = capacity
        self.device = torch.device(device)
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
            raise CheckpointError(f"model {brief(name)} is unknown; available models: {listed}")
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
        with _errors_by_name(entry):
            return self._describe(entry)

    @staticmethod
    def _describe(entry: ModelEntry) -> GeneratorInfo:
        metadata = read_metadata(entry.path)
        if metadata is None:
            raise CheckpointError(f"{entry.path}: not a readable safetensors file")
        return describe_generator(metadata, entry.path)

    # ------------------------------------------------------------------------------------------------ loading

    def get(self, name: str) -> LoadedModel:
        """The loaded model ``name`` (from the cache, or loaded now and made most recent)."""
        entry = self.entry(name)
        try:
            mtime = entry.path.stat().st_mtime_ns
        except OSError as exc:
            log.warning("%s: cannot read (%s)", entry.path, exc)
            raise CheckpointError(f"model {name!r}: its file cannot be read ({exc.strerror or exc})") from None
        with self._lock:
            model = self._cache.get(name)
            if model is not None and model.mtime_ns == mtime and model.entry == entry:
                self._cache.move_to_end(name)
                return model
            with _errors_by_name(entry):
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
