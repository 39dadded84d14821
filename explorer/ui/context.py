"""What every tab and the API share: the Context (catalog, output folder, header components), the error guard
and the queue names. Imports nothing of the tabs, so they can all import it."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr
import numpy as np

from dcgan.errors import DCGANError

from ..derived import Catalog
from ..outputs import OutputDir
from ..training import TrainingManager
from ..uploads import UploadStore
from .fairness import VisitorBudget

MODEL_QUEUE = "model"        # concurrency_id shared by everything that runs a generator: one CPU/GPU, one queue
TRAINING_QUEUE = "training"  # the training API: cheap file reads and process control, never behind image work


def guard(fn: Callable) -> Callable:
    """Turn the library's input errors into gr.Error messages; anything else propagates (and is logged by Gradio)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DCGANError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc
    return wrapper


def add_endpoints(fns: Any, *, concurrency_limit: int, budget: VisitorBudget | None = None) -> None:
    """Each function as a public API endpoint named after it (call inside gr.Blocks), in the shared model queue,
    guarded, and charged to the visitor's budget when there is one (pass none for listings, which use no generator)."""
    options: dict[str, Any] = {"concurrency_id": MODEL_QUEUE, "concurrency_limit": concurrency_limit}
    for fn in fns:
        gr.api(guard(budget.metered(fn) if budget else fn), api_name=fn.__name__, **options)


def as_files(value: Any, out: OutputDir) -> Any:
    """A handler's result with its images (uint8 [H, W] or [H, W, C] arrays, alone, in galleries' (image, caption)
    pairs or among several outputs) written to PNG files of their own. Gradio stores a returned array in its cache
    under the hash of its bytes and rewrites that file each time the same image comes back, so a browser still
    fetching it gets a short read (h11 "Too little data for declared Content-Length"); a returned file is copied in
    once, atomically."""
    if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim in (2, 3):
        return str(out.png(value))
    if isinstance(value, (list, tuple)):
        return type(value)(as_files(item, out) for item in value)
    return value


@dataclass
class Header:
    """The components above the tabs, shared by all of them."""
    model: gr.Dropdown
    seed: gr.State         # the current seed every tab uses: an int seed or a latent name (img-<sha12>), always valid
    seed_box: gr.Textbox   # where it is typed; what is typed becomes ``seed`` only once checked (ui/app.py)
    truncation: gr.Slider
    session_models: gr.State  # names of this session's uploads (names only, never models)


@dataclass
class Context:
    """What every tab may use: the catalog, where files go, the page and its header, and the optional back ends."""
    catalog: Catalog
    out: OutputDir
    demo: gr.Blocks
    header: Header
    concurrency_limit: int
    uploads: UploadStore
    training: TrainingManager | None = None  # the Train tab is built only with one
    budget: VisitorBudget | None = None      # per-visitor generator time (public mode); None: unmetered
    shared: dict[str, Any] = field(default_factory=dict)  # components a shared link restores, by ShareState field (ui/share.py)
    restored: Any = None  # the trigger fired once a link's state is set (ui/share.py); events on demo.load wait for it

    @property
    def model(self) -> gr.Dropdown:
        return self.header.model

    @property
    def seed(self) -> gr.State:
        return self.header.seed

    @property
    def truncation(self) -> gr.Slider:
        return self.header.truncation

    @property
    def url(self) -> str:
        """The app's address for code snippets (its local URL once launched)."""
        return getattr(self.demo, "local_url", None) or "http://127.0.0.1:7860/"

    def on(self, triggers: Any, fn: Callable, inputs: Any = None, outputs: Any = None, **kwargs: Any) -> Any:
        """An event running ``fn`` in the shared model queue, hidden from the public API (see explorer.ui.api)."""
        options = {"api_visibility": "private", "concurrency_id": MODEL_QUEUE, "concurrency_limit": self.concurrency_limit, **kwargs}
        return gr.on(self._after_restore(triggers), self.image_work(self._needs_model(fn, inputs, outputs)), inputs, outputs, **options)

    def then(self, dependency: Any, fn: Callable, inputs: Any = None, outputs: Any = None, **kwargs: Any) -> Any:
        """Run ``fn`` after ``dependency`` succeeds, in the model queue, hidden from the API."""
        options = {"api_visibility": "private", "concurrency_id": MODEL_QUEUE, "concurrency_limit": self.concurrency_limit, **kwargs}
        return dependency.success(self.image_work(self._needs_model(fn, inputs, outputs)), inputs, outputs, **options)

    def image_work(self, fn: Callable) -> Callable:
        """``fn`` guarded, metered against the visitor's budget when there is one, its images served as files."""
        @functools.wraps(fn)
        def served(*args: Any, **kwargs: Any) -> Any:
            return as_files(fn(*args, **kwargs), self.out)
        return guard(self.budget.metered(served) if self.budget else served)

    def on_light(self, triggers: Any, fn: Callable, inputs: Any = None, outputs: Any = None, **kwargs: Any) -> Any:
        """An event for cheap bookkeeping (no generator): not queued behind image work."""
        options = {"api_visibility": "private", "queue": False, "show_progress": "hidden", **kwargs}
        return gr.on(self._after_restore(triggers), guard(fn), inputs, outputs, **options)

    def set_seed(self, triggers: Any, fn: Callable, inputs: Any = None, **kwargs: Any) -> Any:
        """An event making ``fn``'s result (a seed or latent name; gr.skip() for none) the current seed: the header's
        box shows it and the tabs' ``seed.change`` events run. Queued (a State's change fires only after queued
        events) with no concurrency limit, so it never waits behind image work."""
        @functools.wraps(fn)
        def both(*args: Any, **kw: Any) -> Any:
            value = fn(*args, **kw)
            return (gr.skip(), gr.skip()) if isinstance(value, dict) else (value, value)  # gr.skip() is an update dict
        options = {"api_visibility": "private", "show_progress": "hidden", "concurrency_limit": None, **kwargs}
        return gr.on(self._after_restore(triggers), guard(both), inputs, [self.header.seed_box, self.header.seed], **options)

    def _after_restore(self, triggers: Any) -> Any:
        """``triggers`` with the page's load replaced by ``restored``: what runs on load sees a shared link's state."""
        if self.restored is None:
            return triggers
        listed = triggers if isinstance(triggers, (list, tuple)) else [triggers]
        return [self.restored if getattr(t, "event_name", None) == "load" and getattr(t, "__self__", None) is self.demo else t
                for t in listed]

    def _needs_model(self, fn: Callable, inputs: Any, outputs: Any) -> Callable:
        """With no model picked (an empty checkpoints folder), handlers taking the model first leave their outputs alone."""
        first = inputs[0] if isinstance(inputs, (list, tuple)) and inputs else inputs
        if first is not self.model:
            return fn
        count = len(outputs) if isinstance(outputs, (list, tuple)) else 1

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            model = args[0] if args else None
            if not model:
                return gr.skip() if count == 1 else tuple(gr.skip() for _ in range(count))
            return fn(*args, **kwargs)
        return wrapper
