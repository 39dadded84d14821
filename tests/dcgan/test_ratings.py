"""dcgan.ratings: classifier ratings of seeds cached beside the checkpoint; picks from them equal fresh picks."""
from __future__ import annotations

import logging
import shutil

import pytest
import torch

from dcgan import directions as dirs
from dcgan.checkpoints import GENERATOR_FILE, load_generator
from dcgan.errors import CheckpointError
from dcgan.ratings import RATINGS_FILE, load_or_rate_seeds, load_ratings, ratings_fingerprint, ratings_path, save_ratings

from .test_directions import BrightnessClassifier

COUNT = 300  # more than one batch of dcgan.directions.BATCH


@pytest.fixture
def run(tiny_ckpt, tmp_path):
    shutil.copy2(tiny_ckpt / GENERATOR_FILE, tmp_path / GENERATOR_FILE)
    G, meta = load_generator(tmp_path)
    return tmp_path, G, meta.model.z_dim, BrightnessClassifier(G, meta.model.z_dim)


def rate(run, count=COUNT):
    folder, G, z_dim, classifier = run
    calls = []
    proba = load_or_rate_seeds(folder, G, classifier, count, z_dim=z_dim, progress=lambda done, total: calls.append((done, total)))
    return proba, calls


def test_ratings_path_beside_the_checkpoint(tmp_path):
    assert ratings_path(tmp_path / GENERATOR_FILE) == tmp_path / RATINGS_FILE
    assert ratings_path(tmp_path / "faces.safetensors") == tmp_path / "faces.ratings.safetensors"


def test_rated_once_then_read_back(run):
    folder, G, z_dim, classifier = run
    first, calls = rate(run)
    assert first.shape == (COUNT, 2) and calls[-1] == (COUNT, COUNT) and len(calls) == -(-COUNT // dirs.BATCH)
    assert (folder / RATINGS_FILE).is_file()
    again, calls = rate(run)
    assert calls == [] and torch.equal(again, first)  # from the file: no generator or classifier run
    fewer, calls = rate(run, 100)
    assert calls == [] and torch.equal(fewer, first[:100])
    # exemplars picked from the cached ratings are the ones a fresh search finds
    wants = ({"Bright": True}, {"Bright": False})
    fresh = dirs.pick_preset_seeds(G, classifier, wants, count=3, search=COUNT, z_dim=z_dim)
    assert dirs.pick_from_ratings(again, classifier, wants, count=3, z_dim=z_dim) == fresh


def test_stale_or_damaged_ratings_are_made_again(run, caplog):
    folder, G, z_dim, classifier = run
    first, _ = rate(run)
    _, calls = rate(run, COUNT + 10)  # the file covers fewer seeds than asked for
    assert calls and calls[-1] == (COUNT + 10, COUNT + 10)
    classifier.label_names = ["Bright", "Renamed"]  # another classifier: its ratings mean something else
    _, calls = rate(run)
    assert calls
    (folder / RATINGS_FILE).write_bytes(b"\x00" * 64)
    with caplog.at_level(logging.WARNING, logger="dcgan.ratings"):
        again, calls = rate(run)
    assert calls and "rating again" in caplog.text and torch.allclose(again[:, 0], first[:, 0])


def test_load_refuses_another_generator(run, tmp_path):
    folder, G, z_dim, classifier = run
    proba = torch.rand(4, 2)
    save_ratings(proba, tmp_path / "r.safetensors", fingerprint=ratings_fingerprint(G, classifier), label_names=classifier.label_names)
    assert torch.equal(load_ratings(tmp_path / "r.safetensors", fingerprint=ratings_fingerprint(G, classifier),
                                    label_names=classifier.label_names), proba)
    with torch.no_grad():
        next(G.parameters()).add_(0.01)  # retrained
    with pytest.raises(CheckpointError, match="another generator or classifier"):
        load_ratings(tmp_path / "r.safetensors", fingerprint=ratings_fingerprint(G, classifier), label_names=classifier.label_names)
    with pytest.raises(CheckpointError, match="do not match"):
        save_ratings(torch.rand(4, 3), tmp_path / "bad.safetensors", fingerprint="x", label_names=["a", "b"])
