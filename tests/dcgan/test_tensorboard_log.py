"""`dcgan train --tensorboard`: the events read back with tensorboard's own EventAccumulator match metrics.jsonl and
the preview PNGs; a resumed run hides what a killed one wrote after its checkpoint."""
import io
import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from dcgan import rundir  # noqa: E402
from dcgan.cli import main  # noqa: E402
from dcgan.errors import ConfigError  # noqa: E402
from dcgan.tensorboard_log import TRAIN_TAGS, TensorBoardLog  # noqa: E402
from tests.conftest import shared_data_or_skip  # noqa: E402

TINY = ["train", "--dataset=fake", "--max-images=128", "--image-size=16", "--z-dim=8", "--ngf=8", "--ndf=8", "--batch-size=16",
        "--log-every=1", "--sample-every=2", "--checkpoint-every=2", "--device=cpu"]


def read_events(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def scalars(events: EventAccumulator, tag: str) -> dict[int, float]:
    steps = [e.step for e in events.Scalars(tag)]
    assert len(steps) == len(set(steps)), f"{tag}: a step logged twice: {steps}"
    return {e.step: e.value for e in events.Scalars(tag)}


def train_records(run_dir) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / rundir.METRICS_FILE).read_text().splitlines()) if "lossD" in r]


def test_train_writes_scalars_and_previews_that_match_the_run(tmp_path):
    run = tmp_path / "run"
    assert main([*TINY, "--max-steps=4", "--tensorboard", "--out", str(run)]) == 0
    events = read_events(run / "tensorboard")
    assert set(TRAIN_TAGS.values()) <= set(events.Tags()["scalars"])
    records = train_records(run)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for key, tag in TRAIN_TAGS.items():
        assert scalars(events, tag) == pytest.approx({r["step"]: r[key] for r in records}, rel=1e-6), tag
    previews = events.Images("preview")
    assert [e.step for e in previews] == [0, 2, 4]  # the untrained grid, then every --sample-every
    for event in previews:  # the grid TensorBoard shows is the PNG in samples/, pixel for pixel
        shown = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
        saved = np.asarray(Image.open(rundir.sample_path(run, event.step)).convert("RGB"))
        assert np.array_equal(shown, saved)


def test_tensorboard_dir_can_be_named(tmp_path):
    assert main([*TINY, "--max-steps=1", "--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "run")]) == 0
    assert scalars(read_events(tmp_path / "tb"), "loss/D").keys() == {1}
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_resume_replaces_the_steps_after_the_checkpoint(tmp_path):
    """A run killed at step 4 whose last checkpoint was step 2: the resumed run's steps 3-4 replace the lost ones."""
    run, twin = tmp_path / "run", tmp_path / "twin"
    assert main([*TINY, "--max-steps=4", "--tensorboard", "--out", str(run)]) == 0
    assert main([*TINY, "--max-steps=2", "--out", str(twin)]) == 0  # the same run's state at step 2 (training is deterministic)
    shutil.copyfile(twin / "state.pt", run / "state.pt")
    assert main(["train", "--resume", str(run), "--max-steps=6", "--tensorboard"]) == 0
    records = train_records(run)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert scalars(read_events(run / "tensorboard"), "loss/G") == pytest.approx({r["step"]: r["lossG"] for r in records}, rel=1e-6)


@pytest.mark.slow
def test_eval_every_logs_the_quality_metrics(tmp_path):
    """Real MNIST and its shipped classifier: the in-training metrics and floors of metrics.jsonl, as scalars."""
    data_root = shared_data_or_skip("MNIST")
    run = tmp_path / "run"
    argv = [a for a in TINY if not a.startswith(("--dataset", "--image-size"))]
    assert main([*argv, "--dataset=mnist", f"--data-root={data_root}", "--image-size=32", "--max-steps=2", "--eval-every=2",
                 "--tensorboard", "--out", str(run)]) == 0
    (evaluation,) = [r["eval"] for r in map(json.loads, (run / rundir.METRICS_FILE).read_text().splitlines()) if "eval" in r]
    events = read_events(run / "tensorboard")
    for name in ("fid", "kid", "precision", "recall"):
        assert scalars(events, f"eval/{name}") == pytest.approx({2: evaluation["metrics"][name]}, rel=1e-6)
        assert scalars(events, f"eval_floor/{name}") == pytest.approx({2: evaluation["floor"][name]}, rel=1e-6)


def test_eval_records_become_metric_and_floor_scalars(tmp_path):
    board = TensorBoardLog(tmp_path)
    board.start(0)
    board.record({"step": 50, "eval": {"n": 2000, "metrics": {"fid": 3.5, "recall": 0.7}, "floor": {"fid": 0.2, "recall": 0.8}}})
    board.record({"step": 60, "lossD": 1.0, "warnings": ["mode collapse suspected"]})
    board.close()
    events = read_events(tmp_path)
    assert scalars(events, "eval/fid") == {50: 3.5} and scalars(events, "eval_floor/recall") == pytest.approx({50: 0.8})
    assert scalars(events, "loss/D") == {60: 1.0} and "warnings/text_summary" in events.Tags()["tensors"]


def test_missing_tensorboard_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"pip install 'dcgan-explorer\[tensorboard\]'"):
        TensorBoardLog(tmp_path)
