"""dcgan.forget: dropping no maps changes nothing bit for bit, a dropped map is exactly zero, the ablated file loads
and round-trips, and the map search finds the map a stub classifier looks at."""
import json

import pytest
import torch
from torch import nn

from dcgan import cli
from dcgan.checkpoints import GENERATOR_FILE, load_generator, save_generator
from dcgan.config import ModelConfig
from dcgan.errors import ConfigError
from dcgan.forget import (
    ablate,
    attribution_scores,
    check_drops,
    default_layer,
    feature_layers,
    feature_maps,
    find_maps,
    forget_attribute,
    map_weights,
)
from dcgan.latent import latents_from_seeds
from dcgan.models import build_generator, recalibrate_batchnorm

CFG = ModelConfig(image_size=16, channels=3, z_dim=8, ngf=8)


def _generator() -> nn.Module:
    torch.manual_seed(0)
    return recalibrate_batchnorm(build_generator(CFG), CFG.z_dim, batches=2, batch_size=64)


def test_layers_and_the_paper_s_default():
    G = _generator()
    assert [bn.num_features for bn in feature_layers(G)] == [16, 8]
    assert default_layer(G) == 0  # the second-highest of two
    assert default_layer(build_generator(ModelConfig(image_size=64, ngf=8))) == 2  # 4x4, 8x8, [16x16], 32x32


def test_dropping_no_maps_gives_the_same_images_bit_for_bit():
    G = _generator()
    z = latents_from_seeds(list(range(8)), 8)
    with torch.no_grad():
        assert torch.equal(ablate(G, {}).eval()(z), G(z))
        assert torch.equal(ablate(G, {0: [], 1: []})(z), G(z))


def test_a_dropped_map_is_exactly_zero_and_the_others_are_untouched():
    G = _generator()
    z = latents_from_seeds(list(range(8)), 8)
    before, _ = feature_maps(G, z, 1)
    dropped = ablate(G, {1: [2, 5]})
    after, _ = feature_maps(dropped, z, 1)
    assert torch.all(after[:, [2, 5]] == 0)
    assert before[:, [2, 5]].abs().sum() > 0
    keep = [c for c in range(8) if c not in (2, 5)]
    assert torch.equal(after[:, keep], before[:, keep])  # the dropped layer's other maps; layers below are untouched too
    assert not torch.equal(dropped.main[4].weight, G.main[4].weight) and G.main[4].weight[2] != 0  # G itself is untouched


def test_renormalising_keeps_dropped_maps_at_zero_and_no_drops_bit_for_bit():
    G = _generator()
    z = latents_from_seeds(list(range(8)), 8)
    with torch.no_grad():
        assert torch.equal(ablate(G, {}, renormalise=2)(z), G(z))
    renormalised = ablate(G, {0: [1, 2]}, renormalise=2, batch_size=64)
    maps, _ = feature_maps(renormalised, z, 0)
    assert torch.all(maps[:, [1, 2]] == 0)
    raw = ablate(G, {0: [1, 2]})
    assert not torch.equal(renormalised.main[4].running_mean, raw.main[4].running_mean)  # the layer above re-estimated
    assert not renormalised.training


def test_drops_are_checked():
    G = _generator()
    with pytest.raises(ConfigError, match="feature layers 0-1"):
        check_drops(G, {2: [0]})
    with pytest.raises(ConfigError, match="integers 0-7"):
        check_drops(G, {1: [8]})
    with pytest.raises(ConfigError, match="integers 0-7"):
        check_drops(G, {1: [True]})
    assert check_drops(G, {1: [3, 1, 3], 0: []}) == {1: [1, 3]}


def test_the_ablated_file_loads_and_round_trips(tmp_path):
    G = ablate(_generator(), {1: [0, 4]})
    path = tmp_path / GENERATOR_FILE
    save_generator(G, path, model=CFG, info={"dataset": "fake", "ablated": {"layer": 1, "maps": [0, 4]}})
    loaded, meta = load_generator(path)
    assert meta.info["ablated"] == {"layer": 1, "maps": [0, 4]}
    z = latents_from_seeds([1, 2, 3], 8)
    with torch.no_grad():
        assert torch.equal(loaded(z), G(z))
    maps, _ = feature_maps(loaded, z, 1)
    assert torch.all(maps[:, [0, 4]] == 0)


