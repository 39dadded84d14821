"""The live progress line of `dcgan train`: a time-based bar (percentage, time left) when the budget is minutes, a
step bar otherwise; losses and img/s from the first step on; what the trainer is doing in its last seconds.

The losses live on the training device: reading them is a host sync, so the line reads them at most every
``REFRESH_S`` seconds, never every step.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, TextIO

log = logging.getLogger(__name__)

REFRESH_S = 1.0  # seconds between refreshes of the losses and img/s shown


class TrainProgress:
    """``update`` after every step, ``phase`` before slow non-step work ("saving…"), ``close`` at the end.

    ``budget_s``: the --max-minutes budget in seconds (a time-based bar), or None (a bar over steps up to
    ``stop_step``). With both, the bar shows whichever is further along, since that one ends the run.
    ``stats``: returns the current window's mean losses as {name: value}, or None when there is none yet.
    """

    def __init__(self, *, step: int, stop_step: int | None, budget_s: float | None, images_per_step: int,
                 stats: Callable[[], dict[str, float] | None], file: TextIO | None = None, disable: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        from tqdm import tqdm

        self.start_step, self.stop_step, self.budget_s = step, stop_step, budget_s
        self.images_per_step, self.stats, self.clock = images_per_step, stats, clock
        self.started = self.last_refresh = clock()
        self.refreshed_step = step
        self.warnings: list[str] = []
        if budget_s is not None:
            fmt = "{desc}{percentage:3.0f}%|{bar}| {elapsed}<{remaining} of the " + _minutes(budget_s) + " budget{postfix}"
            self.bar = tqdm(total=budget_s, bar_format=fmt, dynamic_ncols=True, file=file, disable=disable)
        else:
            self.bar = tqdm(total=stop_step, initial=step, unit="step", dynamic_ncols=True, file=file, disable=disable)
        self._postfix: dict[str, str] = {}

    @property
    def live(self) -> bool:
        """False when no bar is drawn (not a terminal): the trainer logs lines instead."""
        return not self.bar.disable

    def update(self, step: int, *, force: bool = False) -> None:
        now = self.clock()
        if self.budget_s is None:
            self.bar.update(step - self.bar.n)
        first = self.refreshed_step == self.start_step
        if not (first or force or now - self.last_refresh >= REFRESH_S):
            return
        stats = self.stats()
        if stats is not None:
            speed = (step - self.refreshed_step) * self.images_per_step / max(now - self.last_refresh, 1e-9)
            steps = {"step": f"{step}"} if self.budget_s is not None else {}  # a step bar counts them itself
            self._postfix = {**steps, **{k: f"{v:.3f}" for k, v in stats.items()}, "img/s": f"{speed:.0f}"}
        self.last_refresh, self.refreshed_step = now, step
        if self.budget_s is not None:
            done = now - self.started
            if self.stop_step is not None and self.stop_step > self.start_step:
                done = max(done, self.budget_s * (step - self.start_step) / (self.stop_step - self.start_step))
            self.bar.n = min(done, self.budget_s)
        self._show()

    def warn(self, warnings: list[str]) -> None:
        """Plain-words warnings of the last log window (an empty list clears them)."""
        self.warnings = list(warnings)
        self._show()

    def phase(self, text: str) -> None:
        """Say what the trainer does now, outside the steps ("saving checkpoint…"); '' goes back to training."""
        if not self.live:
            if text:
                log.info("%s", text)
            return
        self.bar.set_description_str(f"{text} " if text else "", refresh=True)

    def close(self) -> None:
        self.bar.close()

    def _show(self) -> None:
        parts = [f"{k} {v}" for k, v in self._postfix.items()] + [f"WARNING: {w}" for w in self.warnings]
        self.bar.set_postfix_str(", ".join(parts), refresh=True)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
