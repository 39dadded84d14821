"""CheckpointRegistry: scanning, name resolution (no paths), LRU cache, reloads."""
from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from dcgan.checkpoints import GENERATOR_FILE
from dcgan.errors import CheckpointError
from explorer.registry import CheckpointRegistry, scan_dirs


def test_scan_finds_run_dirs_subdirs_and_loose_files(checkpoints_dir, tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy2(checkpoints_dir / "tiny" / GENERATOR_FILE, loose / "mine.safetensors")
    (loose / "mine.directions.safetensors").write_bytes(b"not a generator")  # directions caches are never models
    (loose / "notes.safetensors").write_bytes(b"\x00" * 16)
    (loose / "other").mkdir()  # a folder without a generator
    found = scan_dirs([checkpoints_dir, loose, checkpoints_dir / "tiny"])
    assert list(found) == ["tiny", "tiny-grey", "mine"]  # checkpoints_dir/tiny itself is not listed twice
    assert found["tiny"].card_path is not None and found["tiny-grey"].card_path is None


def test_repeated_names_get_suffixes(checkpoints_dir, tmp_path):
    other = tmp_path / "elsewhere" / "tiny"
    other.mkdir(parents=True)
    shutil.copy2(checkpoints_dir / "tiny" / GENERATOR_FILE, other / GENERATOR_FILE)
    assert list(scan_dirs([checkpoints_dir, tmp_path / "elsewhere"])) == ["tiny", "tiny-grey", "tiny-2"]


@pytest.mark.parametrize("name", ["nope", "../tiny", "/etc/passwd", str("tiny/" + GENERATOR_FILE), "", None, 3])
def test_names_resolve_only_to_scanned_models(registry, name):
    with pytest.raises(CheckpointError, match="unknown"):
        registry.get(name)


def test_missing_folders_are_fine(tmp_path):
    registry = CheckpointRegistry([tmp_path / "absent"])
    assert registry.names() == []
    with pytest.raises(CheckpointError, match="none; add a folder"):
        registry.get("x")


def test_lru_keeps_capacity_models(checkpoints_dir):
    registry = CheckpointRegistry([checkpoints_dir], capacity=1)
    first = registry.get("tiny")
    assert registry.get("tiny") is first  # cached
    registry.get("tiny-grey")
    assert registry.cached_names() == ["tiny-grey"]
    assert registry.get("tiny") is not first  # evicted, loaded again


def test_describe_reads_metadata_without_loading(registry):
    meta = registry.describe("tiny")
    assert (meta.model.image_size, meta.model.z_dim, meta.info["dataset"]) == (16, 8, "fake")
    assert registry.cached_names() == []


def test_reload_when_the_file_changes(checkpoints_dir, tmp_path):
    shutil.copytree(checkpoints_dir / "tiny", tmp_path / "run")
    registry = CheckpointRegistry([tmp_path / "run"])
    first = registry.get("run")
    path = tmp_path / "run" / GENERATOR_FILE
    os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns + 10**9))  # a trainer rewrote it
    assert registry.get("run") is not first


def test_models_load_in_eval_mode_without_grad(registry):
    model = registry.get("tiny")
    assert not model.G.training
    assert not any(p.requires_grad for p in model.G.parameters())


def test_concurrent_gets_share_one_model(registry):
    results, errors = [], []

    def get():
        try:
            results.append(registry.get("tiny"))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len({id(m) for m in results}) == 1


def test_model_card_is_the_readme(registry):
    assert "16 px test generator" in registry.card("tiny")
    assert registry.card("tiny-grey") == ""