class MapWatcher(nn.Module):
    """A stub attribute classifier that sees "the attribute" exactly where map ``watched`` of G's last layer fires
    (it reads G's image back through a fixed linear map, so input gradients exist and point at that map's pixels)."""

    def __init__(self, G: nn.Module, watched: int):
        super().__init__()
        self.watched = watched  # G itself is not kept: it is not part of the classifier
        self.label_names = ["Other", "Thing"]
        self.cfg = type("Cfg", (), {"dataset": "fake"})()
        self.kind = "attributes"
        self.captured = None
        feature_layers(G)[1].register_forward_hook(lambda _m, _i, out: setattr(self, "captured", out))

    def prepare(self, x):
        return x

    def forward(self, x):
        a = torch.relu(self.captured)[:, self.watched].flatten(1).mean(1) + 0 * x.flatten(1).sum(1)
        thing = 40 * (a - self.threshold)
        return torch.stack([torch.zeros_like(thing), thing], 1)

    def predict_proba(self, x):
        with torch.no_grad():
            return self(x).sigmoid()


def test_the_search_finds_the_map_the_attribute_lives_in():
    G = _generator()
    watcher = MapWatcher(G, watched=3)
    z = latents_from_seeds(list(range(200)), 8)
    with torch.no_grad():
        G(z)
    watcher.threshold = float(torch.relu(watcher.captured)[:, 3].flatten(1).mean(1).quantile(0.7))  # 30% "have" it
    scores = attribution_scores(G, watcher, 1, z[:20], 1)
    assert int(scores.argmax()) == 3 and torch.count_nonzero(scores) == 1
    plan = find_maps(G, watcher, "Thing", z_dim=8, layer=1, n_fit=200, rank="attribution")
    assert plan.maps[:1] == [3] and plan.vanished_on_fit == 1.0
    assert plan.fit_positives == 60 and plan.sweep[-1]["vanished"] == 1.0
    with pytest.raises(ConfigError, match="knows Other, Thing"):
        find_maps(G, watcher, "Glasses", z_dim=8, layer=1, n_fit=50)


def test_the_regression_ranks_the_map_active_inside_the_region_first():
    torch.manual_seed(0)
    maps_pos = torch.rand(30, 6, 4, 4) * 0.1
    saliency = torch.zeros(30, 4, 4)
    saliency[:, 1, 2] = 1.0           # the attribute sits at cell (1, 2)
    maps_pos[:, 4, 1, 2] += 2.0       # map 4 fires there
    maps_neg = torch.rand(30, 6, 4, 4) * 0.1
    weights = map_weights(maps_pos, saliency, maps_neg)
    assert int(weights.argmax()) == 4 and weights[4] > 0


def test_forget_attribute_reports_held_out_rates_and_a_grid():
    G = _generator()
    watcher = MapWatcher(G, watched=3)
    with torch.no_grad():
        G(latents_from_seeds(list(range(200)), 8))
    watcher.threshold = float(torch.relu(watcher.captured)[:, 3].flatten(1).mean(1).quantile(0.7))
    result = forget_attribute(G, watcher, "Thing", z_dim=8, layer=1, n_fit=200, n_eval=100, fid_n=0, grid_seeds=4)
    e = result.report["eval"]
    assert e["vanished"] == 1.0 and e["rates"]["Thing"]["after"] == 0.0 and 0 < e["had"] < 100
    assert e["seeds"] == [10**6, 10**6 + 99] and result.report["maps"] == result.plan.maps
    assert result.grid.shape == (2 * 16 + 3 * 2, 4 * 16 + 5 * 2, 3)
    json.dumps(result.report)


def test_cli_forget_refuses_a_model_without_a_classifier(tiny_ckpt, tmp_path, capsys):
    assert cli.main(["forget", str(tiny_ckpt), "--attribute", "Eyeglasses", "--out", str(tmp_path / "out")]) == 2
    assert "no shipped classifier" in capsys.readouterr().err
