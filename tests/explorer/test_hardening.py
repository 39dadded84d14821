"""Attacks on a public app (``python app.py --public``), each reproduced over gradio_client or raw REST: every one
meets a clear refusal, and the app stays up. The upload-side attacks are in test_upload.py and test_quota.py."""
from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from tests.conftest import SHARED_DATA, shared_data_or_skip, wait_for

from .conftest import free_port

START_DEFAULTS = ["mnist", 16, "dcgan", 8, 16, 1.0, None, None, 5, 0, "", "auto", "batch", 0.0]  # train_start's parameters, in order


@pytest.fixture(scope="module")
def public_app(tmp_path_factory, gradio_env, checkpoints_dir):
    from gradio_client import Client

    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.training import TrainingLimits, TrainingManager
    from explorer.ui.app import build_app, launch_options, security_options

    shared_data_or_skip("MNIST")
    runs = tmp_path_factory.mktemp("public-runs")
    manager = TrainingManager(runs, SHARED_DATA, TrainingLimits(max_minutes=10, allow_folders=False, public=True))
    catalog = Catalog(CheckpointRegistry([checkpoints_dir, runs]))
    out = OutputDir(tmp_path_factory.mktemp("public-out"))
    demo = build_app(catalog, out=out, training=manager)
    demo.queue(default_concurrency_limit=2, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            **security_options(out), **launch_options())
    downloads = tmp_path_factory.mktemp("public-downloads")
    owner, other = (Client(url, verbose=False, download_files=str(downloads)) for _ in range(2))
    try:
        yield url, owner, other, manager, catalog
    finally:
        manager.close()
        owner.close()
        other.close()
        demo.close()


def raw_call(url: str, api: str, data: list) -> str:
    """POST the JSON gradio_client would never send (NaN, 5,000-digit numbers) and read the event stream."""
    body = json.dumps({"data": data}).encode()  # json.dumps writes NaN and Infinity as JS literals
    request = urllib.request.Request(f"{url}gradio_api/call/{api}", data=body, headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=600).read())["event_id"]
    return urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event_id}", timeout=600).read().decode()


def refusal(stream: str) -> str:
    """The message of an error event (it must be one, and must say something)."""
    assert "event: error" in stream, stream[-500:]
    data = json.loads(stream.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0])
    message = data.get("error") if isinstance(data, dict) else data
    assert isinstance(message, str) and message, stream[-500:]  # {"error": null} would be a generic failure
    return message


@pytest.mark.parametrize("position, value, match", [
    (5, float("nan"), "minutes"), (5, -1, "minutes"), (5, "abc", "minutes"), (5, float("inf"), "minutes"),
    (3, 4096, "width"), (1, float("nan"), "image_size"), (8, float("nan"), "sample_every"),
    (6, 1e308, "epochs"), (7, 2**64, "max_steps"), (4, 10**6, "batch_size"), (0, "x" * 1_000_000, "not available"),
    (10, "blur," * 100_000, "augment"), (11, "sideways", "flip"), (12, "layer", "d_norm"), (13, float("nan"), "r1_gamma"),
    (13, 1e300, "r1_gamma"),
])
def test_training_settings_are_bounded_on_the_server(public_app, position, value, match):
    url, owner, _, manager, _ = public_app
    data = list(START_DEFAULTS)
    data[position] = value
    message = refusal(raw_call(url, "train_start", data))
    assert match in message and len(message) < 400
    assert manager.running() == []  # nothing was launched
    assert owner.predict(api_name="/models")[0]["name"] == "tiny"


def test_a_seed_with_thousands_of_digits_is_refused_in_words(public_app):
    url, owner, _, _, _ = public_app
    for api, data in (("generate", ["tiny", "9" * 5000, 1.0]), ("edit", ["tiny", "9" * 5000, {}, 1.0, []])):
        message = refusal(raw_call(url, api, data))
        assert "seed" in message and len(message) < 400, message
    assert owner.predict("tiny", "0-3", api_name="/generate")[1]["seeds"] == [0, 1, 2, 3]


@pytest.mark.slow
def test_only_the_session_that_started_a_run_may_stop_or_resume_it(public_app):
    from gradio_client.exceptions import AppError

    url, owner, other, manager, _ = public_app
    run = owner.predict(*START_DEFAULTS[:5], 10.0, api_name="/train_start")
    try:
        status, _ = other.predict(run, api_name="/train_status")  # anyone may watch
        assert status["name"] == run
        for attempt in (lambda: other.predict(run, api_name="/train_stop"), lambda: other.predict(run, 5.0, api_name="/train_resume")):
            with pytest.raises(AppError, match="started by another session"):
                attempt()
        assert manager.status(run)["state"] in ("starting", "running")
        wait_for(lambda: manager.status(run)["step"] > 0, f"run {run} logging its first steps")  # so a stop can checkpoint
        message = refusal(raw_call(url, "train_resume", [run, float("nan")]))  # the raw-REST attack on the owner's run
        assert "another session" in message or "minutes" in message
    finally:
        stopped = owner.predict(run, api_name="/train_stop")
    assert stopped["state"] in ("stopped", "finished")
    nan_resume = refusal(raw_call(url, "train_resume", [run, float("nan")]))  # even for the owner's own run, NaN is no cap
    assert "another session" in nan_resume or "minutes" in nan_resume
    assert manager.running() == []


def test_public_status_carries_no_paths_or_tracebacks(public_app, tmp_path):
    _, _, _, manager, _ = public_app
    run_dir = manager.runs_dir / "00099-mnist-16"
    run_dir.mkdir()
    (run_dir / "train.log").write_text(
        "Traceback (most recent call last):\n"
        f'  File "{shutil.which("python")}", line 1, in <module>\n'
        f'  File "/opt/venv/lib/python3.11/site-packages/dcgan/trainer.py", line 500, in fit\n'
        f"dcgan.errors.CheckpointError: {run_dir}/state.pt: write failed (No space left on device)\n")
    (run_dir / "status.json").write_text(json.dumps({"state": "running", "pid": 2**22 + 7, "error": f"{run_dir}/x: bad"}))
    status = manager.status(run_dir.name)
    assert status["state"] == "dead"
    assert status["log_tail"] == "dcgan.errors.CheckpointError: state.pt: write failed (No space left on device)"
    assert status["error"] == "x: bad" and "/" not in status["error"]


def test_an_upload_claiming_a_face_data_set_starts_no_background_job(public_app, checkpoints_dir, tmp_path):
    """Each upload once queued a 5,000-sample classifier job outside every queue; now uploads get SeFa/PCA only."""
    from gradio_client import handle_file

    from dcgan.checkpoints import load_generator, save_generator

    _, owner, _, _, catalog = public_app
    G, meta = load_generator(checkpoints_dir / "tiny")
    save_generator(G, tmp_path / "claims-celeba.safetensors", model=meta.model, info={"dataset": "celeba"})
    submitted = []
    real_submit = catalog.worker.submit
    catalog.worker.submit = lambda name, job: submitted.append(name) or real_submit(name, job)
    try:
        name = owner.predict(handle_file(str(tmp_path / "claims-celeba.safetensors")), api_name="/upload")
        names = owner.predict(name, api_name="/directions")
    finally:
        catalog.worker.submit = real_submit
    assert submitted == [] and names and all(n.startswith(("sefa-", "pca-")) for n in names)
