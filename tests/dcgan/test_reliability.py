"""Faults: SIGKILL at random moments (checkpoint writes included), unwritable output folders."""
import contextlib
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from dcgan.checkpoints import load_generator, load_state
from dcgan.cli import main
from tests.conftest import SLOW_TIMEOUT, wait_for

TINY = ["--dataset", "fake", "--max-images", "256", "--image-size", "16", "--z-dim", "8", "--ngf", "8", "--ndf", "8",
        "--batch-size", "16", "--log-every", "1", "--sample-every", "1", "--checkpoint-every", "1"]


def _generator_id(run) -> tuple[int, int] | None:
    """(inode, mtime) of generator.safetensors, None before the first checkpoint. Each checkpoint writes state.pt and
    then the generator, each by atomic rename, so a new value means a new complete checkpoint of both files."""
    try:
        stat = (run / "generator.safetensors").stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


@pytest.mark.slow
def test_sigkill_twenty_times_always_resumes_from_a_complete_checkpoint(tmp_path):
    run = tmp_path / "run"
    rng = random.Random(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last_step = 0
    for attempt in range(20):
        args = ["--resume", str(run)] if (run / "state.pt").exists() else [*TINY, "--out", str(run)]
        before = _generator_id(run)
        log_path = tmp_path / f"attempt-{attempt}.log"  # a file, not a pipe: a full pipe would stall the trainer
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "dcgan", "train", *args, "--max-steps", "100000"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)

        def wrote_a_checkpoint() -> bool:
            assert proc.poll() is None, f"attempt {attempt}: trainer exited {proc.returncode}: {log_path.read_text()[-2000:]}"
            return _generator_id(run) not in (None, before)

        try:  # kill only once this process wrote a complete checkpoint, then at a random moment of the next writes
            wait_for(wrote_a_checkpoint, f"attempt {attempt}: the trainer writing a checkpoint to {run}", interval=0.05)
            time.sleep(rng.uniform(0.0, 1.2))  # checkpoints are written every step: many kills land inside a write
        finally:
            with contextlib.suppress(ProcessLookupError):  # already gone when the wait failed on its exit
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        state = load_state(run)  # never a half-written file
        G, meta = load_generator(run)
        assert state["step"] > last_step  # every attempt got at least one checkpoint further
        assert 0 < meta.info["step"] <= state["step"]  # state.pt is written first, then the generator
        last_step = state["step"]
    assert last_step > 0
    assert main(["train", "--resume", str(run), "--max-steps", str(last_step + 2)]) == 0
    assert load_state(run)["step"] == last_step + 2
    assert not list(run.glob(".*.tmp"))


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    if os.geteuid() == 0:
        target = "/proc/dcgan-run"  # root ignores permission bits; /proc refuses everyone
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "run")
    assert main(["train", *TINY, "--max-steps", "2", "--out", target]) == 2
    err = capsys.readouterr().err
    assert "dcgan-run" in err or "run" in err
    assert err.startswith("error:")


@pytest.mark.slow
def test_full_disk_is_a_clear_error_and_leaves_nothing_half_written(tmp_path):
    """RLIMIT_FSIZE makes every write past 64 kB fail with EFBIG, as a full disk fails with ENOSPC."""
    import resource

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dcgan", "train", *TINY[:-6], "--ngf", "64", "--ndf", "64", "--max-steps", "3",
           "--sample-every", "100", "--checkpoint-every", "1", "--out", str(run)]
    result = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            preexec_fn=limit_file_size, timeout=SLOW_TIMEOUT)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error:" in result.stderr and "File too large" in result.stderr
    assert not list(run.glob(".*.tmp"))
    assert not (run / "state.pt").exists() and not (run / "generator.safetensors").exists()
