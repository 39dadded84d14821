"""What the explorer derives from each loaded generator: directions, the data set's classifier, training images,
recently rendered seeds and preset exemplars.

One ``ModelState`` per ``LoadedModel``: when the registry reloads a changed file or evicts a model, its state goes
with it. Slow work (labelled directions: a classifier rates thousands of samples) runs on one background worker
with a bounded queue, so it never competes with itself for the CPU, and nothing slow starts at import.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import numpy as np

from dcgan import directions as dirs
from dcgan.actions import data_configs_under
from dcgan.config import DataConfig
from dcgan.datasets import ImageData, build
from dcgan.errors import ConfigError, DatasetError

from .latents import LatentStore
from .registry import CheckpointRegistry, LoadedModel

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_QUEUED_JOBS = 8  # background jobs waiting at once; more are refused (and the UI says so)


class Once(Generic[T]):
    """A value computed at most once, by one caller at a time; a failure is not remembered (the next call retries)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._value: T | None = None

    def get(self, compute: Callable[[], T]) -> T:
        with self._lock:
            if not self._done:
                self._value, self._done = compute(), True
            return self._value  # type: ignore[return-value]


class BackgroundWorker:
    """One daemon thread running submitted jobs in order; at most ``max_queued`` wait at once."""

    def __init__(self, max_queued: int = MAX_QUEUED_JOBS):
        self._jobs: queue.Queue[tuple[str, Callable[[], None]]] = queue.Queue(max_queued)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, name: str, job: Callable[[], None]) -> bool:
        """Queue ``job``; False (and nothing queued) when the queue is full."""
        try:
            self._jobs.put_nowait((name, job))
        except queue.Full:
            log.warning("background queue full; %s not started", name)
            return False
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="explorer-background")
                self._thread.start()
        return True

    def _run(self) -> None:
        while True:
            name, job = self._jobs.get()
            try:
                job()
            except Exception:  # a failed job must not stop the worker; the job records what the UI should say
                log.exception("background job %s failed", name)


@dataclass(eq=False)
class ModelState:
    """Everything derived from one loaded generator; ``lock`` guards the direction fields and the seed cache."""
    model: LoadedModel
    lock: threading.Lock = field(default_factory=threading.Lock)
    directions: list[dirs.Direction] | None = None      # every direction, once complete
    quick_directions: list[dirs.Direction] = field(default_factory=list)  # usable while labelled ones compute
    directions_started: bool = False
    directions_error: str = ""                           # why labelled directions are missing, if they are
    directions_done: threading.Event = field(default_factory=threading.Event)
    training_data: Once[ImageData] = field(default_factory=Once)
    presets: dict[tuple[str, int], Once[list[list[int]]]] = field(default_factory=dict)
    seed_ratings: Once[Any] = field(default_factory=Once)  # classifier ratings of the searched seeds (dcgan.ratings)
    seed_images: OrderedDict[tuple[int | str, float], np.ndarray] = field(default_factory=OrderedDict)
    inside: dict[tuple, Once[Any]] = field(default_factory=dict)  # the Inside tab's (explorer.inside): D, unit responses, forgets
    projector: Once[Any] = field(default_factory=Once)  # dcgan.project.Projector: its start bank costs seconds to build

    @property
    def name(self) -> str:
        return self.model.entry.name

    @property
    def directions_pending(self) -> bool:
        return self.directions_started and self.directions is None


