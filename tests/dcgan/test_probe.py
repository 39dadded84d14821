"""dcgan.probe: pooled-feature shapes for every image size, the linear probe on synthetic tasks whose answer is known,
and `dcgan probe` end to end on a tiny run."""
import json

import pytest
import torch

from dcgan import cli
from dcgan.config import ModelConfig
from dcgan.datasets import ImageData
from dcgan.errors import ConfigError
from dcgan.models import build_discriminator
from dcgan.probe import (
    POOL_SIDE,
    balanced_draw,
    layer_shapes,
    parse_label_counts,
    pooled_features,
    probe_accuracy,
    random_discriminator,
    run_probe,
)


@pytest.mark.parametrize("image_size", [16, 32, 64, 128, 256])
def test_pooled_features_are_every_hidden_layer_on_a_4x4_grid(image_size):
    model = ModelConfig(image_size=image_size, channels=3, ndf=4)
    D = build_discriminator(model).eval()
    widths = [4 * 2**i for i in range(len(layer_shapes(model)))]
    assert [c for c, _ in layer_shapes(model)] == widths  # ndf, 2 ndf, ... : one entry per hidden conv layer
    assert [side for _, side in layer_shapes(model)][-1] == 4
    features = pooled_features(D, torch.rand(2, 3, image_size, image_size) * 2 - 1)
    assert features.shape == (2, sum(widths) * POOL_SIDE**2)


def test_pooled_features_of_the_keras_d_and_spectral_norm():
    models = (ModelConfig(arch="keras", image_size=28, channels=1, ndf=8), ModelConfig(image_size=32, channels=1, ndf=4, d_norm="spectral"))
    for model in models:
        D = build_discriminator(model).eval()
        features = pooled_features(D, torch.zeros(3, 1, model.image_size, model.image_size))
        assert features.shape == (3, sum(c for c, _ in layer_shapes(model)) * 16)


def test_the_pooling_is_a_max_over_each_cell():
    model = ModelConfig(image_size=16, channels=1, ndf=2)
    D = build_discriminator(model).eval()
    captured = []
    D.main[1].register_forward_hook(lambda _m, _i, out: captured.append(out.clone()))
    features = pooled_features(D, torch.randn(1, 1, 16, 16))
    first = captured[0]  # [1, 2, 8, 8]: 2x2 cells of a 4x4 grid
    expected = first.unfold(2, 2, 2).unfold(3, 2, 2).amax((-1, -2)).flatten(1)
    torch.testing.assert_close(features[:, : expected.shape[1]], expected)


def test_balanced_draws_take_the_same_number_from_each_class():
    labels = torch.arange(10).repeat(50)
    index = balanced_draw(labels, 100, 10, seed=3)
    assert len(index.unique()) == 100 and torch.bincount(labels[index]).tolist() == [10] * 10
    assert torch.equal(index, balanced_draw(labels, 100, 10, seed=3)) and not torch.equal(index, balanced_draw(labels, 100, 10, seed=4))
    assert sorted(torch.bincount(labels[balanced_draw(labels, 23, 10, seed=0)]).tolist()) == [2] * 7 + [3] * 3
    with pytest.raises(ConfigError, match=r"600 labels: class \d has only 50 training images, 60 are needed"):
        balanced_draw(labels, 600, 10, seed=0)


def test_a_separable_task_is_solved_and_a_random_one_is_at_chance():
    rng = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(100)
    signal = torch.nn.functional.one_hot(y, 4).float() * 3
    x = torch.cat([signal, torch.randn(400, 20, generator=rng)], 1)  # 4 informative features among 24
    test_y = torch.arange(4).repeat(50)
    test_x = torch.cat([torch.nn.functional.one_hot(test_y, 4).float() * 3, torch.randn(200, 20, generator=rng)], 1)
    acc, l2 = probe_accuracy(x, y, test_x, test_y, 4)
    assert acc == 1.0
    noise_acc, _ = probe_accuracy(torch.randn(400, 24, generator=rng), y, test_x[:, torch.randperm(24)], test_y, 4)
    assert abs(noise_acc - 0.25) < 0.12


