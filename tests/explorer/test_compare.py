"""Comparing runs: metrics.jsonl files read into one long-format frame (bad lines skipped, curves thinned), the
frames the overlaid plots draw, and the limit of four runs."""
import json
import math

import pytest

from dcgan import rundir
from explorer.compare import (
    CURVE_COLUMNS,
    MAX_COMPARE_RUNS,
    compare_curves,
    overlay_frame,
    quality_metrics,
    read_curves,
)
from explorer.training import TrainingError, TrainingLimits, TrainingManager


def _training_record(step: int, loss_d: float, batch: int = 64, **extra) -> dict:
    """A line as dcgan.trainer writes it every log_every steps."""
    return {"step": step, "epoch": step / 100, "lossD": loss_d, "lossG": 2 * loss_d, "D_x": 0.75, "D_G_z": 0.25,
            "img_per_s": 800.0, "images_seen": step * batch, "lr": 0.0002, "time": 1.0e9 + step, **extra}


def _eval_record(step: int, fid: float) -> dict:
    """A line as dcgan.trainer writes it every eval_every steps: no losses, no images_seen."""
    return {"step": step, "eval": {"n": 1000, "metrics": {"fid": fid, "precision": 0.5, "histogram": [0.1, 0.9]},
                                   "floor": {"fid": 1.0, "precision": 0.9}}}


def _run(runs_dir, name: str, records: list, tail: bytes = b"") -> str:
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" if isinstance(r, dict) else r for r in records)
    (run_dir / rundir.METRICS_FILE).write_bytes(text.encode() + tail)
    return run_dir


def test_two_runs_become_one_long_frame_with_a_run_column(tmp_path):
    a = _run(tmp_path, "00000-mnist-32", [_training_record(10, 1.5), _training_record(20, 1.25), _eval_record(20, 40.0)])
    b = _run(tmp_path, "00001-mnist-32", [_training_record(10, 1.0, batch=32), _training_record(20, 0.5, batch=32)])
    frame = compare_curves({"baseline": a, "small batch": b})
    assert {c: str(t) for c, t in frame.dtypes.items()} == CURVE_COLUMNS
    rows = sorted(map(tuple, frame[["run", "metric", "step", "images_seen", "value"]].values.tolist()))
    assert rows == sorted([
        ("baseline", "lossD", 10, 640.0, 1.5), ("baseline", "lossD", 20, 1280.0, 1.25),
        ("baseline", "lossG", 10, 640.0, 3.0), ("baseline", "lossG", 20, 1280.0, 2.5),
        ("baseline", "D_x", 10, 640.0, 0.75), ("baseline", "D_x", 20, 1280.0, 0.75),
        ("baseline", "D_G_z", 10, 640.0, 0.25), ("baseline", "D_G_z", 20, 1280.0, 0.25),
        ("baseline", "fid", 20, 1280.0, 40.0), ("baseline", "precision", 20, 1280.0, 0.5),  # the histogram is no curve
        ("small batch", "lossD", 10, 320.0, 1.0), ("small batch", "lossD", 20, 640.0, 0.5),
        ("small batch", "lossG", 10, 320.0, 2.0), ("small batch", "lossG", 20, 640.0, 1.0),
        ("small batch", "D_x", 10, 320.0, 0.75), ("small batch", "D_x", 20, 640.0, 0.75),
        ("small batch", "D_G_z", 10, 320.0, 0.25), ("small batch", "D_G_z", 20, 640.0, 0.25),
    ])
    assert quality_metrics(frame) == ["fid", "precision"]
    assert list(compare_curves({"b": b, "a": a})["run"].unique()) == ["b", "a"]  # the order picked (the colours follow it)


def test_bad_lines_missing_keys_and_non_finite_values_are_skipped(tmp_path):
    records = [
        _training_record(10, 1.0),
        "not json at all\n",
        "[1, 2, 3]\n",                                                   # JSON, but not a record
        '{"step": 15, "lossD": NaN, "lossG": Infinity, "D_x": -Infinity, "D_G_z": 0.5}\n',  # json.dumps writes these
        {"step": "20", "lossD": 9.0},                                    # a step that is not an integer
        {"step": 20.0, "lossD": 9.0},
        {"lossD": 9.0},                                                  # no step
        {"step": 30, "lossD": "1.0", "lossG": True, "D_x": None, "eval": "broken"},  # nothing here is a number
        {"step": 40, "lossG": 4.0},                                      # an older trainer: only some keys
        {"step": 40, "lossG": 4.5},                                      # the same step again: the last value wins
        _eval_record(50, float("nan")),
    ]
    run = _run(tmp_path, "run", records, tail=b'\xff\xfe{"step": 60, "lossD": 0.1}\n{"step": 70, "lossD": 0.')  # a run writing now
    frame = read_curves(run / rundir.METRICS_FILE)
    got = sorted(map(tuple, frame[["metric", "step", "value"]].values.tolist()))
    assert got == sorted([("lossD", 10, 1.0), ("lossG", 10, 2.0), ("D_x", 10, 0.75), ("D_G_z", 10, 0.25), ("D_G_z", 15, 0.5),
                          ("lossG", 40, 4.5), ("precision", 50, 0.5)])
    assert all(math.isfinite(v) for v in frame["value"])


