"""dcgan.project: safe image reading, preparation like the training data, projection quality, latent names and files."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.checkpoints import load_generator
from dcgan.classifiers import load_classifier
from dcgan.cli import main
from dcgan.errors import DCGANError, LatentError
from dcgan.latent import latents_from_seeds
from dcgan.project import (
    MAX_IMAGE_SIDE,
    ImageError,
    ProjectionSettings,
    Projector,
    _activations,
    check_latents,
    feature_network,
    is_latent_name,
    latent_name,
    load_latents,
    prepare_digit,
    prepare_images,
    psnr,
    read_image,
    save_latents,
)

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
QUICK = ProjectionSettings(steps=100, candidates=128)


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mnist():
    G, info = load_generator(CHECKPOINTS / "mnist")
    return Projector(G, z_dim=info.model.z_dim, classifier=load_classifier("mnist"), dataset="mnist", candidates=128)


# ----------------------------------------------------------------------------------------------------------------
# reading and preparing

@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1", "CMYK"])
def test_read_image_accepts_every_mode(mode):
    img = Image.new("RGB", (40, 30), (200, 30, 90)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    x = prepare_images([read_image(_png(img, fmt))], image_size=32, channels=3, dataset=None)
    assert x.shape == (1, 3, 32, 32) and x.min() >= -1 and x.max() <= 1


def test_read_image_refuses_non_images_and_huge_ones(tmp_path):
    with pytest.raises(ImageError, match="not a usable image"):
        read_image(b"hello, not a picture")
    with pytest.raises(ImageError, match=f"at most {MAX_IMAGE_SIDE} px"):
        read_image(_png(Image.new("1", (MAX_IMAGE_SIDE + 1, 8))))
    with pytest.raises(ImageError, match="over 20 MB"):
        read_image(b"\x89PNG" + bytes(21 * 2**20))
    with pytest.raises(ImageError, match="damaged"):
        read_image(_png(Image.new("RGB", (64, 64), (1, 2, 3)))[:-30])
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "missing.png")


def test_decompression_bomb_is_refused_before_decoding():
    """A tiny file claiming 4000 x 4000 px passes the side check; PIL's pixel bound (lowered here) must still refuse it."""
    bomb = _png(Image.new("1", (4000, 4000)))
    assert len(bomb) < 10_000
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1_000_000
    try:
        with pytest.raises(ImageError, match="decompression bomb"):
            read_image(bomb)
    finally:
        Image.MAX_IMAGE_PIXELS = old


def test_arrays_of_any_size_are_accepted_and_bad_ones_refused():
    batch = np.random.default_rng(0).integers(0, 256, (3, 50, 70, 3), dtype=np.uint8)
    assert prepare_images(batch, image_size=16, channels=1, dataset=None).shape == (3, 1, 16, 16)
    assert prepare_images(batch[0], image_size=16, channels=3, dataset="celeba").shape == (1, 3, 16, 16)
    with pytest.raises(ImageError, match="uint8"):
        prepare_images(batch.astype(np.float32), image_size=16, channels=3, dataset=None)
    with pytest.raises(ImageError, match="no images"):
        prepare_images([], image_size=16, channels=3, dataset=None)


def test_a_dark_digit_on_white_paper_becomes_mnist_like():
    """Black strokes on white, off centre and large: light on black, centred, the box 20 of 28 px."""
    paper = Image.new("L", (300, 200), 255)
    paper.paste(0, (20, 10, 60, 190))  # a thick '1' at the left
    digit = np.asarray(prepare_digit(paper, 28), dtype=np.float32)
    assert digit[0].max() == 0 and digit[:, 0].max() == 0  # black background
    rows = np.flatnonzero(digit.max(1) > 50)
    assert 19 <= rows[-1] - rows[0] + 1 <= 21
    centre = (digit.sum(0) * np.arange(28)).sum() / digit.sum()
    assert abs(centre - 13.5) < 1.0


def test_an_mnist_digit_is_prepared_almost_unchanged(mnist):
    torchvision = pytest.importorskip("torchvision")
    from tests.conftest import shared_data_or_skip

    root = shared_data_or_skip("MNIST")
    digits = torchvision.datasets.MNIST(root=str(root), train=False, download=False).data[:20].numpy()
    prepared = prepare_images(list(digits), image_size=28, channels=1, dataset="mnist")
    original = torch.from_numpy(digits).float()[:, None] / 127.5 - 1
    assert float(psnr(prepared, original).mean()) > 15  # same layout; resampling differs slightly


# ----------------------------------------------------------------------------------------------------------------
# projection

