"""The generators shipped in checkpoints/: they load, fit a Space without LFS, and their model cards tell the truth."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.checkpoints import load_generator
from dcgan.directions import directions_path, load_directions
from dcgan.images import make_grid
from dcgan.latent import latents_from_seeds

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
SHIPPED = sorted(p for p in CHECKPOINTS.glob("*") if (p / "generator.safetensors").is_file())
EXPECTED = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "celeba-64": "celeba"}
PROBED = {"mnist", "fashion-mnist"}


def front_matter(card: Path) -> dict[str, str]:
    text = card.read_text()
    assert text.startswith("---\n"), f"{card}: no front matter"
    block = text.split("---\n")[1]
    return dict(line.split(": ", 1) for line in block.strip().splitlines())


def test_the_three_generators_ship():
    assert {p.name for p in SHIPPED} >= set(EXPECTED)


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_shipped_generator_loads_and_card_matches_metadata(folder):
    path = folder / "generator.safetensors"
    assert path.stat().st_size <= 10 * 2**20
    G, meta = load_generator(folder)
    card = front_matter(folder / "README.md")
    assert card["dataset"] == meta.info["dataset"] == EXPECTED.get(folder.name, meta.info["dataset"])
    for key in ("arch", "image_size", "channels", "z_dim", "ngf"):
        assert card[key] == str(getattr(meta.model, key))
    assert int(card["step"]) == meta.info["step"] and int(card["images_seen"]) == meta.info["images_seen"]
    body = (folder / "README.md").read_text()
    assert "real floor" in body and "License" in body and f"{meta.info['step']:,}" in body
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["dataset"] == meta.info["dataset"] and set(metrics["metrics"]) == set(metrics["floor"])
    for key, value in metrics["metrics"].items():
        assert f"| {key} | {value:.4g} |" in body  # the card's table is the measured one
    for preset, r in metrics.get("arithmetic", {}).items():  # and so is its arithmetic table
        assert f"| {preset} | {100 * r['rate']:.0f}% ({r['successes']}/{r['draws']}) |" in body


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_sample_grid_is_seeds_zero_to_63(folder):
    G, meta = load_generator(folder)
    with torch.no_grad():
        grid = make_grid(G(latents_from_seeds(list(range(64)), meta.model.z_dim)), nrow=8)
    shipped = np.asarray(Image.open(folder / "samples.png").convert("RGB"))
    assert shipped.shape == grid.shape
    assert np.abs(shipped.astype(int) - grid.astype(int)).mean() < 1.0


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_shipped_directions_load(folder):
    directions = load_directions(directions_path(folder / "generator.safetensors"))
    kinds = {d.kind for d in directions}
    assert {"sefa", "pca"} <= kinds and len(directions) >= 8
    if folder.name == "celeba-64":
        assert {"Smiling", "Male", "Eyeglasses", "Blond_Hair", "Young"} <= {d.name for d in directions}


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_shipped_discriminator_belongs_to_the_generator_and_has_its_probe(folder):
    """Each checkpoint ships the D of its generator's step (or one adapted to that very generator); the digit and clothes
    ones also their probe table (section 5 needs class labels)."""
    from dcgan.checkpoints import load_discriminator

    path = folder / "discriminator.safetensors"
    assert path.stat().st_size <= 10 * 2**20
    D, d_meta = load_discriminator(folder)
    _, g_meta = load_generator(folder)
    assert d_meta.info["dataset"] == g_meta.info["dataset"] and d_meta.info["step"] == g_meta.info["step"]
    assert (d_meta.model.image_size, d_meta.model.channels) == (g_meta.model.image_size, g_meta.model.channels)
    x = torch.zeros(2, d_meta.model.channels, d_meta.model.image_size, d_meta.model.image_size)
    with torch.no_grad():
        assert D(x).shape[0] == 2
    if d_meta.info.get("trained"):
        assert "## The discriminator" in (folder / "README.md").read_text()
    if folder.name not in PROBED:
        return
    probe = json.loads((folder / "probe.json").read_text())
    for row in probe["labels"].values():
        assert {"trained", "random", "pixels"} <= set(row) and all(0 < row[k]["mean"] <= 1 for k in row)

