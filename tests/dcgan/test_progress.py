"""The progress line of `dcgan train`: a time-based bar for --max-minutes, speed and losses from the first step, the
slow last seconds named, the deadline checked every step."""
from __future__ import annotations

import io
import json
import logging

from dcgan.progress import REFRESH_S, TrainProgress
from dcgan.trainer import fit
from tests.conftest import make_tiny_cfg


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress(clock: Clock, **kwargs) -> TrainProgress:
    options = dict(step=0, stop_step=None, budget_s=60.0, images_per_step=64, stats=lambda: {"lossD": 0.5, "lossG": 1.25})
    return TrainProgress(**{**options, **kwargs}, file=io.StringIO(), disable=False, clock=clock)


def test_a_minutes_budget_gives_a_time_bar_with_losses_and_speed_from_the_first_step():
    clock = Clock()
    bar = progress(clock)
    clock.now = 0.5
    bar.update(1)
    line = str(bar.bar)
    assert bar.bar.total == 60.0 and bar.bar.n == 0.5
    assert "of the 1 min budget" in line and "%" in line
    assert "step 1" in line and "lossD 0.500" in line and "lossG 1.250" in line and "img/s 128" in line
    assert "None" not in line and "WARNING" not in line
    clock.now = 0.5 + REFRESH_S / 2
    bar.update(2)  # within the refresh interval: the losses are not read again
    assert bar.bar.n == 0.5 and "step 1," in str(bar.bar)
    clock.now = 0.5 + REFRESH_S
    bar.update(3)
    assert bar.bar.n == 0.5 + REFRESH_S and "step 3" in str(bar.bar) and f"img/s {2 * 64 / REFRESH_S:.0f}" in str(bar.bar)


def test_with_steps_and_minutes_the_bar_follows_whichever_ends_the_run_first():
    clock = Clock()
    bar = progress(clock, budget_s=100.0, stop_step=200)
    clock.now = 1.0
    bar.update(100)
    assert bar.bar.n == 50.0  # half the steps done in 1% of the time


def test_a_step_bar_without_a_budget_counts_steps():
    clock = Clock()
    bar = progress(clock, budget_s=None, stop_step=100, step=10)
    clock.now = 1.0
    bar.update(11)
    assert bar.bar.n == 11 and bar.bar.total == 100 and "lossD 0.500" in str(bar.bar) and "step 11" not in str(bar.bar)


def test_no_losses_yet_shows_none_rather_than_zero_division():
    clock = Clock()
    bar = progress(clock, stats=lambda: None)
    clock.now = 1.0
    bar.update(1)
    assert "lossD" not in str(bar.bar)


def test_phases_and_warnings_are_shown_and_cleared():
    clock = Clock()
    bar = progress(clock)
    bar.warn(["D rejects every fake"])
    bar.phase("saving checkpoint…")
    assert str(bar.bar).startswith("saving checkpoint…") and "WARNING: D rejects every fake" in str(bar.bar)
    bar.warn([])
    bar.phase("")
    assert "saving" not in str(bar.bar) and "WARNING" not in str(bar.bar)


def test_the_deadline_is_checked_every_step_and_the_last_seconds_are_named(tmp_path, caplog):
    """Logging and checkpoints only at the end: the run must still stop on time (it once checked the clock only when
    it logged), and the log (no terminal here) says what the final seconds are spent on."""
    huge = 10**6
    cfg = make_tiny_cfg(max_steps=huge, max_minutes=0.01, log_every=huge, sample_every=huge, checkpoint_every=huge)
    with caplog.at_level(logging.INFO):
        record = fit(cfg, tmp_path, progress=True)
    assert 0 < record["step"] < huge
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [record["step"]]
    messages = [r.getMessage() for r in caplog.records]
    assert "saving checkpoint…" in messages and "recalibrating BatchNorm…" in messages
