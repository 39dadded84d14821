"""Latent directions: SeFa/PCA math, conditioning, applying amounts, files, and labelled directions via a stand-in classifier."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dcgan import cli
from dcgan import directions as dirs
from dcgan import io as dcgan_io
from dcgan.checkpoints import GENERATOR_FILE, load_generator
from dcgan.directions import Direction
from dcgan.errors import CheckpointError, LatentError
from dcgan.latent import latent_from_seed

REAL_GENERATOR = Path(__file__).resolve().parents[2] / "checkpoints" / "mnist" / GENERATOR_FILE


class BrightnessClassifier:
    """Stand-in for dcgan.classifiers: "Bright" is the image's mean brightness, centred on G's median brightness."""
    kind = "attributes"
    label_names = ["Bright", "Other"]

    def __init__(self, G, z_dim: int):
        with torch.no_grad():
            b = G(torch.randn(400, z_dim, generator=torch.Generator().manual_seed(123))).mean((1, 2, 3))
        self.centre, self.scale = float(b.median()), float(b.std()) / 4

    def brightness(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((1, 2, 3))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        bright = torch.sigmoid((self.brightness(x) - self.centre) / self.scale)
        return torch.stack([bright, torch.full_like(bright, 0.5)], 1)


@pytest.fixture(scope="module")
def generator(tiny_ckpt):
    """A real trained MNIST generator when the long run has written one; else the two-step tiny checkpoint."""
    G, meta = load_generator(REAL_GENERATOR if REAL_GENERATOR.is_file() else tiny_ckpt)
    return G, meta


def _random_directions(count: int, z_dim: int, seed: int = 0) -> list[Direction]:
    v = torch.randn(count, z_dim, generator=torch.Generator().manual_seed(seed))
    return [Direction(f"d{i}", v[i] / v[i].norm(), 1.0, "concept", f"D {i}") for i in range(count)]


# ----------------------------------------------------------------------------------------------------------------
# SeFa and PCA

def test_sefa_unit_orthogonal_and_eigenvectors(generator):
    G, meta = generator
    k = min(5, meta.model.z_dim)
    found = dirs.sefa_directions(G, k)
    V = torch.stack([d.vector for d in found]).double()
    assert V.dtype == torch.float64 and torch.allclose(V @ V.T, torch.eye(k, dtype=torch.float64), atol=1e-5)
    assert [d.name for d in found] == [f"sefa-{i}" for i in range(k)] and all(d.kind == "sefa" for d in found)
    strengths = [d.strength for d in found]
    assert strengths == sorted(strengths, reverse=True) and 0 < sum(strengths) <= 1 + 1e-9
    W = G.main[0].weight.detach().double().flatten(1).T  # [C*16, z_dim]
    A = W.T @ W
    eigenvalues = torch.linalg.eigvalsh(A).flip(0)[:k]
    for d, lam in zip(found, eigenvalues):
        v = d.vector.double()
        assert torch.allclose(A @ v, lam * v, rtol=1e-4, atol=1e-6 * float(lam))


def test_sefa_direction_changes_image_more_than_random(generator):
    G, meta = generator
    z_dim = meta.model.z_dim
    top = dirs.sefa_directions(G, 1)[0].vector
    z = torch.randn(32, z_dim, generator=torch.Generator().manual_seed(1))
    random = torch.randn(16, z_dim, generator=torch.Generator().manual_seed(2))
    random = random / random.norm(dim=1, keepdim=True)
    with torch.no_grad():
        x = G(z)

        def change(v: torch.Tensor) -> float:
            return float((G(z + 2.0 * v) - x).square().mean())

        assert change(top) > sum(change(r) for r in random) / len(random)


def test_pca_directions_unit_and_ordered(generator):
    G, meta = generator
    k = min(4, meta.model.z_dim)
    found = dirs.pca_directions(G, k, n=300)
    assert len(found) == k and all(d.kind == "pca" and d.vector.shape == (meta.model.z_dim,) for d in found)
    assert all(abs(float(d.vector.norm()) - 1) < 1e-5 for d in found)
    strengths = [d.strength for d in found]
    assert strengths == sorted(strengths, reverse=True) and 0 < sum(strengths) <= 1
    again = dirs.pca_directions(G, k, n=300)
    assert all(torch.equal(a.vector, b.vector) for a, b in zip(found, again))  # seeded: reproducible


def test_directions_for_keras_generator():
    from dcgan.config import ModelConfig
    from dcgan.models import build_generator

    G = build_generator(ModelConfig(arch="keras", image_size=28, channels=1, z_dim=12, ngf=8)).eval()
    assert len(dirs.sefa_directions(G, 3)) == 3 and len(dirs.pca_directions(G, 3, n=100)) == 3


# ----------------------------------------------------------------------------------------------------------------
# conditioning and applying

def test_condition_is_orthogonal_to_fixed():
    d, *fixed = _random_directions(4, 10)
    out = dirs.condition(d, fixed)
    assert abs(float(out.vector.norm()) - 1) < 1e-6 and out.name == d.name
    for f in fixed:
        assert abs(float(out.vector @ f.vector)) < 1e-6
    assert float(out.vector @ d.vector) > 0  # still points the same way
    assert torch.allclose(dirs.condition(d, fixed + [d]).vector, out.vector)  # itself among the fixed: ignored
    with pytest.raises(LatentError, match="span"):
        dirs.condition(Direction("sum", (fixed[0].vector + fixed[1].vector) / 2 ** 0.5, 1.0, "concept"), fixed)


def test_apply_directions_math_and_rejections():
    found = _random_directions(3, 6)
    z = torch.randn(4, 6)
    out = dirs.apply_directions(z, found, {"d0": 1.5, "d2": -2})
    assert torch.allclose(out, z + 1.5 * found[0].vector - 2 * found[2].vector, atol=1e-6)
    single = dirs.apply_directions(z[0], found, {"d1": 0.5})
    assert single.shape == (6,) and torch.allclose(single, z[0] + 0.5 * found[1].vector, atol=1e-6)
    assert torch.equal(dirs.apply_directions(z, found, {}), z)
    assert torch.allclose(dirs.apply_directions(z, found, {"d0": np.float32(0.5)}), z + 0.5 * found[0].vector, atol=1e-6)
    for amounts, message in [({"nope": 1.0}, "unknown"), ({"d0": math.nan}, "finite"), ({"d0": math.inf}, "finite"),
                             ({"d0": dirs.MAX_AMOUNT + 1}, "beyond"), ({"d0": True}, "finite"), ({"d0": "1"}, "finite")]:
        with pytest.raises(LatentError, match=message):
            dirs.apply_directions(z, found, amounts)
    with pytest.raises(LatentError, match="dims"):
        dirs.apply_directions(torch.randn(2, 5), found, {"d0": 1.0})


# ----------------------------------------------------------------------------------------------------------------
# files

def test_directions_path(tmp_path):
    (tmp_path / "run").mkdir()
    assert dirs.directions_path(tmp_path / "run") == tmp_path / "run" / "directions.safetensors"
    assert dirs.directions_path(tmp_path / "run" / GENERATOR_FILE) == tmp_path / "run" / "directions.safetensors"
    assert dirs.directions_path(tmp_path / "celeba-64.safetensors") == tmp_path / "celeba-64.directions.safetensors"


def test_save_load_round_trip(tmp_path):
    found = _random_directions(3, 7)
    found[1] = Direction("Smiling", found[1].vector, 0.91, "attribute", "Smiling (acc 91%)")
    path = tmp_path / "d.safetensors"
    dirs.save_directions(found, path, fingerprint="abc")
    loaded = dirs.load_directions(path)
    assert [(d.name, d.strength, d.kind, d.label) for d in loaded] == [(d.name, d.strength, d.kind, d.label) for d in found]
    assert all(torch.equal(a.vector, b.vector) and a.vector.dtype == torch.float32 for a, b in zip(loaded, found))
    assert len(dirs.load_directions(path, fingerprint="abc")) == 3
    with pytest.raises(CheckpointError, match="another generator"):
        dirs.load_directions(path, fingerprint="def")
    with pytest.raises(LatentError, match="unique"):
        dirs.save_directions(found + found[:1], path)


def test_corrupt_files_raise_checkpoint_error(tmp_path, tiny_ckpt):
    good = tmp_path / "good.safetensors"
    dirs.save_directions(_random_directions(2, 5), good)
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) - 8],
        "short": data[:5],
        "garbage": b"\x00" * 64,
        "pickle": b"\x80\x04\x95" + b"\x00" * 40,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError):
            dirs.load_directions(tmp_path / name)
    with pytest.raises(CheckpointError, match="not a directions file"):
        dirs.load_directions(tiny_ckpt / GENERATOR_FILE)
    with pytest.raises(CheckpointError, match="no such"):
        dirs.load_directions(tmp_path / "missing.safetensors")
    meta = {"format_version": "1", "content": "dcgan-directions", "generator_fingerprint": "",
            "directions": '[{"name": "a", "strength": 1.0, "kind": "pca", "label": ""}]'}
    save_file({"vectors": torch.full((1, 4), 3.0)}, tmp_path / "not-unit.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match="unit"):
        dirs.load_directions(tmp_path / "not-unit.safetensors")
    save_file({"vectors": torch.eye(2)}, tmp_path / "count.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match="lists 1 directions"):
        dirs.load_directions(tmp_path / "count.safetensors")
    save_file({"vectors": torch.eye(1)}, tmp_path / "kind.safetensors",
              metadata={**meta, "directions": '[{"name": "a", "strength": 1, "kind": "x"}]'})
    with pytest.raises(CheckpointError, match="bad direction entry"):
        dirs.load_directions(tmp_path / "kind.safetensors")


def test_load_or_compute_caches_and_tolerates_unwritable(tmp_path, tiny_ckpt, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(tiny_ckpt / GENERATOR_FILE, run_dir / GENERATOR_FILE)
    G, meta = load_generator(run_dir)
    monkeypatch.setattr(dirs, "unlabelled_directions", lambda G: dirs.sefa_directions(G, 3))
    first = dirs.load_or_compute_directions(run_dir, G, meta)
    assert (run_dir / "directions.safetensors").is_file() and len(first) == 3

    def fail(*args, **kwargs):
        raise AssertionError("should have read the cached file")

    monkeypatch.setattr(dirs, "unlabelled_directions", fail)
    again = dirs.load_or_compute_directions(run_dir / GENERATOR_FILE, G, meta)
    assert [d.name for d in again] == [d.name for d in first]

    # a classifier for the data set has appeared since: the unlabelled cache gains the labelled directions
    smiling = dirs.Direction("Smiling", torch.eye(meta.model.z_dim)[0], 0.9, "attribute")
    monkeypatch.setattr(dirs, "labelled_directions", lambda G, classifier: [smiling])
    assert len(dirs.load_or_compute_directions(run_dir, G, meta, classifier=object())) == 4
    assert len(dirs.load_directions(run_dir / "directions.safetensors")) == 4  # saved for next time

    with torch.no_grad():  # new weights: the cached file is stale and must be recomputed
        G.main[0].weight.mul_(1.5)
    monkeypatch.setattr(dirs, "unlabelled_directions", lambda G: dirs.sefa_directions(G, 2))

    def unwritable(data, path):
        raise CheckpointError(f"{path.parent}: cannot write here (read-only)")

    monkeypatch.setattr(dcgan_io, "atomic_write_bytes", unwritable)
    assert len(dirs.load_or_compute_directions(run_dir, G, meta)) == 2


def test_compute_directions_and_cli(tmp_path, tiny_ckpt, capsys):
    G, meta = load_generator(tiny_ckpt)
    found = dirs.compute_directions(G, meta, k=20, n=100, labelled=False)  # k is capped at z_dim = 8
    assert [d.kind for d in found] == ["sefa"] * 8 + ["pca"] * 8
    shutil.copy(tiny_ckpt / GENERATOR_FILE, tmp_path / "tiny.safetensors")
    assert cli.main(["directions", str(tmp_path / "tiny.safetensors"), "--k", "3", "--n", "100", "--no-classifier"]) == 0
    loaded = dirs.load_directions(tmp_path / "tiny.directions.safetensors", fingerprint=dirs.generator_fingerprint(G))
    assert [d.name for d in loaded] == ["sefa-0", "sefa-1", "sefa-2", "pca-0", "pca-1", "pca-2"]
    assert "sefa-0" in capsys.readouterr().out
    assert cli.main(["directions", str(tmp_path / "tiny.safetensors"), "--n", "3", "--no-classifier"]) == 2  # too few latents


# ----------------------------------------------------------------------------------------------------------------
# labelled directions and exemplars

def test_labelled_directions_with_stand_in_classifier(generator):
    G, meta = generator
    classifier = BrightnessClassifier(G, meta.model.z_dim)
    found = dirs.labelled_directions(G, classifier, n=600, names=["Bright"])
    assert [(d.name, d.kind) for d in found] == [("Bright", "attribute")]
    bright = found[0]
    assert abs(float(bright.vector.norm()) - 1) < 1e-5 and bright.strength > 0.7
    z = torch.randn(64, meta.model.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before = classifier.brightness(G(z))
        after = classifier.brightness(G(dirs.apply_directions(z, found, {"Bright": 2.0})))
    assert float((after - before).mean()) > 0 and float((after > before).double().mean()) > 0.8
    with pytest.raises(LatentError, match="not among"):
        dirs.labelled_directions(G, classifier, n=100, names=["Smiling"])


def test_labelled_class_names(generator):
    G, meta = generator

    class DigitClassifier(BrightnessClassifier):
        kind = "classes"
        label_names = ["0 - zero", "1 - one"]  # torchvision's MNIST class names

        def predict_proba(self, x):
            bright = super().predict_proba(x)[:, 0]
            return torch.stack([1 - bright, bright], 1)

    found = dirs.labelled_directions(G, DigitClassifier(G, meta.model.z_dim), n=400)
    assert [(d.name, d.kind) for d in found] == [("digit-0", "class"), ("digit-1", "class")]
    assert float(found[0].vector @ found[1].vector) < -0.9  # one-vs-rest of two classes: opposite boundaries


def test_labelled_directions_with_real_mnist_classifier():
    """On the trained MNIST generator with the shipped classifier, "digit-7" makes sevens more likely."""
    classifiers = pytest.importorskip("dcgan.classifiers")
    if not (REAL_GENERATOR.is_file() and classifiers.has_classifier("mnist")):
        pytest.skip("needs checkpoints/mnist/generator.safetensors and the shipped mnist classifier")
    G, meta = load_generator(REAL_GENERATOR)
    classifier = classifiers.load_classifier("mnist")
    found = dirs.labelled_directions(G, classifier, n=1000, names=["digit-7", "1 - one"])
    assert [(d.name, d.kind) for d in found] == [("digit-7", "class"), ("digit-1", "class")]
    z = torch.randn(64, meta.model.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = classifier.predict_proba(G(z))
        after = classifier.predict_proba(G(dirs.apply_directions(z, found, {"digit-7": 3.0})))
    assert float(after[:, 7].mean()) > float(before[:, 7].mean()) + 0.2


def test_pick_exemplar_seeds_satisfy_stand_in(generator):
    G, meta = generator
    classifier = BrightnessClassifier(G, meta.model.z_dim)
    search = 60
    bright = dirs.pick_exemplar_seeds(G, classifier, {"Bright": True}, count=3, search=search)
    dark = dirs.pick_exemplar_seeds(G, classifier, {"Bright": False}, count=3, search=search, seed_start=10)
    assert len(bright) == 3 and all(0 <= s < search for s in bright)
    assert all(10 <= s < 10 + search for s in dark)
    with torch.no_grad():
        def proba(seeds):
            return classifier.predict_proba(G(torch.stack([latent_from_seed(s, meta.model.z_dim) for s in seeds])))[:, 0]

        assert (proba(bright) > 0.5).all() and (proba(dark) < 0.5).all()
        everything = proba(list(range(search)))
    clear = (everything >= dirs.CLEAR).nonzero().flatten().tolist()
    assert len(clear) >= 3 and set(bright) <= set(clear)  # clear exemplars while there are enough of them
    groups = dirs.pick_preset_seeds(G, classifier, ({"Bright": True}, {"Bright": False}), count=2, search=search)
    assert groups[0] == bright[:2] and all(s not in groups[0] for s in groups[1])
    with pytest.raises(LatentError):
        dirs.pick_exemplar_seeds(G, classifier, {}, search=search)
    with pytest.raises(LatentError, match="not among"):
        dirs.pick_exemplar_seeds(G, classifier, {"Smiling": True}, search=search)


def test_arithmetic_presets_use_celeba_attributes():
    celeba = set("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
                 "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
                 "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
                 "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
                 "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young".split())
    assert {"smiling woman - neutral woman + neutral man",
            "man with glasses - man without glasses + woman without glasses"} <= set(dirs.ARITHMETIC_PRESETS)
    for groups in dirs.ARITHMETIC_PRESETS.values():
        assert len(groups) == 3 and all(want and set(want) <= celeba for want in groups)


@pytest.fixture(scope="module")
def faces():
    from dcgan.classifiers import load_classifier

    folder = Path(__file__).resolve().parents[2] / "checkpoints" / "celeba-64"
    G, _ = load_generator(folder)
    by_name = {d.name: d for d in dirs.load_directions(folder / dirs.DIRECTIONS_FILE)}
    return G, load_classifier("celeba"), by_name


def _male(classifier, G, z):
    return dirs.rate_latents(G, classifier, z)[:, classifier.label_names.index("Male")]


def test_holding_male_keeps_it_where_orthogonality_alone_does_not(faces):
    from dcgan.actions import edit_latent

    G, classifier, by_name = faces
    z = torch.stack([latent_from_seed(s, 100) for s in range(2000, 2060)])
    before = _male(classifier, G, z)
    amounts = {"Smiling": 3.0}
    conditioned = edit_latent(z, list(by_name.values()), amounts, ["Male"])
    held = edit_latent(z, list(by_name.values()), amounts, ["Male"], G=G, classifier=classifier)
    kept_conditioned = ((_male(classifier, G, conditioned) > 0.5) == (before > 0.5)).float().mean()
    kept_held = ((_male(classifier, G, held) > 0.5) == (before > 0.5)).float().mean()
    assert kept_held >= 0.9 and kept_held > kept_conditioned
    moved = held - conditioned  # the hold moves along Male only
    assert torch.allclose(moved, (moved @ by_name["Male"].vector)[:, None] * by_name["Male"].vector, atol=1e-5)
    smiling = dirs.rate_latents(G, classifier, held)[:, classifier.label_names.index("Smiling")]
    assert (smiling > 0.5).float().mean() >= 0.9  # the smile itself is not undone


def test_hold_leaves_unjudged_directions_and_unmoved_latents_alone(faces):
    G, classifier, by_name = faces
    z = torch.stack([latent_from_seed(s, 100) for s in range(5)])
    moved = z + 2 * by_name["sefa-0"].vector
    assert torch.equal(dirs.hold_judgements(G, classifier, z, moved, [by_name["sefa-1"]]), moved)
    assert torch.equal(dirs.hold_judgements(G, None, z, moved, [by_name["Male"]]), moved)
    assert torch.allclose(dirs.hold_judgements(G, classifier, z, z, [by_name["Male"], by_name["Eyeglasses"]]), z)
