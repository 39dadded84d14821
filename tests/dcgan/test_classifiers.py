"""dcgan.classifiers: the shipped files load, keep their interface and size budget, and classify real held-out images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dcgan import datasets
from dcgan.classifiers import CLASSIFIER_DATASETS, classifier_path, judge_path, load_classifier, load_judge, read_classifier_metadata
from dcgan.errors import CheckpointError
from dcgan.metrics import load_split
from tests.conftest import shared_data_or_skip

EXPECTED = {  # dataset: (kind, labels, image_size, channels)
    "mnist": ("classes", 10, 28, 1),
    "fashion-mnist": ("classes", 10, 28, 1),
    "celeba": ("attributes", 40, 64, 3),
}


@pytest.mark.parametrize("dataset", CLASSIFIER_DATASETS)
def test_shipped_classifier_loads_with_its_interface(dataset):
    path = classifier_path(dataset)
    assert path.stat().st_size < 5 * 2**20
    net = load_classifier(dataset)
    kind, labels, size, channels = EXPECTED[dataset]
    assert (net.kind, len(net.label_names), net.image_size, net.channels) == (kind, labels, size, channels)
    assert not net.training and next(net.parameters()).device.type == "cpu"
    meta = read_classifier_metadata(path)
    assert meta["results"]["n_test"] > 0 and meta["training"]["command"].startswith("python tools/train_classifier.py")


@pytest.mark.parametrize("dataset", CLASSIFIER_DATASETS)
@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 3, 16, 16), (2, 1, 64, 64), (1, 3, 128, 128)])
def test_any_size_and_channel_count_gives_probabilities_and_features(dataset, shape):
    net = load_classifier(dataset)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    probs, feats = net.predict_proba(x), net.features(x)
    assert probs.shape == (shape[0], len(net.label_names)) and feats.shape == (shape[0], net.cfg.feature_dim)
    assert ((probs >= 0) & (probs <= 1)).all() and (feats >= 0).all()
    if net.kind == "classes":
        torch.testing.assert_close(probs.sum(1), torch.ones(shape[0]))


def test_batching_does_not_change_results():
    net = load_classifier("mnist")
    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    whole = net.features(x)
    net.batch_size = 3
    torch.testing.assert_close(net.features(x), whole, rtol=1e-4, atol=1e-5)
    net.batch_size = 500


def test_bad_input_and_missing_or_foreign_weights_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no classifier is shipped"):
        load_classifier("cifar10")
    with pytest.raises(CheckpointError, match="missing"):
        load_classifier("mnist", path=tmp_path / "nothing.safetensors")
    pickled = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, pickled)
    with pytest.raises(CheckpointError):
        load_classifier("mnist", path=pickled)
    with pytest.raises(ValueError, match="float image batch"):
        load_classifier("mnist").predict_proba(torch.zeros(2, 28, 28))


@pytest.mark.parametrize("dataset, folder, minimum", [("mnist", "MNIST", 0.98), ("fashion-mnist", "FashionMNIST", 0.88)])
def test_accuracy_on_a_slice_of_the_test_split(dataset, folder, minimum):
    root = shared_data_or_skip(folder)
    data = load_split(dataset, "test", root=str(root), image_size=28, channels=1)
    probs = load_classifier(dataset).predict_proba(datasets.batch_to_float(data.images[:1000]))
    assert float((probs.argmax(1) == data.labels[:1000]).float().mean()) >= minimum


def test_the_celeba_judge_is_a_second_opinion_with_the_same_attributes():
    judge, shipped = load_judge("celeba"), load_classifier("celeba")
    assert judge.label_names == shipped.label_names and judge.digest != shipped.digest and not judge.training
    command = read_classifier_metadata(judge_path("celeba"))["training"]["command"]
    assert "--seed 1" in command and "celeba-judge.safetensors" in command
    assert load_judge("mnist") is None and load_judge("cifar10") is None


@pytest.mark.parametrize("load", [lambda: load_classifier("celeba"), lambda: load_judge("celeba")], ids=["shipped", "judge"])
def test_celeba_attributes_on_held_out_faces(load):
    root = shared_data_or_skip("celeba10k") / "celeba10k"
    names, rows = datasets.read_celeba_attributes(root / "list_attr_celeba.txt")
    paths = [root / "img_align_celeba" / f"{i:06d}.jpg" for i in range(8001, 8301)]  # held out from training
    images = datasets._decode_images(paths, 64, 3, datasets.CELEBA_CROP)
    labels = torch.from_numpy(np.stack([rows[p.name] for p in paths])).bool()
    net = load()
    assert net.label_names == names
    accuracy = ((net.predict_proba(datasets.batch_to_float(images)) > 0.5) == labels).float().mean(0)
    by_name = dict(zip(names, accuracy.tolist()))
    assert accuracy.mean() > 0.8
    assert by_name["Male"] > 0.85 and by_name["Smiling"] > 0.75 and by_name["Eyeglasses"] > 0.9