def test_a_run_without_metrics_yet_gives_an_empty_frame_of_the_right_types(tmp_path):
    (tmp_path / "fresh").mkdir()
    frame = compare_curves({"fresh": tmp_path / "fresh"})
    assert frame.empty and list(frame.columns) == list(CURVE_COLUMNS)
    assert str(frame["step"].dtype) == "int64" and str(frame["value"].dtype) == "float64"
    assert compare_curves({}).empty


def test_more_than_four_runs_are_refused(tmp_path):
    runs = {f"run-{i}": _run(tmp_path, f"run-{i}", [_training_record(10, 1.0)]) for i in range(MAX_COMPARE_RUNS + 1)}
    with pytest.raises(TrainingError, match=r"5 runs picked to compare .*pick at most 4"):
        compare_curves(runs)
    assert set(compare_curves(dict(list(runs.items())[:MAX_COMPARE_RUNS]))["run"]) == set(list(runs)[:MAX_COMPARE_RUNS])


def test_long_runs_are_thinned_to_a_bounded_number_of_points(tmp_path):
    run = _run(tmp_path, "long", [_training_record(step, 1.0 / step) for step in range(1, 10_001)])
    frame = compare_curves({"long": run}, max_points=2000)
    for metric, curve in frame.groupby("metric"):
        steps = curve["step"].tolist()
        assert len(steps) == 2000 and steps[0] == 1 and steps[-1] == 10_000 and steps == sorted(steps), metric
        assert max(b - a for a, b in zip(steps, steps[1:])) <= 6  # evenly spread, not the first 2000
    with pytest.raises(TrainingError, match="at least 2 points"):
        compare_curves({"long": run}, max_points=1)


def test_a_run_that_logs_on_is_read_again_and_a_finished_one_is_not(tmp_path, monkeypatch):
    import explorer.compare

    run = _run(tmp_path, "live", [_training_record(10, 1.0)])
    assert compare_curves({"live": run})["step"].max() == 10
    with (run / rundir.METRICS_FILE).open("a") as log:
        log.write(json.dumps(_training_record(20, 0.5)) + "\n")
    assert compare_curves({"live": run})["step"].max() == 20
    reads = []
    monkeypatch.setattr(explorer.compare, "read_curves", lambda path: reads.append(path))
    assert compare_curves({"live": run})["step"].max() == 20 and reads == []  # unchanged: the parsed curves are kept


@pytest.mark.parametrize("x", ["step", "images_seen"])
def test_overlay_frames_are_numbers_with_one_series_per_run(tmp_path, x):
    """What a plot draws: gr.LinePlot takes quantitative axes from numeric dtypes, and colours by the run column."""
    import gradio as gr

    a = _run(tmp_path, "a", [_training_record(10, 1.5), _eval_record(15, 30.0), _training_record(20, 1.25)])
    b = _run(tmp_path, "b", [_training_record(10, 1.0)])
    frame = compare_curves({"a": a, "b": b})
    loss_d = overlay_frame(frame, "lossD", x)
    assert loss_d.values.tolist() == [[640, 1.5, "a"], [1280, 1.25, "a"], [640, 1.0, "b"]] if x == "images_seen" else \
        [[10, 1.5, "a"], [20, 1.25, "a"], [10, 1.0, "b"]]
    fid = overlay_frame(frame, "fid", x)
    assert fid.values.tolist() == [[960 if x == "images_seen" else 15, 30.0, "a"]]  # between the records around it
    plot = gr.LinePlot(x="x", y="value", color="run").postprocess(loss_d)
    assert plot.datatypes == {"x": "quantitative", "value": "quantitative", "run": "nominal"}
    with pytest.raises(TrainingError, match="x axis 'epoch'"):
        overlay_frame(frame, "lossD", "epoch")


def test_an_evaluation_with_no_training_records_has_no_images_seen(tmp_path):
    run = _run(tmp_path, "evals-only", [_eval_record(100, 12.0)])
    frame = compare_curves({"e": run})
    assert overlay_frame(frame, "fid", "step").values.tolist() == [[100, 12.0, "e"]]
    assert overlay_frame(frame, "fid", "images_seen").empty


def test_the_tab_keeps_the_first_four_picks_and_says_which_it_left_out(tmp_path):
    from explorer.ui.tabs.train_compare import _picked

    manager = TrainingManager(tmp_path / "runs", tmp_path, TrainingLimits())
    names = [f"0000{i}-mnist-32" for i in range(6)]
    for name in names[:5]:
        (tmp_path / "runs" / name).mkdir(parents=True)
    runs, message = _picked(manager, names[:5])
    assert list(runs) == names[:4] and runs[names[0]] == tmp_path / "runs" / names[0]
    assert message == (f"5 runs picked; comparing the first 4 and leaving out {names[4]}: "
                       "more lines than that on one plot cannot be told apart")
    runs, message = _picked(manager, [names[0], names[5], names[0]])  # a run deleted since the list was shown; a repeat
    assert list(runs) == [names[0]] and message == f"{names[5]} is no longer in the runs folder"
    assert _picked(manager, None) == ({}, "")