def _quadrant_data(n: int, seed: int) -> ImageData:
    """Class c lights up quadrant c of a 16x16 grey image, under noise: raw pixels solve it exactly."""
    rng = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat(n // 4)
    images = torch.randint(0, 60, (n, 1, 16, 16), generator=rng, dtype=torch.uint8)
    for i, c in enumerate(labels.tolist()):
        r, q = divmod(c, 2)
        images[i, :, 8 * r: 8 * r + 8, 8 * q: 8 * q + 8] += 180
    return ImageData(images, labels, [f"q{c}" for c in range(4)])


def test_run_probe_reports_every_kind_and_count():
    model = ModelConfig(image_size=16, channels=1, ndf=4)
    D = random_discriminator(model, seed=5)
    result = run_probe(D, model, _quadrant_data(200, 0), _quadrant_data(80, 1), [8, 40, None], draws=3, max_iter=50)
    assert set(result["labels"]) == {"8", "40", "all"}
    for count, row in result["labels"].items():
        assert set(row) == {"trained", "random", "pixels"}
        assert len(row["pixels"]["accuracies"]) == (1 if count == "all" else 3)
        assert 0 <= row["trained"]["std"] and all(0 <= a <= 1 for r in row.values() for a in r["accuracies"])
    assert result["labels"]["all"]["pixels"]["mean"] == 1.0 and result["labels"]["all"]["pixels"]["std"] == 0.0
    assert result["labels"]["40"]["random"]["mean"] > 0.9  # quadrants survive a random conv and 4x4 max-pooling
    assert result["feature_dims"] == {"trained": (4 + 8) * 16, "random": (4 + 8) * 16, "pixels": 256}


def test_label_counts_are_parsed_and_checked():
    assert parse_label_counts("100, 1000,all") == [100, 1000, None]
    for bad in ("", "100,100", "0", "ten", "-5"):
        with pytest.raises(ConfigError, match="--labels"):
            parse_label_counts(bad)
    model = ModelConfig(image_size=16, channels=1, ndf=4)
    with pytest.raises(ConfigError, match="between 4"):
        run_probe(random_discriminator(model), model, _quadrant_data(40, 0), _quadrant_data(8, 1), [2])


def test_cli_probe_names_a_data_set_without_a_test_split(tiny_ckpt, capsys):
    assert cli.main(["probe", str(tiny_ckpt), "--labels", "10"]) == 2
    assert "no train/test split" in capsys.readouterr().err


def test_cli_probe_writes_the_issue_s_json(monkeypatch, tiny_ckpt, tmp_path):
    from dcgan import metrics

    data = {"train": _quadrant_data(80, 0), "test": _quadrant_data(40, 1)}

    def fake_split(dataset, split, *, root, image_size, channels):
        assert (image_size, channels) == (16, 3)
        d = data[split]
        return ImageData(d.images.expand(-1, 3, -1, -1).contiguous(), d.labels, d.label_names)

    monkeypatch.setattr(metrics, "load_split", fake_split)
    out = tmp_path / "probe.json"
    assert cli.main(["probe", str(tiny_ckpt), "--labels", "8,all", "--draws", "2", "--max-iter", "20", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["labels"]["8"]) == {"trained", "random", "pixels"}
    assert set(result["labels"]["8"]["trained"]) >= {"mean", "std"} and result["dataset"] == "fake"


def test_large_training_sets_choose_the_strength_on_a_subset(monkeypatch):
    from dcgan import probe

    monkeypatch.setattr(probe, "SELECT_MAX", 40)
    fits = []
    real_fit = probe.fit_logistic
    monkeypatch.setattr(probe, "fit_logistic", lambda x, y, k, **kw: fits.append(len(y)) or real_fit(x, y, k, **kw))
    y = torch.arange(4).repeat(50)
    x = torch.nn.functional.one_hot(y, 4).float() + 0.1 * torch.randn(200, 4)
    acc, _ = probe_accuracy(x, y, x, y, 4)
    assert acc == 1.0 and fits == [32] * len(probe.L2_GRID) + [200]  # the search on 4/5 of 40 images, the final fit on all
