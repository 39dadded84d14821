"""The Train tab's back end: settings checks, the run-directory watcher, and a real start/stop/resume cycle."""
import json
import time

import numpy as np
import pytest
from PIL import Image

from dcgan import rundir
from dcgan.checkpoints import load_generator
from explorer.training import (
    TrainingError,
    TrainingLimits,
    TrainingManager,
    TrainSettings,
    optional_number,
    serve_copy,
    timelapse_gif,
    watch_run,
)
from tests.conftest import SHARED_DATA, shared_data_or_skip, wait_for


def _manager(tmp_path, **limits):
    return TrainingManager(tmp_path / "runs", SHARED_DATA, TrainingLimits(**limits))


def test_settings_are_checked(tmp_path):
    shared_data_or_skip("MNIST")
    m = _manager(tmp_path, max_minutes=10, allow_folders=False)
    assert "mnist" in m.available_datasets() and "folder" not in m.available_datasets()
    cfg = m.check(TrainSettings(dataset="mnist", minutes=500))
    assert cfg.train.max_minutes == 10  # capped by the app's limit
    for bad in (TrainSettings(dataset="imagenet"), TrainSettings(image_size=48), TrainSettings(batch_size=0),
                TrainSettings(minutes=None), TrainSettings(dataset="folder", folder="/etc")):
        with pytest.raises(TrainingError):
            m.check(bad)
    with pytest.raises(TrainingError, match="public mode"):
        m.attach(tmp_path)


def test_small_data_options_reach_the_run_and_bad_ones_are_refused(tmp_path):
    shared_data_or_skip("MNIST")
    m = _manager(tmp_path)
    cfg = m.check(TrainSettings(augment="cutout, translation", flip="on", d_norm="spectral", r1_gamma=1e-4))
    assert (cfg.train.augment, cfg.train.flip, cfg.model.d_norm, cfg.train.r1_gamma) == ("translation,cutout", "on", "spectral", 1e-4)
    plain = m.check(TrainSettings())
    assert (plain.train.augment, plain.train.flip, plain.model.d_norm, plain.train.r1_gamma) == ("", "auto", "batch", 0.0)
    for bad, name in ((dict(augment="blur"), "augment"), (dict(augment=["translation"]), "augment"), (dict(flip="maybe"), "flip"),
                      (dict(d_norm="layer"), "d_norm"), (dict(r1_gamma=-1.0), "r1_gamma"), (dict(r1_gamma=float("nan")), "r1_gamma"),
                      (dict(r1_gamma=1e9), "r1_gamma"), (dict(r1_gamma="0.1"), "r1_gamma")):
        with pytest.raises(TrainingError, match=name):
            m.check(TrainSettings(**bad))


