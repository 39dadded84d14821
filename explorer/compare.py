"""Curves of several training runs side by side: each run's metrics.jsonl read into one long-format frame.

The Train tab overlays up to MAX_COMPARE_RUNS runs, one colour per run. Files may be written right now (a half
line at the end), come from older trainers (missing keys) or hold NaN; each run is thinned to a bounded number of
points, so a week-long run costs the browser what a short one does. Nothing here imports gradio.
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dcgan import rundir

from .training import TrainingError

MAX_COMPARE_RUNS = 4       # more lines than this on one plot cannot be told apart
MAX_POINTS_PER_RUN = 2000  # per run and curve: enough for any screen, and a fixed cost however long the run
TRAINING_CURVES = {"lossD": "loss D", "lossG": "loss G", "D_x": "D(x)", "D_G_z": "D(G(z))"}  # metrics.jsonl key: title
X_AXES = {"step": "step", "images seen": "images_seen"}  # the choice offered: its column
CURVE_COLUMNS = {"run": "string", "step": "int64", "images_seen": "float64", "metric": "string", "value": "float64"}


def _number(value: Any) -> float | None:
    """A finite real number, or None (strings, booleans, NaN and infinities are not points on a curve)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _records(metrics_path: Path) -> list[dict[str, Any]]:
    """Every complete JSON object line; unreadable bytes, a half-written last line and non-objects are skipped."""
    try:
        with open(metrics_path, "rb") as lines:
            raw = lines.readlines()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return []
    records = []
    for line in raw:
        try:
            record = json.loads(line.decode("utf-8", errors="replace"))
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_curves(metrics_path: Path) -> pd.DataFrame:
    """One run's curves, long format (step, images_seen, metric, value), sorted by step: the training curves of every
    logged step and the scalar quality metrics of every evaluation (--eval-every). A record without an integer step,
    and a value that is not a finite number, are dropped; a step logged twice keeps its last value. Evaluations log
    no images_seen: theirs is read off the training records around them (NaN where there are none)."""
    points: dict[tuple[str, int], float] = {}
    seen_steps, seen_images = [], []
    for record in _records(metrics_path):
        step = record.get("step")
        if isinstance(step, bool) or not isinstance(step, int):
            continue
        images = _number(record.get("images_seen"))
        if images is not None:
            seen_steps.append(step)
            seen_images.append(images)
        scores = record.get("eval", {}).get("metrics", {}) if isinstance(record.get("eval"), dict) else {}
        values = {**{k: record.get(k) for k in TRAINING_CURVES}, **(scores if isinstance(scores, dict) else {})}
        for metric, value in values.items():
            number = _number(value)
            if number is not None and isinstance(metric, str):
                points[(metric, step)] = number
    frame = pd.DataFrame([(step, metric, value) for (metric, step), value in points.items()], columns=["step", "metric", "value"])
    frame = frame.sort_values(["metric", "step"], kind="stable", ignore_index=True)
    if seen_steps:
        order = np.argsort(seen_steps, kind="stable")
        frame["images_seen"] = np.interp(frame["step"], np.asarray(seen_steps)[order], np.asarray(seen_images)[order])
    else:
        frame["images_seen"] = np.nan
    return frame


def thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """At most ``max_points`` rows of a sorted curve, evenly spaced and always keeping the first and the last."""
    if len(frame) <= max_points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(int))
    return frame.iloc[keep]


@functools.lru_cache(maxsize=4 * MAX_COMPARE_RUNS)
def _thinned_curves(metrics_path: Path, size: int, mtime_ns: int, max_points: int) -> pd.DataFrame:
    """A metrics file's curves, thinned, as the file was at (size, mtime_ns): a finished run is read once, not on
    every redraw (a run still training is read again when its file grows). Callers must not modify the frame."""
    curves = read_curves(metrics_path)
    return pd.concat([thin(curve, max_points) for _, curve in curves.groupby("metric", sort=False)]) if len(curves) else curves


def compare_curves(runs: Mapping[str, Path], *, max_points: int = MAX_POINTS_PER_RUN) -> pd.DataFrame:
    """The curves of up to MAX_COMPARE_RUNS runs ({name: run_dir}, in the order picked) in one long-format frame with
    a `run` column (columns and dtypes: CURVE_COLUMNS), each curve of each run thinned to ``max_points``."""
    if len(runs) > MAX_COMPARE_RUNS:
        raise TrainingError(f"{len(runs)} runs picked to compare ({', '.join(runs)}); pick at most {MAX_COMPARE_RUNS}, "
                            "more lines than that on one plot cannot be told apart")
    if max_points < 2:
        raise TrainingError(f"max_points: {max_points}; a curve needs at least 2 points")
    parts = []
    for name, run_dir in runs.items():
        metrics_path = Path(run_dir) / rundir.METRICS_FILE
        try:
            info = metrics_path.stat()
        except OSError:
            continue  # no line logged yet
        parts.append(_thinned_curves(metrics_path, info.st_size, info.st_mtime_ns, max_points).assign(run=name))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(CURVE_COLUMNS))
    return frame[list(CURVE_COLUMNS)].astype(CURVE_COLUMNS)


def quality_metrics(frame: pd.DataFrame) -> list[str]:
    """The quality metrics (fid, precision, ...) some run of a compare_curves frame has, in a stable order."""
    return sorted(set(frame["metric"]) - set(TRAINING_CURVES))


def overlay_frame(frame: pd.DataFrame, metric: str, x: str = "step") -> pd.DataFrame:
    """One plot's rows of a compare_curves frame: columns (x, value, run) for ``metric``, where x holds the column
    named (one of X_AXES' values), numbers as numbers (gr.LinePlot draws an object column as categories); rows
    without that x are dropped. One x column name whatever the axis, so a plot switching axes keeps its fields."""
    if x not in X_AXES.values():
        raise TrainingError(f"x axis {x!r}; choose from {sorted(X_AXES.values())}")
    rows = frame.loc[frame["metric"] == metric, [x, "value", "run"]].dropna(subset=[x]).round({x: 0})
    return rows.rename(columns={x: "x"}).astype({"x": "int64", "value": "float64", "run": "string"}).reset_index(drop=True)
