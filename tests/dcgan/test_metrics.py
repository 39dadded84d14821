"""dcgan.metrics: the math on known cases, the registry, stub generators against the real-vs-real floor, the CLI and
the trainer's eval hook. Real data comes from ../shared/data; n stays at a few hundred so the file runs in seconds."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dcgan import cli, metrics
from dcgan.classifiers import load_classifier
from dcgan.datasets import batch_to_float
from dcgan.errors import ConfigError
from tests.conftest import make_tiny_cfg, shared_data_or_skip

N = 300


class ImageBankGenerator(nn.Module):
    """Stub G: hands out the images of a bank in order, ignoring z (one image repeated if the bank holds one)."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.x, self.next = x, 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        index = torch.arange(self.next, self.next + len(z)) % len(self.x)
        self.next += len(z)
        return self.x[index]


class NoiseGenerator(nn.Module):
    """Stub G: uniform noise in [-1, 1], seeded by its latents (its own generator: the global RNG stays put)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        rng = torch.Generator().manual_seed(int(z.abs().sum() * 1e4))
        return torch.rand(len(z), 1, 28, 28, generator=rng) * 2 - 1


@pytest.fixture(scope="module")
def mnist_root() -> str:
    return str(shared_data_or_skip("MNIST"))


@pytest.fixture(scope="module")
def mnist_classifier():
    return load_classifier("mnist")


@pytest.fixture(scope="module")
def mnist_test_x(mnist_root) -> torch.Tensor:
    """N held-out images, another random sample than the floor's (MNIST's test split is ordered by writer group)."""
    data = metrics.load_split("mnist", "test", root=mnist_root, image_size=28, channels=1)
    return batch_to_float(data.images[torch.randperm(len(data), generator=torch.Generator().manual_seed(123))[:N]])


# ----------------------------------------------------------------------------------------------------------------
# math and registry

def test_registry_lists_metrics():
    assert metrics.list_valid_metrics() == ["fid", "kid", "pr", "inception", "hist"]
    assert metrics.is_valid_metric("fid") and not metrics.is_valid_metric("fid50k")


def test_frechet_distance_known_cases():
    rng = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 8, generator=rng)
    b = torch.randn(4000, 8, generator=rng)
    assert metrics.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert metrics.frechet_distance(a, b) < 0.05
    assert metrics.frechet_distance(a, b + 2) == pytest.approx(8 * 4, rel=0.05)  # |mean shift|^2
    assert metrics.frechet_distance(a, b * 2) == pytest.approx(8 * (1 + 4 - 2 * 2), rel=0.1)  # tr(A + B - 2 sqrt(AB))


def test_kid_is_unbiased_and_precision_recall_on_known_sets():
    rng = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 8, generator=rng), torch.randn(600, 8, generator=rng)
    assert abs(metrics.kernel_distance(a, b, num_subsets=20)) < 0.01
    assert metrics.kernel_distance(a, b + 1, num_subsets=20) > 0.1
    assert metrics.precision_recall(a, a.clone()) == (1.0, 1.0)
    precision, recall = metrics.precision_recall(a, a[:1].expand(600, -1))  # one real point, repeated
    assert precision == 1.0 and recall < 0.01


def test_inception_score_extremes():
    one_hot = torch.eye(10).repeat(20, 1)
    assert metrics.inception_score(one_hot, "classes") == pytest.approx(10, rel=1e-4)
    assert metrics.inception_score(torch.full((50, 10), 0.1), "classes") == pytest.approx(1)
    attrs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(10, 1)
    assert metrics.inception_score(attrs, "attributes") == pytest.approx(2, rel=1e-4)


# ----------------------------------------------------------------------------------------------------------------
# stub generators on real data

def _evaluate(G, mnist_root, mnist_classifier, **kwargs):
    return metrics.evaluate(G, "mnist", n=N, z_dim=4, root=mnist_root, classifier=mnist_classifier, **kwargs)


def test_real_images_score_near_the_floor(mnist_root, mnist_classifier, mnist_test_x):
    result = _evaluate(ImageBankGenerator(mnist_test_x), mnist_root, mnist_classifier)
    scores, floor = result["metrics"], result["floor"]
    assert set(scores) == set(floor) and result["floor_n"] == {"reference": N, "held_out": N}
    assert scores["fid"] < 2 * floor["fid"] + 1
    assert scores["precision"] > 0.85 * floor["precision"] and scores["recall"] > 0.85 * floor["recall"]
    assert scores["is"] > 0.8 * floor["is"] > 6
    assert scores["hist_tv"] < 0.1
    assert metrics.collapse_warnings(result) == []


def test_degenerate_generator_has_low_recall_and_a_collapsed_histogram(mnist_root, mnist_classifier, mnist_test_x):
    result = _evaluate(ImageBankGenerator(mnist_test_x[:1]), mnist_root, mnist_classifier)
    scores = result["metrics"]
    assert scores["recall"] < 0.05 < result["floor"]["recall"]
    assert max(v for k, v in scores.items() if k.startswith("hist/")) == 1.0
    assert scores["hist_tv"] > 0.8 and scores["is"] < 1.1
    assert any("mode collapse" in w for w in metrics.collapse_warnings(result))


def test_noise_gives_a_large_fid_and_leaves_the_global_rng_alone(mnist_root, mnist_classifier):
    before = torch.get_rng_state()
    result = _evaluate(NoiseGenerator(), mnist_root, mnist_classifier, metrics=["fid", "kid"])
    assert torch.equal(before, torch.get_rng_state())
    assert set(result["metrics"]) == {"fid", "kid"}
    assert result["metrics"]["fid"] > 20 * result["floor"]["fid"]
    assert result["metrics"]["kid"] > 20 * max(result["floor"]["kid"], 1e-3)


def test_invisible_changes_to_real_images_cost_a_multiple_of_the_floor(mnist_root, mnist_classifier):
    """The reading aid for scores: perturbed held-out images land above the floor, deterministically, RNG untouched."""
    before = torch.get_rng_state()
    perturbed = metrics.perturbed_floors("mnist", 1000, root=mnist_root, classifier=mnist_classifier, metrics=["fid", "pr"])
    assert torch.equal(before, torch.get_rng_state())
    floor = metrics.real_floor("mnist", 1000, root=mnist_root, classifier=mnist_classifier)
    assert list(perturbed) == list(metrics.PERTURBATIONS)
    for name, scores in perturbed.items():
        assert scores["fid"] > 1.2 * floor["fid"], name
        assert scores["recall"] < floor["recall"], name
    assert perturbed["half-strength 3x3 blur"]["fid"] > 3 * floor["fid"]
    again = metrics.perturbed_floors("mnist", 1000, root=mnist_root, classifier=mnist_classifier, metrics=["fid"])
    assert {k: v["fid"] for k, v in again.items()} == {k: v["fid"] for k, v in perturbed.items()}


def test_sensitivity_tool_prints_the_floor_then_each_perturbation(mnist_root, tmp_path):
    tool = Path(__file__).resolve().parents[2] / "tools" / "metric_sensitivity.py"
    out = subprocess.run([sys.executable, str(tool), "--dataset", "mnist", "--n", str(N), "--data-root", mnist_root,
                          "--json", str(tmp_path / "s.json")], capture_output=True, text=True, check=True).stdout
    rows = json.loads((tmp_path / "s.json").read_text())
    assert list(rows)[1:] == list(metrics.PERTURBATIONS) and list(rows)[0].startswith("real floor")
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(rows) and table[1].endswith("| 1.0x |")


def test_floor_is_cached_and_keyed_by_image_size(mnist_root, mnist_classifier):
    floor = metrics.real_floor("mnist", N, root=mnist_root, classifier=mnist_classifier)
    cached = list((metrics.datasets.default_cache_dir() / "metrics").glob("floor-mnist-28px-1ch-n300-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text()) == floor
    assert all(math.isfinite(v) for v in floor.values())


def test_unknown_metric_and_bad_n_raise(mnist_root, mnist_classifier):
    with pytest.raises(ConfigError, match="unknown metric"):
        _evaluate(NoiseGenerator(), mnist_root, mnist_classifier, metrics=["fid50k"])
    with pytest.raises(ConfigError):
        metrics.evaluate(NoiseGenerator(), "mnist", n=1, z_dim=4, classifier=mnist_classifier)


# ----------------------------------------------------------------------------------------------------------------
# CLI and trainer hook

def test_cli_eval_on_tiny_checkpoint(tiny_ckpt, mnist_root, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = cli.main(["eval", str(tiny_ckpt), "--dataset", "mnist", "--data-root", mnist_root, "--n", "200", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "real floor" in printed and "fid" in printed and "recall" in printed
    result = json.loads(out.read_text())
    assert result["dataset"] == "mnist" and result["n"] == 200 and (result["image_size"], result["channels"]) == (16, 3)
    assert set(result["metrics"]) == set(result["floor"]) >= {"fid", "kid", "precision", "recall", "is", "hist_tv"}


def test_cli_eval_without_a_dataset_fails_cleanly(tiny_ckpt, capsys):
    assert cli.main(["eval", str(tiny_ckpt), "--n", "10"]) == 2  # the fixture trained on "fake": no classifier
    assert "no classifier" in capsys.readouterr().err


def test_trainer_eval_hook_logs_metrics_and_keeps_training_exact(mnist_root, tmp_path, monkeypatch):
    from dcgan import trainer
    from dcgan.checkpoints import load_generator
    from dcgan.rundir import read_jsonl

    monkeypatch.setattr(trainer, "EVAL_N", 200)
    runs = {}
    for eval_every in (0, 1):
        cfg = make_tiny_cfg(max_steps=2, eval_every=eval_every, sample_every=100, checkpoint_every=100)
        cfg.data.dataset, cfg.data.root, cfg.data.max_images = "mnist", mnist_root, 64
        fit_dir = tmp_path / f"eval-{eval_every}"
        trainer.fit(cfg, fit_dir, progress=False)
        runs[eval_every] = (load_generator(fit_dir)[0].state_dict(), read_jsonl(fit_dir / "metrics.jsonl"))
    evals = [r for r in runs[1][1] if "eval" in r]
    assert [r["step"] for r in evals] == [1, 2]
    assert {"fid", "recall", "hist_tv"} <= set(evals[0]["eval"]["metrics"]) and evals[0]["eval"]["n"] == 200
    for r in evals:  # an untrained G makes near-identical images: the histogram check must say so
        rates = [v for k, v in r["eval"]["metrics"].items() if k.startswith("hist/")]
        if max(rates) > 0.3 or min(rates) < 0.02:
            assert "mode collapse" in " ".join(r["warnings"])
    assert not any("eval" in r for r in runs[0][1])
    for name, tensor in runs[0][0].items():  # the eval consumed no random numbers: identical weights
        assert torch.equal(tensor, runs[1][0][name]), name
