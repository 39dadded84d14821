"""Shared fixtures: tiny configs and checkpoints trained for a few steps on fake data, and the offline data root."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest
import torch

from dcgan.config import DataConfig, ModelConfig, RunConfig, TrainConfig

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SLOW_TIMEOUT = 600.0  # seconds: generous on purpose, a slow or busy CPU must only make a test slower, never fail it
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str, timeout: float = SLOW_TIMEOUT, interval: float = 0.2) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail naming ``what`` never happened.

    Tests wait on events (a file written, a step logged), never on the clock: ``timeout`` only bounds a hang.
    ``predicate`` may raise (e.g. an AssertionError when the process it watches died) to stop waiting early.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s, but {what} never happened")
        time.sleep(interval)


def shared_data_or_skip(name: str) -> Path:
    """Path of a real data set under ../shared/data, or skip the test when the folder is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Decoded-data caches and Gradio temp files go to a per-session temp folder, never the user's home."""
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path_factory.getbasetemp() / "dcgan-cache"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.getbasetemp() / "gradio-tmp"))
    torch.set_num_threads(min(2, torch.get_num_threads()))


def make_tiny_cfg(**train) -> RunConfig:
    return RunConfig(
        model=ModelConfig(arch="dcgan", image_size=16, channels=3, z_dim=8, ngf=8, ndf=8),
        data=DataConfig(dataset="fake", max_images=128),
        train=TrainConfig(**{"batch_size": 16, "max_steps": 4, "log_every": 1, "sample_every": 2, "checkpoint_every": 2, **train}),
    )


@pytest.fixture
def tiny_cfg() -> RunConfig:
    return make_tiny_cfg()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A run directory trained for two steps on fake data (generator.safetensors, state.pt, samples/)."""
    from dcgan.trainer import fit

    run_dir = tmp_path_factory.mktemp("tiny-run")
    fit(make_tiny_cfg(max_steps=2), run_dir, progress=False)
    return run_dir
