"""Files the explorer hands out (PNGs, GIFs, MP4s) in one private folder, pruned by age.

The encoders are dcgan.images' (``encode_png``, ``write_gif``, ``Mp4Writer``), shared with the CLI's verbs.
"""
from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from dcgan.images import encode_png

log = logging.getLogger(__name__)


class OutputDir:
    """A folder of generated files with unique names; files older than ``max_age_s`` are deleted now and then.

    Gradio copies every returned file into its own cache, so a file here only has to outlive one request.
    """

    def __init__(self, root: Path | str | None = None, *, max_age_s: float = 3600.0, prune_every: int = 200):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="dcgan-explorer-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self.prune_every = prune_every
        self._lock = threading.Lock()
        self._count = 0

    def path(self, stem: str, suffix: str) -> Path:
        """A fresh file name ``<stem>-<random>.<suffix>`` in the folder (stem reduced to safe characters)."""
        with self._lock:
            self._count += 1
            due = self._count % self.prune_every == 0
        if due:
            self.prune()
        safe = re.sub(r"[^A-Za-z0-9_.,-]+", "_", stem)[:80] or "file"
        return self.root / f"{safe}-{uuid.uuid4().hex[:10]}{suffix}"

    def save_png(self, img: np.ndarray, path: Path) -> Path:
        """uint8 [H, W] or [H, W, 3] -> PNG (fast compression: these files are small and short-lived)."""
        path.write_bytes(encode_png(img))
        return path

    def png(self, img: np.ndarray, stem: str = "image") -> Path:
        return self.save_png(img, self.path(stem, ".png"))

    def prune(self) -> int:
        """Delete files older than max_age_s; returns how many went."""
        cutoff, removed = time.time() - self.max_age_s, 0
        for path in self.root.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError as exc:  # another request may be deleting it too
                log.debug("prune %s: %s", path, exc)
        return removed
