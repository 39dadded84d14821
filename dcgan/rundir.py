"""Run directories: numbered names, config.json, metrics.jsonl (append-only, tolerant reader), sample grids."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import ConfigError
from .io import atomic_write_bytes

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
GENERATORS_DIR = "generators"  # with --keep-generators: every checkpoint's generator, to pick the best afterwards
STATUS_FILE = "status.json"


def next_run_dir(root: Path, desc: str) -> Path:
    """`root/00012-<desc>`: one more than the highest number already there (StyleGAN-style)."""
    root = Path(root)
    numbers = [int(m.group(1)) for p in root.glob("*") if (m := re.match(r"(\d{5})-", p.name))] if root.is_dir() else []
    return root / f"{max(numbers, default=-1) + 1:05d}-{desc}"


def write_config(cfg: RunConfig, path: Path) -> None:
    """Save a RunConfig as JSON (a run's config.json, or a file to start one with `dcgan train --config`), atomically."""
    atomic_write_bytes((json.dumps(cfg.to_dict(), indent=2) + "\n").encode(), Path(path))


def read_config(path: Path) -> RunConfig:
    """A RunConfig from a JSON file such as a run's config.json; ConfigError naming the file (and any unknown key)."""
    try:
        values = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not a JSON config ({exc})") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a JSON object with model, data and train sections")
    try:
        return RunConfig.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def sample_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / SAMPLES_DIR / f"step-{step:07d}.png"


def kept_generator_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / GENERATORS_DIR / f"step-{step:07d}.safetensors"


def list_samples(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every preview grid in a run, oldest first."""
    out = []
    for path in (Path(run_dir) / SAMPLES_DIR).glob("step-*.png"):
        match = re.fullmatch(r"step-(\d+)\.png", path.name)
        if match:
            out.append((int(match.group(1)), path))
    return sorted(out)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete JSON lines; a missing file or a half-written last line (a run still writing) is skipped."""
    try:
        text = Path(path).read_text()
    except (FileNotFoundError, IsADirectoryError):
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def truncate_jsonl_after(path: Path, step: int) -> None:
    """Drop records logged after ``step`` (a resumed run replays them exactly)."""
    path = Path(path)
    if path.exists():
        kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def write_status(run_dir: Path, **fields: Any) -> None:
    """Atomically record the run's state (running / finished / stopped / failed) for watchers such as the app."""
    atomic_write_bytes(json.dumps(fields).encode(), Path(run_dir) / STATUS_FILE)


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status.json, or {} when missing or unreadable (a run being set up)."""
    try:
        status = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return status if isinstance(status, dict) else {}
