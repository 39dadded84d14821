"""The Train tab's API through gradio_client: a real short MNIST run started, watched, stopped, resumed and explored."""
from __future__ import annotations

import pytest

from dcgan import rundir
from tests.conftest import SHARED_DATA, shared_data_or_skip, wait_for

from .conftest import free_port


@pytest.fixture(scope="module")
def train_app(tmp_path_factory, gradio_env, checkpoints_dir):
    from gradio_client import Client

    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.training import TrainingLimits, TrainingManager
    from explorer.ui.app import build_app, launch_options

    runs = tmp_path_factory.mktemp("runs")
    manager = TrainingManager(runs, SHARED_DATA, TrainingLimits(max_minutes=10))  # the test stops its runs itself
    demo = build_app(Catalog(CheckpointRegistry([checkpoints_dir, runs])), out=OutputDir(tmp_path_factory.mktemp("train-out")),
                     training=manager)
    demo.queue(default_concurrency_limit=2, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, **launch_options())
    client = Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
    try:
        yield client, manager
    finally:
        manager.close()
        client.close()
        demo.close()


def _wait(client, run, predicate, what):
    """/train_status until predicate(status, grid) holds; the run must keep running meanwhile."""
    def check():
        status, grid = client.predict(run, api_name="/train_status")
        if predicate(status, grid):
            return status, grid
        assert status["state"] in ("starting", "running", "unknown"), status
        return None

    return wait_for(check, f"run {run}: {what}", interval=1.0)


def test_train_endpoints_are_public(train_app):
    client, _ = train_app
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/train_start", "/train_status", "/train_stop", "/train_resume"} <= named


def test_refusals_are_clear(train_app):
    from gradio_client.exceptions import AppError

    client, _ = train_app
    with pytest.raises(AppError, match="not available"):
        client.predict("imagenet", api_name="/train_start")
    with pytest.raises(AppError, match="not a run name"):
        client.predict("../../etc", api_name="/train_status")
    with pytest.raises(AppError, match="no run named"):
        client.predict("00000-nothing", api_name="/train_stop")


@pytest.mark.slow
def test_start_watch_stop_resume_explore(train_app):
    from gradio_client.exceptions import AppError

    shared_data_or_skip("MNIST")
    client, manager = train_app
    run = client.predict("mnist", 16, "dcgan", 8, 32, 10.0, None, None, 5, 10, augment="cutout,translation", flip="off",
                         d_norm="spectral", r1_gamma=1e-4, api_name="/train_start")  # stopped below
    config = rundir.read_config(manager.run_dir(run) / rundir.CONFIG_FILE)
    assert (config.train.augment, config.train.flip, config.model.d_norm, config.train.r1_gamma) == \
        ("translation,cutout", "off", "spectral", 1e-4)
    with pytest.raises(AppError, match="at a time"):
        client.predict("mnist", 16, "dcgan", 8, 32, 10.0, api_name="/train_start")
    status, grid = _wait(client, run, lambda s, g: g is not None and s["last_metrics"] is not None and s["step"] >= 10,
                         "a preview grid and the step-10 evaluation")
    assert status["img_per_s"] > 0 and "fid" in status["last_metrics"]["metrics"]
    stopped = client.predict(run, api_name="/train_stop")
    assert stopped["state"] == "stopped"
    assert run in [m["name"] for m in client.predict(api_name="/models")]  # explorable at once
    assert client.predict(run, api_name="/train_resume") == run
    status, _ = _wait(client, run, lambda s, g: s["step"] > stopped["step"], f"a step past {stopped['step']} after resuming")
    client.predict(run, api_name="/train_stop")
    png, meta = client.predict(run, "0-3", 1.0, api_name="/generate")
    assert meta["seeds"] == [0, 1, 2, 3] and meta["tile_size"] == [16, 16]