def test_projecting_generated_digits_recovers_them(mnist):
    z_true = latents_from_seeds([5001, 5002, 5003], mnist.z_dim)  # not in the 0-127 start bank
    with torch.no_grad():
        target = mnist.G(z_true)
    start = mnist.project(target=target, settings=ProjectionSettings(steps=0, candidates=128))
    result = mnist.project(target=target, settings=QUICK)
    psnrs = [q["psnr"] for q in result.quality]
    assert min(psnrs) > 24 and min(psnrs) > max(q["psnr"] for q in start.quality) + 3
    assert all(q["agreement"] == 1.0 for q in result.quality)
    assert result.z.shape == (3, mnist.z_dim) and result.reconstruction.shape == target.shape
    assert torch.allclose(result.reconstruction, mnist.G(result.z).detach(), atol=1e-5)


def test_quality_figures_are_per_image_and_sensible(mnist):
    z = latents_from_seeds([7, 8], mnist.z_dim)
    with torch.no_grad():
        x = mnist.G(z)
    from dcgan.project import quality

    same = quality(mnist.classifier, x, x)
    assert [q["psnr"] for q in same] == [pytest.approx(100.0)] * 2  # identical images: the mse floor 1e-10
    assert all(q["feature_distance"] < 1e-5 and q["agreement"] == 1.0 and q["original"] == q["reconstructed"] for q in same)
    noisy = quality(mnist.classifier, x, x.flip(0))
    assert all(q["psnr"] < 30 and q["feature_distance"] > 0.05 for q in noisy)
    assert set(noisy[0]["probabilities"]) == set(mnist.classifier.label_names)


def test_projection_is_batch_independent(mnist):
    z = latents_from_seeds([11, 12, 13, 14], mnist.z_dim)
    with torch.no_grad():
        target = mnist.G(z) * 0.9  # not exactly reachable: the optimiser must do real work
    settings = ProjectionSettings(steps=15, candidates=128)
    together = mnist.project(target=target, settings=settings).z
    alone = torch.cat([mnist.project(target=target[i:i + 1], settings=settings).z for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-4)


def test_two_phase_multi_start_projection_is_batch_independent(mnist):
    z = latents_from_seeds([21, 22, 23], mnist.z_dim)
    with torch.no_grad():
        target = mnist.G(z) * 0.9
    settings = ProjectionSettings(steps=12, candidates=128, starts=3, feature_fraction=0.5, lr=0.2, lr_end=0.01)
    together = mnist.project(target=target, settings=settings).z
    alone = torch.cat([mnist.project(target=target[i:i + 1], settings=settings).z for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-4)


def test_the_embedding_term_can_stay_on_after_the_feature_phase(mnist):
    z = latents_from_seeds([41, 42, 43, 44], mnist.z_dim)
    with torch.no_grad():
        target = 0.5 * (mnist.G(z) + mnist.G(z.roll(1, 0)))  # two digits at once: pixels and embedding pull apart
    common = dict(steps=30, candidates=128, feature_fraction=0.1, embedding_weight=1.0, lr=0.1, lr_end=0.01)
    pixels_last = mnist.project(target=target, settings=ProjectionSettings(**common)).quality
    kept = mnist.project(target=target, settings=ProjectionSettings(**common, embedding_throughout=True)).quality
    assert sum(q["feature_distance"] for q in kept) < sum(q["feature_distance"] for q in pixels_last)


def test_more_starts_never_end_worse_on_the_pixel_loss(mnist):
    z = latents_from_seeds([31, 32, 33, 34], mnist.z_dim)
    with torch.no_grad():
        target = mnist.G(z) * 0.8
    one = mnist.project(target=target, settings=ProjectionSettings(steps=10, candidates=128, feature_fraction=0.0, prior_weight=0.0))
    four = mnist.project(target=target, settings=ProjectionSettings(steps=10, candidates=128, feature_fraction=0.0, prior_weight=0.0,
                                                                    starts=4))
    assert all(b["psnr"] >= a["psnr"] - 1e-3 for a, b in zip(one.quality, four.quality))


def test_start_returns_the_best_candidates_first(mnist):
    target = mnist.bank_x[[5, 40]]  # bank images themselves: each is its own nearest candidate
    starts = mnist.start(target, 128, embedding=False, starts=3)
    assert starts.shape == (6, mnist.z_dim)
    assert torch.equal(starts[0], mnist.bank_z[5]) and torch.equal(starts[3], mnist.bank_z[40])
    assert len({tuple(row.tolist()) for row in starts[:3]}) == 3


def test_feature_network_matches_the_classifier_and_leaves_it_alone():
    classifier = load_classifier("celeba")
    batch_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in classifier.body)
    fast = feature_network(classifier)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        (slow_stages, slow_e, slow_logits), (fast_stages, fast_e, fast_logits) = _activations(classifier, x), _activations(fast, x)
    assert torch.allclose(slow_logits, fast_logits, atol=1e-4) and torch.allclose(slow_e, fast_e, atol=1e-4)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(slow_stages, fast_stages))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.body)
    assert batch_norms > 0 and sum(isinstance(m, torch.nn.BatchNorm2d) for m in classifier.body) == batch_norms


