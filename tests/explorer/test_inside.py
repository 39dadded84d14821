"""The Inside tab's service (explorer.inside) and its endpoints: G's maps and drops, forgetting with a stub
classifier, D's units and guided backprop when a D ships beside the generator, the probe table, bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dcgan.checkpoints import GENERATOR_FILE, load_generator, save_discriminator
from dcgan.errors import CheckpointError, ConfigError, DatasetError, DCGANError
from dcgan.latent import latent_from_seed
from explorer import inside

from .conftest import StubClassifier, api_client, read_png


@pytest.fixture(scope="module")
def inside_dir(checkpoints_dir, tmp_path_factory):
    """checkpoints/tiny (with a D and a probe.json beside it) and tiny-grey (no D)."""
    from dcgan.models import build_discriminator

    root = tmp_path_factory.mktemp("inside-checkpoints")
    for name in ("tiny", "tiny-grey"):
        shutil.copytree(checkpoints_dir / name, root / name)
    _, meta = load_generator(root / "tiny" / GENERATOR_FILE)
    torch.manual_seed(1)
    save_discriminator(build_discriminator(meta.model).eval(), root / "tiny" / "discriminator.safetensors", model=meta.model,
                       info={"dataset": "fake", "step": 2})
    probe = {"dataset": "fake", "step": 2, "labels": {"100": {k: {"mean": 0.5, "std": 0.01} for k in ("trained", "random", "pixels")}}}
    (root / "tiny" / "probe.json").write_text(json.dumps(probe))
    return root


@pytest.fixture
def inside_catalog(inside_dir):
    from explorer.derived import Catalog
    from explorer.registry import CheckpointRegistry

    return Catalog(CheckpointRegistry([inside_dir]))


def test_g_layers_features_and_drops(inside_catalog):
    layers = inside.g_layers(inside_catalog, "tiny")
    assert [(layer["side"]) for layer in layers] == [4, 8]
    plain = inside.g_features(inside_catalog, "tiny", 3, 1)
    assert plain.image.shape == (16, 16, 3) and plain.maps.ndim == 2 and sorted(plain.strongest) == list(range(layers[1]["maps"]))
    assert np.array_equal(inside.ablate(inside_catalog, "tiny", 3, {}), plain.image)
    assert np.array_equal(inside.ablate(inside_catalog, "tiny", 3, None), plain.image)
    strongest = plain.strongest[:4]
    dropped = inside.g_features(inside_catalog, "tiny", 3, 1, 1.0, {"1": strongest})
    assert not np.array_equal(dropped.image, plain.image)
    assert np.array_equal(inside.ablate(inside_catalog, "tiny", 3, {"1": strongest}), dropped.image)
    renormalised = inside.ablate(inside_catalog, "tiny", 3, {"1": strongest}, 1.0, True)
    assert renormalised.shape == plain.image.shape and not np.array_equal(renormalised, dropped.image)
    with pytest.raises(ConfigError, match="renormalise"):
        inside.ablate(inside_catalog, "tiny", 3, {"1": strongest}, 1.0, "yes")
    tile = -(-inside.MAP_TILE // 8) * 8  # 8 px maps enlarged to at least MAP_TILE
    r, c = divmod(strongest[0], dropped.columns)
    cell = dropped.maps[r * (tile + 1): r * (tile + 1) + tile, c * (tile + 1): c * (tile + 1) + tile]
    assert cell.shape == (tile, tile) and cell.max() == 0  # a dropped map is black


@pytest.mark.parametrize("drops, message", [
    ({"7": [0]}, "feature layers 0-1"),
    ({"1": [10_000]}, "integers 0-"),
    ({"1": list(range(inside.MAX_DROPS + 1))}, f"at most {inside.MAX_DROPS}"),
    ([1, 2], "must be"),
    ({"1": "3,4"}, "at most"),
])
def test_bad_drops_are_refused(inside_catalog, drops, message):
    with pytest.raises(ConfigError, match=message):
        inside.ablate(inside_catalog, "tiny", 0, drops)


def test_layers_units_and_sources_are_bounded(inside_catalog):
    with pytest.raises(ConfigError, match="layer"):
        inside.g_features(inside_catalog, "tiny", 0, 2)
    with pytest.raises(ConfigError, match="count"):
        inside.d_units_grid(inside_catalog, "tiny", 0, inside.MAX_UNITS + 1)
    with pytest.raises(ConfigError, match="k"):
        inside.d_units_grid(inside_catalog, "tiny", 0, 2, 0)
    with pytest.raises(ConfigError, match="source"):
        inside.d_units_grid(inside_catalog, "tiny", 0, 2, 2, "web")
    with pytest.raises(ConfigError, match="unit"):
        inside.guided_backprop(inside_catalog, "tiny", 0, 1, 16)
    with pytest.raises(ConfigError, match="layer"):
        inside.guided_backprop(inside_catalog, "tiny", 0, 2, 0)


def test_d_units_and_guided_backprop(inside_catalog, monkeypatch):
    assert inside.has_discriminator(inside_catalog, "tiny") and not inside.has_discriminator(inside_catalog, "tiny-grey")
    assert inside.d_layers(inside_catalog, "tiny") == [{"layer": 0, "units": 8, "side": 8}, {"layer": 1, "units": 16, "side": 4}]

    def missing(state):
        raise DatasetError("not here")

    with monkeypatch.context() as patch:
        patch.setattr(inside_catalog, "training_data", missing)
        assert inside.d_units_grid(inside_catalog, "tiny", 0, 3, 4, "real").source == "generated"  # no data on the server
    assert inside.d_units_grid(inside_catalog, "tiny", 0, 3, 4, "real").source == "real"  # the run's (fake) training data
    units = inside.d_units_grid(inside_catalog, "tiny", 1, 3, 4, "generated")
    assert len(units.units) == len(units.rows) == 3 and units.patch_size == 10
    assert units.rows[0].shape[1] == 4 * 30 + 3 * 2  # 10 px patches enlarged 3x, 4 per row
    row = inside.guided_backprop(inside_catalog, "tiny", 5, 1, units.units[0])
    assert row.shape == (16, 34, 3)
    with pytest.raises(CheckpointError, match="no discriminator"):
        inside.d_units_grid(inside_catalog, "tiny-grey", 0)


def test_probe_results_are_read_from_beside_the_model(inside_catalog):
    result = inside.probe_results(inside_catalog, "tiny")
    assert result["labels"]["100"]["trained"]["mean"] == 0.5
    assert "| 100 | 50.0 ± 1.0 |" in inside.probe_markdown(result)
    assert inside.probe_results(inside_catalog, "tiny-grey") == {}
    assert "dcgan probe" in inside.probe_markdown({})


def test_forget_with_a_stub_classifier(inside_catalog, monkeypatch):
    class Differentiable(StubClassifier, torch.nn.Module):
        cfg = type("Cfg", (), {"dataset": "fake"})()

        def __init__(self):
            torch.nn.Module.__init__(self)

        def prepare(self, x):
            return x

        def forward(self, x):
            return torch.logit(StubClassifier.predict_proba(self, x).clamp(1e-6, 1 - 1e-6))

    monkeypatch.setattr(inside_catalog, "classifier", lambda state: Differentiable())
    monkeypatch.setattr(inside, "FORGET_FIT", 200)
    monkeypatch.setattr(inside, "FORGET_EVAL", 100)
    assert inside.attributes(inside_catalog, "tiny") == ["Smiling", "Male"]
    result = inside.forget(inside_catalog, "tiny", "Smiling")
    assert result.layer == 0 and result.maps and result.report["had"] > 0 and 0 <= result.report["vanished"] <= 1
    assert set(result.report["rates"]) == {"Smiling", "Male"}
    assert inside.forget(inside_catalog, "tiny", "Smiling") is result  # once per model, attribute and layer
    assert "vanished from" in inside.forget_markdown(result)
    with pytest.raises(ConfigError, match="attribute"):
        inside.forget(inside_catalog, "tiny", "Eyeglasses")


def test_forget_needs_a_classifier(inside_catalog):
    with pytest.raises(DCGANError, match="no classifier"):
        inside.forget(inside_catalog, "tiny", "Smiling")


@pytest.fixture(scope="module")
def inside_client(inside_dir, tmp_path_factory, gradio_env):
    from explorer.derived import Catalog
    from explorer.registry import CheckpointRegistry

    with api_client(Catalog(CheckpointRegistry([inside_dir])), tmp_path_factory, "inside") as client:
        yield client


def test_inside_endpoints(inside_client):
    named = set(inside_client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/g_features", "/ablate", "/forget", "/d_units", "/guided_backprop", "/probe_results"} <= named
    image, maps, meta = inside_client.predict("tiny", 3, 1, 1.0, {"1": [0, 1]}, api_name="/g_features")
    assert read_png(image).shape == (16, 16, 3) and read_png(maps).ndim == 2 and meta["columns"] >= 1
    assert np.array_equal(read_png(inside_client.predict("tiny", 3, {"1": [0, 1]}, 1.0, api_name="/ablate")), read_png(image))
    grid, info = inside_client.predict("tiny", 1, 3, 2, "generated", api_name="/d_units")
    assert len(info["units"]) == 3 and read_png(grid).shape[0] == 3 * 30 + 2 * 2
    assert read_png(inside_client.predict("tiny", 3, 1, info["units"][0], 1.0, api_name="/guided_backprop")).shape == (16, 34, 3)
    assert inside_client.predict("tiny", api_name="/probe_results")["labels"]["100"]["random"]["std"] == 0.01
    with pytest.raises(Exception, match="unit: 99 must be an integer from 0 to 15"):
        inside_client.predict("tiny", 3, 1, 99, 1.0, api_name="/guided_backprop")
    with pytest.raises(Exception, match="at most"):
        inside_client.predict("tiny", 3, {"1": list(range(600))}, 1.0, api_name="/ablate")


def test_an_upload_gets_no_classifier_work_and_no_discriminator(inside_catalog, inside_dir, monkeypatch):
    monkeypatch.setattr(inside_catalog, "classifier", lambda state: pytest.fail("an upload must not load a classifier"))
    inside_catalog.registry.register("upload-abc", inside_dir / "tiny" / GENERATOR_FILE)  # its D sits beside it, yet is not used
    assert inside.attributes(inside_catalog, "upload-abc") == []
    with pytest.raises(ConfigError, match="no classifier"):
        inside.forget(inside_catalog, "upload-abc", "Smiling")
    assert not inside.has_discriminator(inside_catalog, "upload-abc")
    with pytest.raises(CheckpointError, match="no discriminator"):
        inside.d_units_grid(inside_catalog, "upload-abc", 0)
    assert inside.g_features(inside_catalog, "upload-abc", 1, 0).image.shape == (16, 16, 3)  # G's own maps are fine


def test_a_latent_name_is_the_current_seed_here_too(inside_catalog):
    """The header's current seed may be a latent name (Your image): the Inside views of its latent equal the seed's."""
    name = inside_catalog.latents.add(latent_from_seed(3, 8))
    c = inside_catalog
    assert np.array_equal(inside.g_features(c, "tiny", name, 1).maps, inside.g_features(c, "tiny", 3, 1).maps)
    assert np.array_equal(inside.ablate(c, "tiny", name, {"1": [0, 1]}), inside.ablate(c, "tiny", 3, {"1": [0, 1]}))
    assert np.array_equal(inside.guided_backprop(c, "tiny", name, 1, 2), inside.guided_backprop(c, "tiny", 3, 1, 2))
    with pytest.raises(DCGANError, match="unknown"):
        inside.g_features(inside_catalog, "tiny", "img-0123456789ab", 1)
