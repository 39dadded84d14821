"""TensorBoard events of a training run (`dcgan train --tensorboard`): the metrics.jsonl scalars, the in-training
quality metrics (with their real floors) and the preview grids, through torch.utils.tensorboard (the `tensorboard` extra).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

TRAIN_TAGS = {"lossD": "loss/D", "lossG": "loss/G", "D_x": "D/D(x)", "D_G_z": "D/D(G(z))", "diversity": "train/diversity",
              "img_per_s": "train/img_per_s", "lr": "train/lr", "epoch": "train/epoch"}  # metrics.jsonl key -> tag
PREVIEW_TAG = "preview"
FLUSH_SECS = 10  # a live `tensorboard --logdir` sees new points within this


class TensorBoardLog:
    """Writes one run's events under ``log_dir``; ``start(step)`` opens the writer once the first step is known,
    so a resumed run drops the events a killed process wrote after its last checkpoint (purge_step)."""

    def __init__(self, log_dir: Path | str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install 'dcgan-explorer[tensorboard]'") from exc
        self.log_dir = Path(log_dir)
        self._make_writer = SummaryWriter
        self.writer = None

    def start(self, step: int) -> None:
        # events after ``step`` are a killed run's, redone from its checkpoint now: TensorBoard hides them
        self.writer = self._make_writer(str(self.log_dir), purge_step=step + 1 if step else None, flush_secs=FLUSH_SECS)

    def record(self, record: dict[str, Any]) -> None:
        """A metrics.jsonl record: training stats (TRAIN_TAGS), or an eval record's metrics as eval/<name> and
        their real floors as eval_floor/<name>."""
        step = record["step"]
        for key, tag in TRAIN_TAGS.items():
            if key in record:
                self.writer.add_scalar(tag, record[key], step)
        evaluation = record.get("eval") or {}
        for group, values in (("eval", evaluation.get("metrics") or {}), ("eval_floor", evaluation.get("floor") or {})):
            for name, value in values.items():
                self.writer.add_scalar(f"{group}/{name}", value, step)
        if record.get("warnings"):
            self.writer.add_text("warnings", "; ".join(record["warnings"]), step)

    def preview(self, step: int, grid: np.ndarray) -> None:
        """A preview grid, uint8 [H, W, C] (dcgan.images.make_grid)."""
        self.writer.add_image(PREVIEW_TAG, grid, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
