import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.classifiers import CLASSIFIER_DATASETS
from dcgan.config import DataConfig
from dcgan.datasets import DATASETS, batch_to_float, build
from dcgan.errors import DatasetError
from tests.conftest import shared_data_or_skip


def test_registry_names():
    assert set(DATASETS) == {"mnist", "fashion-mnist", "cifar10", "celeba", "folder", "fake"}


def test_spec_table_holds_the_defaults_and_the_classifiers():
    assert [DATASETS[n].default_image_size("dcgan") for n in ("mnist", "cifar10", "celeba", "fake")] == [32, 32, 64, 64]
    assert {spec.default_image_size("keras") for spec in DATASETS.values()} == {28}
    assert [n for n, spec in DATASETS.items() if spec.channels == 1] == ["mnist", "fashion-mnist"]
    assert CLASSIFIER_DATASETS == ("mnist", "fashion-mnist", "celeba")
    assert not DATASETS["mnist"].hflip and DATASETS["celeba"].hflip


def test_presence_is_checked_from_the_spec(tmp_path):
    root = shared_data_or_skip("MNIST")
    assert DATASETS["mnist"].is_present(root) and not DATASETS["mnist"].is_present(tmp_path)
    assert not DATASETS["folder"].is_present(root) and not DATASETS["fake"].is_present(root)  # never "present offline"
    assert DATASETS["celeba"].root_under(root) == root / "celeba10k"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_torchvision_sets_decode_resized_to_model_size(name):
    root = shared_data_or_skip("MNIST" if name == "mnist" else "FashionMNIST")
    data = build(DataConfig(dataset=name, root=str(root), max_images=300), 32, 1)
    assert data.images.shape == (300, 1, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.shape == (300,) and len(data.label_names) == 10
    x = batch_to_float(data.images)
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1
    rgb = build(DataConfig(dataset=name, root=str(root), max_images=10), 64, 3)
    assert rgb.images.shape == (10, 3, 64, 64)


def test_celeba_subset_with_attributes():
    root = shared_data_or_skip("celeba10k") / "celeba10k"
    data = build(DataConfig(dataset="celeba", root=str(root), max_images=40), 64, 3)
    assert data.images.shape == (40, 3, 64, 64)
    assert data.labels.shape == (40, 40) and "Smiling" in data.label_names
    assert set(data.labels.unique().tolist()) <= {0, 1}


def test_second_build_comes_from_cache(tmp_path):
    folder = tmp_path / "imgs" / "nested"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), i * 80, np.uint8)).save(folder / f"{i}.png")
    cfg = DataConfig(dataset="folder", root=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"))
    first = build(cfg, 16, 3)
    assert first.images.shape == (3, 3, 16, 16)
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 1
    for p in folder.iterdir():
        p.unlink()  # the cache must serve the second build without touching the data
    assert torch.equal(build(cfg, 16, 3).images, first.images)


def test_bad_data_names_the_path(tmp_path):
    with pytest.raises(DatasetError, match="no images"):
        build(DataConfig(dataset="folder", root=str(tmp_path)), 16, 3, use_cache=False)
    with pytest.raises(DatasetError, match="not a folder"):
        build(DataConfig(dataset="folder", root=str(tmp_path / "nope")), 16, 3, use_cache=False)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="broken.jpg"):
        build(DataConfig(dataset="folder", root=str(tmp_path)), 16, 3, use_cache=False)
    with pytest.raises(DatasetError, match="not found under"):
        build(DataConfig(dataset="mnist", root=str(tmp_path / "empty")), 32, 1, use_cache=False)
    with pytest.raises(DatasetError, match="unknown dataset"):
        build(DataConfig(dataset="imagenet"), 32, 1)


def test_fake_dataset_is_deterministic():
    a = build(DataConfig(dataset="fake", max_images=8), 16, 3)
    assert torch.equal(a.images, build(DataConfig(dataset="fake", max_images=8), 16, 3).images)
