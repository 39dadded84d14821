"""explorer.derived: per-model state (directions computed lazily, labelled ones on the background worker), the
classifier, training data; state is dropped with the model it was derived from."""
from __future__ import annotations

import os
import shutil
import threading

import pytest
import torch

from dcgan.checkpoints import GENERATOR_FILE, load_generator, save_generator
from dcgan.errors import DatasetError
from explorer.derived import BackgroundWorker, Catalog, Once
from explorer.registry import CheckpointRegistry
from tests.conftest import SLOW_TIMEOUT

from .conftest import StubClassifier


def test_directions_are_lazy_and_cached_beside_the_checkpoint(checkpoints_dir, tmp_path):
    shutil.copytree(checkpoints_dir / "tiny", tmp_path / "run")
    catalog = Catalog(CheckpointRegistry([tmp_path / "run"]))
    assert catalog.state("run").directions is None  # nothing computed on load
    names = [d.name for d in catalog.directions("run")]
    assert names[:2] == ["sefa-0", "sefa-1"] and "pca-0" in names and len(names) >= 8
    assert (tmp_path / "run" / "directions.safetensors").is_file()
    again = Catalog(CheckpointRegistry([tmp_path / "run"]))
    assert [d.name for d in again.directions("run")] == names
    assert torch.equal(again.directions("run")[0].vector, catalog.directions("run")[0].vector)


def test_labelled_directions_arrive_in_the_background(checkpoints_dir, tmp_path, monkeypatch):
    shutil.copytree(checkpoints_dir / "tiny", tmp_path / "run")
    catalog = Catalog(CheckpointRegistry([tmp_path / "run"]))
    monkeypatch.setattr(catalog, "classifier", lambda state: StubClassifier())
    quick = [d.name for d in catalog.directions("run")]
    assert "Smiling" not in quick and all(n.startswith(("sefa", "pca")) for n in quick)
    full = [d.name for d in catalog.directions("run", wait=True, timeout=SLOW_TIMEOUT)]
    assert {"Smiling", "Male"} <= set(full), f"the labelled directions never arrived: {catalog.directions_status('run')!r}"
    assert catalog.directions_status("run") == ""


def test_read_only_folders_only_cost_recomputation(checkpoints_dir, tmp_path):
    shutil.copytree(checkpoints_dir / "tiny", tmp_path / "ro")
    os.chmod(tmp_path / "ro", 0o555)
    try:
        catalog = Catalog(CheckpointRegistry([tmp_path / "ro"]))
        assert catalog.directions("ro")
    finally:
        os.chmod(tmp_path / "ro", 0o755)


def test_training_data_from_the_run_config(catalog):
    data = catalog.training_data(catalog.state("tiny"))
    assert data.images.shape[1:] == (3, 16, 16) and len(data) == 128  # the run's max_images


def test_missing_training_data_says_what_to_do(checkpoints_dir, tmp_path):
    (tmp_path / "celeb").mkdir()
    G, meta = load_generator(checkpoints_dir / "tiny")
    save_generator(G, tmp_path / "celeb" / GENERATOR_FILE, model=meta.model, info={"dataset": "celeba"})
    (tmp_path / "celeb" / "config.json").write_text('{"data": {"dataset": "celeba", "root": "%s"}}' % (tmp_path / "nowhere"))
    catalog = Catalog(CheckpointRegistry([tmp_path / "celeb"]), data_roots=[tmp_path / "empty"])
    with pytest.raises(DatasetError, match="--data-root") as caught:
        catalog.training_data(catalog.state("celeb"))
    message = str(caught.value)  # where it looked, each place with why it did not do
    assert f"looked in: {tmp_path / 'nowhere'} (no such folder)" in message
    assert f"{tmp_path / 'empty' / 'celeba10k'} (no such folder)" in message and "names no data set" not in message


def test_missing_data_root_is_said_plainly(checkpoints_dir, tmp_path):
    (tmp_path / "celeb").mkdir()
    G, meta = load_generator(checkpoints_dir / "tiny")
    save_generator(G, tmp_path / "celeb" / GENERATOR_FILE, model=meta.model, info={"dataset": "celeba"})
    catalog = Catalog(CheckpointRegistry([tmp_path / "celeb"]))
    with pytest.raises(DatasetError, match=r"'celeba'.*no data root to look in \(no --data-root"):
        catalog.training_data(catalog.state("celeb"))


