"""Training runs started from the app, and a watcher for any run directory (the app's or one written from the CLI).

Runs are `python -m dcgan train --config runs/<name>/config.json` subprocesses writing to `runs/<name>`: the app
builds a RunConfig (so the library validates every value before anything starts) and the UI and the trainer share
files, never memory, so the web server stays responsive and a run survives a page reload. Nothing here imports gradio.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dcgan import cli, rundir
from dcgan.checkpoints import GENERATOR_FILE, STATE_FILE
from dcgan.config import D_NORMS, SWITCHES, DataConfig, ModelConfig, RunConfig, TrainConfig, parse_augment
from dcgan.datasets import DATASETS
from dcgan.errors import ConfigError, DCGANError, brief
from dcgan.images import write_gif

from .validation import check_choice, check_float, check_int

LOG_FILE = "train.log"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
MAX_TIMELAPSE_FRAMES = 120
ACTIVE_STATES = ("starting", "running", "stopping")  # a run in these states may still write new steps and grids
MAX_R1_GAMMA = 1000.0  # far above any useful weight (the shipped face D's squared input gradient is ~38,000)
MAX_ASKED_MINUTES = 1e6  # a budget above the app's cap is capped; past this (or NaN, inf, negative) it is refused


class TrainingError(DCGANError):
    """A training request the app refuses (limits, unknown run, bad settings)."""


@dataclass
class TrainSettings:
    """What the Train tab asks for; every field is checked by TrainingManager.check."""
    dataset: str = "mnist"
    arch: str = "dcgan"
    image_size: int = 32
    width: int = 32            # ngf = ndf
    batch_size: int = 64
    minutes: float | None = 5.0
    epochs: float | None = None
    max_steps: int | None = None
    folder: str = ""           # only for dataset "folder", and only when the app allows folder paths
    sample_every: int = 50
    eval_every: int = 0
    # for small data sets (each a departure from the paper, off by default; README "Training")
    augment: str = ""          # DiffAugment policy, e.g. "translation,cutout" ("": off)
    flip: str = "auto"         # random left-right flips of the real images: auto (faces and folders), on, off
    d_norm: str = "batch"      # D's normalisation: batch (the paper) or spectral
    r1_gamma: float = 0.0      # R1 penalty on real images (0: off)


@dataclass
class TrainingLimits:
    """What the app allows; every TrainSettings field is checked against these on the server (the README lists them)."""
    max_concurrent: int = 1       # training runs at once per app
    max_minutes: float = 120.0    # cap on any run's wall-clock budget (lower it on a public Space)
    allow_folders: bool = True    # False in public mode: users may not name folders on the server
    public: bool = False          # only the session that started a run may stop or resume it; errors carry no server paths
    max_batch_size: int = 512
    max_image_size: int = 128
    max_width: int = 128          # ngf = ndf
    max_epochs: float = 10_000.0
    max_steps: int = 10_000_000
    max_every: int = 1_000_000    # preview and evaluation intervals, in steps


class TrainingManager:
    def __init__(self, runs_dir: Path, data_root: Path, limits: TrainingLimits | None = None):
        self.runs_dir = Path(runs_dir)
        self.data_root = Path(data_root)
        self.limits = limits or TrainingLimits()
        self._procs: dict[str, subprocess.Popen] = {}
        self._attached: dict[str, Path] = {}
        self._owners: dict[str, str] = {}  # run name -> the session that started it here
        self._stopping: set[str] = set()   # runs sent SIGTERM that are still saving their checkpoint
        self._lock = threading.Lock()

    # -- what can be trained ---------------------------------------------------------------------------------

    def available_datasets(self) -> list[str]:
        """Data sets present offline under the data root (plus "folder" where folder paths are allowed)."""
        found = [name for name, spec in DATASETS.items() if spec.is_present(self.data_root)]
        return found + (["folder"] if self.limits.allow_folders else [])

    def check(self, s: TrainSettings) -> RunConfig:
        """Validate settings (values as they arrived: strings, NaN, huge numbers...) against the data and the limits;
        returns the run's config (each value then checked again by dcgan.config)."""
        lim = self.limits
        if s.dataset not in self.available_datasets():
            raise TrainingError(f"dataset {brief(s.dataset)} is not available here; choose from {self.available_datasets()}")
        dataset = s.dataset
        try:
            arch = check_choice("arch", s.arch, ("dcgan", "keras"))
            image_size = check_int("image_size", s.image_size, 16, lim.max_image_size)
            width = check_int("width", s.width, 8, lim.max_width)
            batch_size = check_int("batch_size", s.batch_size, 1, lim.max_batch_size)
            minutes = None if _blank(s.minutes) else min(check_float("minutes", s.minutes, 0.01, MAX_ASKED_MINUTES), lim.max_minutes)
            epochs = None if _blank(s.epochs) else check_float("epochs", s.epochs, 0.01, lim.max_epochs)
            max_steps = None if _blank(s.max_steps) else check_int("max_steps", s.max_steps, 1, lim.max_steps)
            sample_every = check_int("sample_every", s.sample_every, 1, lim.max_every)
            eval_every = check_int("eval_every", s.eval_every, 0, lim.max_every)
            augment = ",".join(parse_augment(s.augment))
            flip = check_choice("flip", s.flip, SWITCHES)
            d_norm = check_choice("d_norm", s.d_norm, D_NORMS)
            r1_gamma = check_float("r1_gamma", s.r1_gamma, 0.0, MAX_R1_GAMMA)
        except ConfigError as exc:
            raise TrainingError(str(exc)) from None
        if minutes is None and epochs is None and max_steps is None:
            raise TrainingError("give a budget: minutes, epochs or steps")
        spec = DATASETS[dataset]
        if dataset == "folder":
            folder = Path(s.folder).expanduser() if isinstance(s.folder, str) else None
            if not s.folder or folder is None or not folder.is_dir():
                raise TrainingError(f"folder {brief(s.folder)} is not a folder on this machine")
            root = folder.resolve()
        else:
            root = spec.root_under(self.data_root)
        train = dict(batch_size=batch_size, max_minutes=minutes or lim.max_minutes, epochs=epochs, max_steps=max_steps,
                     sample_every=sample_every, log_every=10, checkpoint_every=max(50, sample_every * 4), eval_every=eval_every,
                     augment=augment, flip=flip, r1_gamma=r1_gamma)
        try:
            model = ModelConfig.from_dict(dict(arch=arch, image_size=image_size, channels=spec.channels, ngf=width, ndf=width,
                                             d_norm=d_norm))
            data = DataConfig.from_dict(dict(dataset=dataset, root=str(root)))
            return RunConfig(model=model, data=data, train=TrainConfig.from_dict(train))
        except ConfigError as exc:
            raise TrainingError(str(exc)) from exc

    def _check_owner(self, name: str, owner: str) -> None:
        """In public mode only the session that started a run may stop or resume it (anyone may watch)."""
        if self.limits.public and not (owner and secrets.compare_digest(owner, self._owners.get(name, ""))):
            raise TrainingError(f"{name} was started by another session: on this public app only the session that "
                                "started a run can stop or resume it; anyone can watch it")

    # -- start, stop, resume ------------------------------------------------------------------------------------

    def running(self) -> list[str]:
        """Runs this manager started that are still training (or still saving after a stop), oldest first."""
        return [name for name, proc in self._procs.items() if proc.poll() is None]

    def _launch(self, run_dir: Path, argv: list[str], cfg: RunConfig | None = None) -> None:
        """Start `python -m dcgan ARGV` logging to run_dir (after writing ``cfg`` as its config.json), if a slot is free."""
        running = self.running()
        if len(running) >= self.limits.max_concurrent:
            raise TrainingError(f"{', '.join(running)} is still training and this app runs {self.limits.max_concurrent} "
                                "run(s) at a time: stop it or wait for it to finish")
        run_dir.mkdir(parents=True, exist_ok=True)
        if cfg is not None:
            rundir.write_config(cfg, run_dir / rundir.CONFIG_FILE)
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) - 1)))  # leave a core for the web server
        with open(run_dir / LOG_FILE, "ab") as log_file:
            self._procs[run_dir.name] = subprocess.Popen([sys.executable, "-m", "dcgan", *argv], stdout=log_file,
                                                 stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._stopping.discard(run_dir.name)

    def start(self, settings: TrainSettings, owner: str = "") -> str:
        """Start a run in a subprocess; returns its name (a folder under runs_dir). ``owner``: the session starting it."""
        cfg = self.check(settings)
        with self._lock:
            run_dir = rundir.next_run_dir(self.runs_dir, f"{cfg.data.dataset}-{cfg.model.image_size}")
            self._launch(run_dir, cli.train_argv(run_dir / rundir.CONFIG_FILE, run_dir), cfg)
            self._owners[run_dir.name] = owner
        return run_dir.name

    def resume(self, name: str, minutes: Any = None, owner: str = "") -> str:
        """Continue a stopped or finished run exactly where its last checkpoint left it, for up to ``minutes``."""
        run_dir = self.run_dir(name, own=True)
        self._check_owner(name, owner)
        if not (run_dir / STATE_FILE).exists():
            raise TrainingError(f"{name} has no checkpoint to resume from yet")
        try:
            asked = self.limits.max_minutes if _blank(minutes) else check_float("minutes", minutes, 0.01, MAX_ASKED_MINUTES)
            minutes = min(asked, self.limits.max_minutes)
        except ConfigError as exc:
            raise TrainingError(str(exc)) from None
        with self._lock:
            if name in self.running():
                raise TrainingError(f"{name} is already training")
            try:
                argv = cli.resume_argv(run_dir, {"max_minutes": minutes})
            except ConfigError as exc:
                raise TrainingError(str(exc)) from exc
            self._launch(run_dir, argv)
        return name

    def request_stop(self, name: str, owner: str = "") -> dict[str, Any]:
        """Ask the trainer to checkpoint and exit (SIGTERM) without waiting: it stops after the step it is in, and
        status says "stopping" until its checkpoint is saved and the process has exited."""
        self.run_dir(name, own=True)
        self._check_owner(name, owner)
        proc = self._procs.get(name)
        if proc is None or proc.poll() is not None:
            raise TrainingError(f"{name} is not training")
        if name not in self._stopping:  # once: a second SIGTERM could land after the trainer restored the default handler
            proc.send_signal(signal.SIGTERM)
            self._stopping.add(name)
        return self.status(name)

    def stop(self, name: str, owner: str = "", timeout: float = 120.0) -> dict[str, Any]:
        """Ask the trainer to checkpoint and exit (SIGTERM), wait for it, and return the final status."""
        self.request_stop(name, owner)
        proc = self._procs[name]
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the trainer ignored the request: the last checkpoint stays valid
            proc.wait()
        return self.status(name)

    def close(self) -> None:
        """Stop every run this manager started (used when the app shuts down)."""
        for name in self.running():
            self.stop(name, self._owners.get(name, ""))

    # -- watching ------------------------------------------------------------------------------------------------

    def attach(self, path: str | Path) -> str:
        """Watch, read-only, a run directory written by `dcgan train` elsewhere (e.g. a GPU box's shared folder)."""
        if not self.limits.allow_folders:
            raise TrainingError("this app does not accept folder paths (public mode)")
        run_dir = Path(path).expanduser().resolve()
        if not (run_dir / rundir.CONFIG_FILE).exists() and not (run_dir / rundir.METRICS_FILE).exists():
            raise TrainingError(f"{run_dir} is not a run directory (no config.json or metrics.jsonl)")
        name = f"attached-{run_dir.name}"
        self._attached[name] = run_dir
        return name

    def run_dir(self, name: str, *, own: bool = False) -> Path:
        """The folder of a run by name; names are never paths, so nothing outside runs_dir can be reached."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise TrainingError(f"{brief(name)} is not a run name")
        if name in self._attached:
            if own:
                raise TrainingError(f"{name} is attached read-only; start, stop and resume it where it was started")
            return self._attached[name]
        run_dir = self.runs_dir / name
        if not run_dir.is_dir():
            raise TrainingError(f"no run named {name!r}")
        return run_dir

    def list_runs(self) -> list[str]:
        own = sorted(p.name for p in self.runs_dir.glob("*") if p.is_dir() and
                     NAME_PATTERN.fullmatch(p.name)) if self.runs_dir.is_dir() else []
        return own + sorted(self._attached)

    def status(self, name: str) -> dict[str, Any]:
        run_dir = self.run_dir(name)
        status = watch_run(run_dir)
        proc = self._procs.get(name)
        if proc is not None:
            code = proc.poll()
            if code is None:
                status["state"] = "stopping" if name in self._stopping else "running"
            elif code != 0 or status["state"] == "running":
                status.update(state="failed", exit_code=code, log_tail=log_tail(run_dir))
        status["name"] = name
        if self.limits.public:  # callers get the error itself; paths and tracebacks stay in the server's log
            status["log_tail"] = plain_error(status["log_tail"])
            status["error"] = plain_error(status["error"] or "") or None
        return status


def optional_number(name: str, text: Any) -> float | None:
    """A number typed in a text box that may be left blank (None); the range is checked later, with the other settings."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        raise TrainingError(f"{name}: {brief(text)} is not a number (leave it blank for no limit)") from None


def _blank(value: Any) -> bool:
    """An optional number left empty (None, '', or 0 from a cleared number box)."""
    return value is None or value == "" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0)


PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\":]+){2,}")  # an absolute path of two or more parts


def plain_error(text: str) -> str:
    """The last line of a log tail or error that says what went wrong (not a traceback frame), with every path
    shortened to its last part: what a public app may tell a caller."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("File ", "Traceback", "^", "~")) and not line.startswith(" ")]
    last = useful[-1] if useful else ""
    return PATH.sub(lambda m: m.group(0).replace("\\", "/").rsplit("/", 1)[-1], last)[:500]


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def log_tail(run_dir: Path, lines: int = 20) -> str:
    try:
        text = (Path(run_dir) / LOG_FILE).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


def _eta_seconds(config: dict[str, Any], status: dict[str, Any], last: dict[str, Any]) -> float | None:
    train = config.get("train", {})
    etas = []
    if last and last.get("img_per_s") and last.get("epoch"):
        steps_per_epoch = last["step"] / last["epoch"]
        targets = [train.get("max_steps")] + [train["epochs"] * steps_per_epoch if train.get("epochs") else None]
        targets = [t for t in targets if t]
        if targets:
            steps_per_s = last["img_per_s"] / max(1, train.get("batch_size", 1))
            etas.append((min(targets) - last["step"]) / max(steps_per_s, 1e-9))
    if train.get("max_minutes") and status.get("started"):
        etas.append(status["started"] + train["max_minutes"] * 60 - time.time())
    return max(0.0, min(etas)) if etas else None


def watch_run(run_dir: Path) -> dict[str, Any]:
    """Everything the Train tab shows about a run, from its files alone; tolerates files being written right now."""
    run_dir = Path(run_dir)
    records = rundir.read_jsonl(run_dir / rundir.METRICS_FILE)
    losses = [r for r in records if "lossD" in r]
    evals = [r for r in records if "eval" in r]
    last = losses[-1] if losses else {}
    samples = rundir.list_samples(run_dir)
    file_status = rundir.read_status(run_dir)
    try:
        import json

        config = json.loads((run_dir / rundir.CONFIG_FILE).read_text())
    except (OSError, ValueError):
        config = {}
    state = file_status.get("state", "starting" if not losses else "unknown")
    if state == "running" and file_status.get("pid") and not _pid_alive(file_status["pid"]):
        state = "dead"
    warnings = list(dict.fromkeys(w for r in records[-5:] for w in r.get("warnings", [])))
    if state == "dead":
        warnings.append(f"the training process ({file_status.get('pid')}) is gone without finishing; "
                        "resume continues from the last checkpoint")
    return {
        "state": state, "run_dir": str(run_dir), "step": last.get("step", 0), "epoch": last.get("epoch", 0.0),
        "img_per_s": last.get("img_per_s"), "images_seen": last.get("images_seen", 0),
        "eta_s": _eta_seconds(config, file_status, last) if state in ("running", "starting") else None,
        "latest_grid": str(samples[-1][1]) if samples else None, "samples": [(s, str(p)) for s, p in samples],
        "losses": losses, "last_metrics": evals[-1]["eval"] if evals else None, "warnings": warnings,
        "has_generator": (run_dir / GENERATOR_FILE).exists(), "error": file_status.get("error"),
        "log_tail": log_tail(run_dir) if state in ("failed", "dead") else "",
    }


def serve_copy(path: Path, out_path: Path) -> Path:
    """Copy a run's file (a preview grid) to ``out_path``, a name of its own, and return it: the web server hands out
    the copy, never a file a run may replace while it is being sent (a resumed run rewrites the grids after its
    last checkpoint)."""
    shutil.copyfile(path, out_path)
    return Path(out_path)


def timelapse_gif(run_dir: Path, out_path: Path, *, fps: float = 8.0) -> Path:
    """A GIF of every preview grid saved so far (evenly thinned to MAX_TIMELAPSE_FRAMES)."""
    samples = rundir.list_samples(run_dir)
    if not samples:
        raise TrainingError(f"{Path(run_dir).name} has no preview grids yet")
    picks = np.unique(np.linspace(0, len(samples) - 1, min(len(samples), MAX_TIMELAPSE_FRAMES)).round().astype(int))
    frames = []
    for i in picks:
        try:
            with Image.open(samples[i][1]) as img:
                frames.append(np.asarray(img.convert("RGB")))
        except OSError:
            continue  # a grid being written right now
    if not frames:
        raise TrainingError("no readable preview grids yet")
    size = frames[-1].shape
    write_gif(np.stack([f for f in frames if f.shape == size]), Path(out_path), fps=fps)
    return Path(out_path)