def test_learning_rate_decays_from_lr_to_lr_end():
    settings = ProjectionSettings(steps=11, lr=0.2, lr_end=0.02, feature_fraction=0.25)
    rates = [settings.lr_at(step) for step in range(settings.steps)]
    assert rates[0] == pytest.approx(0.2) and rates[-1] == pytest.approx(0.02)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert settings.feature_steps == 3


def test_projector_leaves_generator_as_it_found_it(mnist):
    mnist.project(target=torch.zeros(1, 1, 32, 32), settings=ProjectionSettings(steps=2, candidates=8))
    assert not mnist.G.training
    assert all(p.requires_grad for p in mnist.G.parameters()) or not any(p.requires_grad for p in mnist.G.parameters())


def test_settings_are_checked():
    with pytest.raises(LatentError, match="steps"):
        ProjectionSettings(steps=-1)
    with pytest.raises(LatentError, match="prior_weight"):
        ProjectionSettings(prior_weight=float("nan"))
    with pytest.raises(LatentError, match="feature_fraction"):
        ProjectionSettings(feature_fraction=1.5)
    with pytest.raises(LatentError, match="starts"):
        ProjectionSettings(starts=9, candidates=8)


# ----------------------------------------------------------------------------------------------------------------
# latent names and files

def test_latent_names_are_stable_and_well_formed():
    z = latents_from_seeds([3], 100)[0]
    name = latent_name(z)
    assert name == latent_name(z.clone().double()) and name != latent_name(z + 1e-3)
    assert is_latent_name(name) and len(name) == 16
    assert not any(is_latent_name(s) for s in ("img-0123", "img-0123456789AB", "img-0123456789ag", "3", None, "seed-0123456789ab"))


def test_latent_files_round_trip_and_bad_ones_are_refused():
    z = latents_from_seeds([1, 2], 100)
    assert torch.equal(load_latents(save_latents(z), 100), z)
    assert load_latents(save_latents(z[0]), 100).shape == (1, 100)
    with pytest.raises(LatentError, match="shape"):
        check_latents(np.zeros((2, 99), np.float32), 100)
    with pytest.raises(LatentError, match="NaN"):
        check_latents(np.full(100, np.nan, np.float32), 100)
    with pytest.raises(LatentError, match="within"):
        check_latents(np.full(100, 50.0, np.float32), 100)
    with pytest.raises(LatentError, match="dtype"):
        check_latents(np.zeros(100, np.int64), 100)
    with pytest.raises(LatentError, match="not a .npy"):
        load_latents(b"garbage", 100)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(LatentError):
        load_latents(buffer.getvalue(), 100)  # pickled objects are never loaded


# ----------------------------------------------------------------------------------------------------------------
# CLI

def test_cli_project_then_sample_renders_the_reconstruction(tmp_path, capsys):
    paper = Image.new("L", (120, 120), 255)
    paper.paste(0, (50, 15, 70, 105))
    image = tmp_path / "one.png"
    paper.save(image)
    latents, preview, again = tmp_path / "z.npy", tmp_path / "preview.png", tmp_path / "again.npy"
    assert main(["project", str(image), "--checkpoint", str(CHECKPOINTS / "mnist"), "--out", str(latents),
                 "--preview", str(preview), "--mode", "fast"]) == 0
    out = capsys.readouterr().out
    assert "one.png" in out and "psnr" in out
    z = np.load(latents)
    assert z.shape == (1, 100) and z.dtype == np.float32
    assert Image.open(preview).size == (2 + 34, 2 + 2 * 34)  # one column: original above reconstruction
    assert main(["sample", str(CHECKPOINTS / "mnist"), "--latents", str(latents), "--out", str(again)]) == 0
    assert np.load(again).shape == (1, 32, 32, 1)
    assert main(["sample", str(CHECKPOINTS / "mnist"), "--latents", str(latents), "--out", str(tmp_path / "pngs") + "/"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pngs" / "latent-000000.png")), np.load(again)[0, ..., 0])


def test_cli_refuses_bad_images_and_latents(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert main(["project", str(bad), "--checkpoint", str(CHECKPOINTS / "mnist")]) == 2
    assert "not a usable image" in capsys.readouterr().err
    np.save(tmp_path / "nan.npy", np.full((1, 100), np.nan, np.float32))
    assert main(["sample", str(CHECKPOINTS / "mnist"), "--latents", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "x.png")]) == 2
    assert "NaN" in capsys.readouterr().err
    assert issubclass(ImageError, DCGANError)