def write_faces(folder, count: int = 3) -> None:
    """A tiny CelebA-shaped folder: aligned-face JPEGs and the attribute file that marks it present."""
    from PIL import Image

    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(count)]
    for i, name in enumerate(names):
        Image.new("RGB", (178, 218), (40 * i, 100, 200 - 40 * i)).save(folder / "img_align_celeba" / name)
    rows = "\n".join(f"{n} {1 if i % 2 else -1} 1" for i, n in enumerate(names))
    (folder / "list_attr_celeba.txt").write_text(f"{count}\nSmiling Male\n{rows}\n")


def test_state_goes_with_the_loaded_model(checkpoints_dir, tmp_path):
    shutil.copytree(checkpoints_dir / "tiny", tmp_path / "run")
    catalog = Catalog(CheckpointRegistry([tmp_path / "run"]))
    first = catalog.state("run")
    assert catalog.state("run") is first
    path = tmp_path / "run" / GENERATOR_FILE
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a trainer rewrote it
    fresh = catalog.state("run")
    assert fresh is not first and fresh.model is catalog.registry.get("run") and fresh.directions is None


def test_once_computes_once_and_forgets_failures():
    once: Once[int] = Once()
    calls = []

    def fail():
        calls.append("fail")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        once.get(fail)
    results = []
    threads = [threading.Thread(target=lambda: results.append(once.get(lambda: calls.append("ok") or 7))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [7] * 8 and calls == ["fail", "ok"]


def test_background_worker_runs_jobs_in_order_and_refuses_past_its_queue():
    worker = BackgroundWorker(max_queued=2)
    busy, gate, finished, ran = threading.Event(), threading.Event(), threading.Event(), []
    assert worker.submit("blocker", lambda: busy.set() or gate.wait(60))
    assert busy.wait(60)  # the worker holds the blocker; its queue is empty
    assert worker.submit("a", lambda: ran.append("a"))
    assert worker.submit("b", lambda: ran.append("b") or finished.set())
    assert not worker.submit("c", lambda: ran.append("c"))  # two waiting: the third is refused, not queued
    gate.set()
    assert finished.wait(60)
    assert ran == ["a", "b"]


def test_labelled_directions_that_fail_leave_the_quick_ones_and_say_why(checkpoints_dir, tmp_path, monkeypatch):
    from dcgan import directions as dirs

    shutil.copytree(checkpoints_dir / "tiny", tmp_path / "run")
    catalog = Catalog(CheckpointRegistry([tmp_path / "run"]))
    monkeypatch.setattr(catalog, "classifier", lambda state: StubClassifier())

    def broken(G, classifier):
        raise RuntimeError("classifier exploded")

    monkeypatch.setattr(dirs, "labelled_directions", broken)
    found = catalog.directions("run", wait=True, timeout=SLOW_TIMEOUT)
    assert found and all(d.kind in ("sefa", "pca") for d in found)
    assert "classifier exploded" in catalog.directions_status("run")
    assert not catalog.directions_pending("run")


def test_training_data_is_found_where_the_data_set_table_says(checkpoints_dir, tmp_path):
    """A --data-root laid out like ../shared/data: CelebA lives in its celeba10k folder, as the Train tab finds it."""
    from tests.conftest import shared_data_or_skip

    data_root = shared_data_or_skip("celeba10k")
    (tmp_path / "celeb").mkdir()
    G, meta = load_generator(checkpoints_dir / "tiny")
    save_generator(G, tmp_path / "celeb" / GENERATOR_FILE, model=meta.model, info={"dataset": "celeba"})
    catalog = Catalog(CheckpointRegistry([tmp_path / "celeb"]), data_roots=[data_root])
    roots = [c.root for c in catalog.training_data_configs(catalog.state("celeb"))]
    assert roots == [str(data_root / "celeba10k")]  # only there: the root itself would be searched for every image under it


def test_training_data_loads_from_a_shared_layout(checkpoints_dir, tmp_path):
    """data/celeba10k/list_attr_celeba.txt present (DatasetSpec.is_present): the images load from that folder."""
    write_faces(tmp_path / "data" / "celeba10k")
    (tmp_path / "celeb").mkdir()
    G, meta = load_generator(checkpoints_dir / "tiny")
    save_generator(G, tmp_path / "celeb" / GENERATOR_FILE, model=meta.model, info={"dataset": "celeba"})
    catalog = Catalog(CheckpointRegistry([tmp_path / "celeb"]), data_roots=[tmp_path / "data"])
    data = catalog.training_data(catalog.state("celeb"))
    assert data.images.shape == (3, 3, 16, 16) and data.label_names == ["Smiling", "Male"]