def test_start_writes_a_config_the_cli_runs_unchanged(tmp_path, monkeypatch, capsys):
    """The app launches `dcgan train --config FILE`: feeding its argv to the real CLI resolves to the file's options."""
    import subprocess

    from dcgan import cli

    shared_data_or_skip("MNIST")
    launched = []

    class Finished:
        pid = 0

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kwargs: launched.append(argv) or Finished())
    m = _manager(tmp_path)
    name = m.start(TrainSettings(dataset="mnist", image_size=16, width=8, minutes=2, augment="translation", d_norm="spectral",
                                 r1_gamma=0.001))
    saved = json.loads((tmp_path / "runs" / name / "config.json").read_text())
    assert saved["model"]["channels"] == 1 and saved["train"]["max_minutes"] == 2 and saved["data"]["root"] == str(SHARED_DATA)
    assert saved["model"]["d_norm"] == "spectral" and saved["train"]["augment"] == "translation" and saved["train"]["r1_gamma"] == 0.001
    assert launched[0][1:3] == ["-m", "dcgan"]
    assert cli.main([*launched[0][3:], "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved.pop("run_dir") == str(tmp_path / "runs" / name) and resolved == saved


def test_run_names_cannot_escape_runs_dir(tmp_path):
    m = _manager(tmp_path)
    (tmp_path / "runs").mkdir()
    for bad in ("../etc", "/etc", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(TrainingError):
            m.run_dir(bad)
    with pytest.raises(TrainingError, match="no run named"):
        m.status("00042-nothing")


def test_watcher_tolerates_half_written_files_and_dead_processes(tmp_path):
    run = tmp_path / "run"
    assert watch_run(run)["state"] == "starting"  # nothing there yet
    (run / "samples").mkdir(parents=True)
    (run / "config.json").write_text('{"train": {"max_steps": 100, "batch_si')  # being written
    good = {"step": 10, "epoch": 0.5, "lossD": 1.0, "lossG": 2.0, "D_x": 0.5, "D_G_z": 0.4, "img_per_s": 100.0}
    (run / "metrics.jsonl").write_text(json.dumps(good) + "\n" + '{"step": 20, "lossD": 0.')
    (run / "samples" / "step-0000010.png").write_bytes(b"\x89PNG half")
    rundir.write_status(run, state="running", pid=2**22 + 12345, started=time.time())  # no such process
    status = watch_run(run)
    assert status["state"] == "dead" and status["step"] == 10 and len(status["losses"]) == 1
    assert any("gone" in w for w in status["warnings"])
    with pytest.raises(TrainingError):
        timelapse_gif(run, tmp_path / "t.gif")  # the only grid is unreadable


def test_timelapse_gif_has_one_frame_per_grid(tmp_path):
    import imageio.v3 as iio

    (tmp_path / "samples").mkdir()
    for step in (5, 10, 15):
        Image.fromarray(np.full((20, 20, 3), step * 10, np.uint8)).save(rundir.sample_path(tmp_path, step))
    gif = timelapse_gif(tmp_path, tmp_path / "t.gif")
    assert iio.imread(gif, index=None).shape[0] == 3


LOGGED = [{"step": 10, "lossD": 1.25, "lossG": 0.75, "D_x": 0.5, "D_G_z": 0.25}, {"step": 20, "lossD": 1.0, "lossG": 2.0, "D_x": 0.625}]


@pytest.mark.parametrize("records", [[], LOGGED], ids=["no-losses-yet", "two-logged-steps"])
def test_plot_frames_are_numbers_even_before_the_first_loss(records):
    """gr.LinePlot takes each axis's scale from the first frame's dtypes: an empty object frame drew discrete axes, no lines."""
    import gradio as gr

    from explorer.ui.tabs.train import loss_frames

    losses, d_out = loss_frames({"losses": records})
    for frame in (losses, d_out):
        assert str(frame["step"].dtype) == "int64" and str(frame["value"].dtype) == "float64"
        plot = gr.LinePlot(x="step", y="value", color="series").postprocess(frame)
        assert plot.datatypes == {"step": "quantitative", "value": "quantitative", "series": "nominal"}
    assert losses.values.tolist() == ([[10, 1.25, "loss D"], [10, 0.75, "loss G"], [20, 1.0, "loss D"], [20, 2.0, "loss G"]]
                                      if records else [])
    assert d_out.values.tolist() == ([[10, 0.5, "D(x)"], [10, 0.25, "D(G(z))"], [20, 0.625, "D(x)"]] if records else [])


def test_time_lapse_slider_follows_the_newest_grid_until_a_pick_which_outlives_a_late_poll():
    from explorer.ui.tabs.train import time_lapse_position

    assert time_lapse_position(5, 3, None) == (None, 4, False)  # following: the slider moves on to the newest grid
    assert time_lapse_position(0, None, None) == (None, 0, False)
    assert time_lapse_position(5, 0, 0) == (0, None, False)  # a look back stays while grids arrive; the slider only reaches further
    assert time_lapse_position(5, 4.0, 0) == (0, 0, True)  # a poll answered before the pick moved the slider: put the pick back
    assert time_lapse_position(5, None, 2) == (2, 2, True)
    assert time_lapse_position(2, 1, 3) == (None, 1, False)  # a pick beyond this run's grids (another run's) is dropped


def test_status_lines_use_words_not_emoji():
    """Emoji render as boxes where no emoji font is installed (Unicode category So: symbols and pictographs)."""
    import unicodedata

    from explorer.ui.tabs.train import STATES, status_markdown

    for state in [*STATES, "stopping"]:
        text = status_markdown({"name": "00001-mnist-32", "state": state, "step": 20, "epoch": 0.1, "img_per_s": 900.0,
                                "eta_s": 61.0, "images_seen": 1280, "warnings": ["D rejects every fake"], "error": "it broke",
                                "log_tail": "Traceback: ..."})
        assert not [ch for ch in text if unicodedata.category(ch) == "So"], text
        assert f"00001-mnist-32**: {STATES[state]}" in text and "Warning:** D rejects every fake" in text and "Error:** it broke" in text
    assert STATES["stopped"] == "stopped" and STATES["stopping"].startswith("stopping")


def test_optional_numbers_from_a_text_box(tmp_path):
    assert optional_number("epochs", "") is None and optional_number("epochs", "  ") is None and optional_number("epochs", None) is None
    assert optional_number("epochs", " 2.5 ") == 2.5 and optional_number("epochs", 3) == 3.0
    with pytest.raises(TrainingError, match="epochs: 'two' is not a number"):
        optional_number("epochs", "two")
    shared_data_or_skip("MNIST")
    with pytest.raises(TrainingError, match="epochs"):  # "nan" parses; the range check refuses it with the other settings
        _manager(tmp_path).check(TrainSettings(dataset="mnist", epochs=optional_number("epochs", "nan")))


def test_served_grids_are_copies_a_run_cannot_rewrite(tmp_path):
    """The web server hands out a copy: a resumed run rewriting its grid leaves a copy being served intact."""
    grid = rundir.sample_path(tmp_path, 5)
    grid.parent.mkdir()
    grid.write_bytes(b"first grid")
    copy = serve_copy(grid, tmp_path / "served.png")
    grid.write_bytes(b"rewritten after a resume")
    assert copy != grid and copy.read_bytes() == b"first grid"


@pytest.mark.slow
def test_start_watch_stop_resume_a_real_run(tmp_path):
    shared_data_or_skip("MNIST")
    m = _manager(tmp_path, max_concurrent=1)
    name = m.start(TrainSettings(dataset="mnist", image_size=16, width=8, batch_size=32, minutes=5, sample_every=5))
    with pytest.raises(TrainingError, match="at a time"):
        m.start(TrainSettings(dataset="mnist", image_size=16, width=8, batch_size=32, minutes=5))

    def previewed() -> bool:
        status = m.status(name)
        assert status["state"] in ("starting", "running", "unknown"), status
        return bool(status["latest_grid"] and status["losses"])

    wait_for(previewed, f"run {name} showing a preview grid and logged losses", interval=0.5)
    assert rundir.list_samples(tmp_path / "runs" / name)[0][0] == 0  # the untrained grid came first, before any step
    asked = m.request_stop(name)  # returns at once, while the trainer finishes its step and saves
    assert asked["state"] in ("stopping", "stopped"), asked
    status = wait_for(lambda: (s := m.status(name))["state"] not in ("stopping", "running") and s, f"run {name} stopping",
                      interval=0.2)
    assert status["state"] == "stopped", status
    with pytest.raises(TrainingError, match="not training"):
        m.request_stop(name)
    stopped_at = json.loads((tmp_path / "runs" / name / "status.json").read_text())["step"]
    assert load_generator(tmp_path / "runs" / name)[1].info["step"] == stopped_at
    m.resume(name, minutes=0.05)  # at least one logged step, whatever the clock says: the budget is checked at log steps
    wait_for(lambda: m.status(name)["state"] != "running", f"resumed run {name} finishing its 3 s budget", interval=0.5)
    final = m.status(name)
    assert final["state"] == "finished", final
    assert final["step"] > stopped_at
    assert load_generator(tmp_path / "runs" / name)[1].info["step"] == final["step"]