class Catalog:
    """The registry's generators together with what is derived from each.

    ``data_roots``: folders searched for a model's training data (beside the run's own config.json).
    ``labelled_for_uploads``: whether uploaded generators (registered, not scanned) get classifier directions
    computed in the background; off by default, since an upload is one request from anyone.
    """

    def __init__(self, registry: CheckpointRegistry, *, data_roots: list[Path | str] = (), worker: BackgroundWorker | None = None,
                 labelled_for_uploads: bool = False):
        self.registry = registry
        self.data_roots = [Path(d) for d in data_roots]
        self.worker = worker or BackgroundWorker()
        self.labelled_for_uploads = labelled_for_uploads
        self.latents = LatentStore()  # projected and uploaded latents (explorer.latents), named img-<sha12>
        self._states: weakref.WeakKeyDictionary[LoadedModel, ModelState] = weakref.WeakKeyDictionary()
        self._classifiers: dict[str, Once[Any]] = {}
        self._lock = threading.Lock()

    def state(self, name: str) -> ModelState:
        """The state of the model ``name`` as loaded now (a reloaded file starts a fresh state)."""
        model = self.registry.get(name)
        with self._lock:
            state = self._states.get(model)
            if state is None:
                state = self._states[model] = ModelState(model)
            return state

    # ------------------------------------------------------------------------------------------------ directions

    def directions(self, name: str, *, wait: bool = False, timeout: float = 600.0) -> list[dirs.Direction]:
        """Directions of ``name``: all of them if ready, else the quick ones (SeFa + PCA) while the labelled ones
        compute in the background; ``wait=True`` blocks until they are done (at most ``timeout`` seconds)."""
        state = self.state(name)
        self._start_directions(state)
        if wait:
            state.directions_done.wait(timeout)
        with state.lock:
            return state.directions if state.directions is not None else list(state.quick_directions)

    def directions_pending(self, name: str) -> bool:
        """True while labelled directions of ``name`` are still being computed."""
        return self.state(name).directions_pending

    def directions_status(self, name: str) -> str:
        """'' when every direction is ready, else a sentence for the UI."""
        state = self.state(name)
        with state.lock:
            if state.directions_pending:
                return "Attribute directions are being computed (classifier on generated samples); the sliders appear when they are ready."
            return state.directions_error

    def _start_directions(self, state: ModelState) -> None:
        """dcgan.directions' cache rule, its slow half on the background worker."""
        with state.lock:
            if state.directions_started:
                return
            state.directions_started = True
        model = state.model
        uploaded = self.registry.is_registered(model.entry.name) and not self.labelled_for_uploads
        classifier = None if uploaded else self.classifier(state)  # an upload gets SeFa/PCA only, whatever data set it claims
        quick, incomplete = dirs.start_directions(model.entry.path, model.G, classifier)
        with state.lock:
            state.quick_directions = quick
            if not incomplete:
                state.directions = quick
        if not incomplete:
            state.directions_done.set()
            return

        def finish() -> None:
            try:
                complete, error = dirs.finish_directions(model.entry.path, model.G, quick, classifier), ""
            except Exception as exc:  # the UI says what happened; the quick directions stay usable
                log.exception("labelled directions for %s failed", state.name)
                complete, error = list(quick), f"Attribute directions could not be computed: {exc}"
            with state.lock:
                state.directions, state.directions_error = complete, error
            state.directions_done.set()

        if not self.worker.submit(f"directions-{state.name}", finish):
            with state.lock:
                state.directions = list(quick)
                state.directions_error = "Attribute directions were not computed: the server is busy; rescan the folders to try again."
            state.directions_done.set()

    # ------------------------------------------------------------------------------------------------ classifier

    def classifier(self, state: ModelState) -> Any | None:
        """The shipped classifier for the model's data set (one per data set, loaded once), or None."""
        dataset = state.model.dataset
        if not dataset:
            return None
        with self._lock:
            once = self._classifiers.setdefault(dataset, Once())
        return once.get(lambda: dirs.shipped_classifier(dataset))

    # ------------------------------------------------------------------------------------------------ training data

    def training_data_configs(self, state: ModelState) -> list[DataConfig]:
        """Where the model's training data may be: the run's config.json first, then each data root."""
        candidates: list[DataConfig] = []
        model = state.model
        config_path = model.entry.path.parent / "config.json"
        if config_path.is_file():
            try:
                data = json.loads(config_path.read_text()).get("data", {})
                if isinstance(data, dict) and data.get("dataset"):
                    text = data.get("root") or ""
                    root = Path(text)
                    bases = [""] if not text else [str(root)] if root.is_absolute() else [str(Path.cwd() / root),
                                                                                          str(model.entry.path.parent / root)]
                    candidates += [DataConfig(dataset=data["dataset"], root=base, max_images=data.get("max_images")) for base in bases]
            except (OSError, ValueError, AttributeError, ConfigError) as exc:
                log.info("%s: unreadable (%s)", config_path, exc)
        if model.dataset:
            candidates += data_configs_under(model.dataset, self.data_roots)
        unique: list[DataConfig] = []
        for c in candidates:
            if c not in unique:
                unique.append(c)
        return unique

    def training_data(self, state: ModelState) -> ImageData:
        """The model's training images (at its size and channels), loaded once; DatasetError if not found."""
        def load() -> ImageData:
            tried = []
            for cfg in self.training_data_configs(state):
                if cfg.root and not Path(cfg.root).is_dir():
                    tried.append(f"{cfg.root} (no such folder)")
                    continue
                try:
                    return build(cfg, state.model.info.model.image_size, state.model.info.model.channels)
                except (DatasetError, ConfigError) as exc:
                    tried.append(f"{cfg.root or '(default)'} ({exc})")
            raise DatasetError(f"training data for model {state.name!r} (dataset {state.model.dataset or 'unknown'!r}) not found; "
                               + self._where_looked(state, tried) + " Start the app with --data-root DIR (or set $DCGAN_DATA_ROOT).")

        return state.training_data.get(load)

    def _where_looked(self, state: ModelState, tried: list[str]) -> str:
        if tried:
            return "looked in: " + "; ".join(tried) + "."
        if not state.model.dataset:
            return "the checkpoint names no data set and no config.json with one sits beside it."
        return "no data root to look in (no --data-root, and no config.json beside the checkpoint)."

    # ------------------------------------------------------------------------------------------------ presets

    def preset_seeds(self, state: ModelState, key: tuple[str, int], compute: Callable[[], list[list[int]]]) -> list[list[int]]:
        """Exemplar seeds of an arithmetic preset, picked once per model and (preset, count)."""
        with state.lock:
            once = state.presets.setdefault(key, Once())
        return once.get(compute)

    def seed_ratings(self, state: ModelState, compute: Callable[[], Any]) -> Any:
        """The classifier's ratings of the seeds presets search (every preset picks from the same ones), once per model."""
        return state.seed_ratings.get(compute)

