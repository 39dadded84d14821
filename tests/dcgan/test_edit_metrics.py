"""Editing metrics on stand-ins whose answer is known: a "generator" that writes latent coordinates into channels."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dcgan import cli
from dcgan import edit_metrics as em
from dcgan.directions import ARITHMETIC_PRESETS, Direction, pick_from_ratings, pick_preset_seeds, preset_boundaries, rate_latents
from dcgan.errors import ConfigError, LatentError
from dcgan.latent import latents_from_seeds

ATTRIBUTES = ["Smiling", "Male", "Eyeglasses", "Blond_Hair", "Black_Hair"]  # channel i holds latent coordinate i
Z_DIM = 7                                                                   # two coordinates no attribute reads


class ChannelGenerator(nn.Module):
    """G(z) [N, z_dim, 4, 4]: channel i is the constant z_i. Its BatchNorm is the identity in eval mode only."""

    def __init__(self, z_dim: int = Z_DIM):
        super().__init__()
        self.proj = nn.Linear(z_dim, z_dim, bias=False)
        self.norm = nn.BatchNorm1d(z_dim)  # fresh running stats (mean 0, var 1): eval mode leaves z as it is
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(z_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(z))[:, :, None, None].expand(-1, -1, 4, 4)


class ChannelClassifier:
    """Stand-in for the CelebA classifier: attribute i is sigmoid(sharpness * (channel i - offset_i))."""
    kind = "attributes"
    label_names = ATTRIBUTES

    def __init__(self, offsets: dict[str, float] | None = None, sharpness: float = 4.0):
        self.offsets = torch.tensor([(offsets or {}).get(k, 0.0) for k in ATTRIBUTES])
        self.sharpness = sharpness

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.mean((2, 3))[:, :len(ATTRIBUTES)]
        return torch.sigmoid(self.sharpness * (channels - self.offsets))


def _axis(name: str, i: int) -> Direction:
    v = torch.zeros(Z_DIM)
    v[i] = 1.0
    return Direction(name, v, 1.0, "attribute", name)


# ----------------------------------------------------------------------------------------------------------------
# the wanted-result rule and the interval

def test_wanted_result_of_the_shipped_presets():
    wanted = {name: em.wanted_result(name) for name in ARITHMETIC_PRESETS}
    assert wanted == {
        "smiling woman - neutral woman + neutral man": {"Smiling": True, "Male": True},
        "man with glasses - man without glasses + woman without glasses": {"Male": False, "Eyeglasses": True},
        "blond woman - black-haired woman + black-haired man": {"Blond_Hair": True, "Male": True},  # Black_Hair: A's, open
    }


@pytest.mark.parametrize("wants, expected", [
    (({"k": True}, {"k": False}, {"k": True}), {"k": True}),    # 1 - 0 + 1 saturates at 1
    (({"k": False}, {"k": True}, {"k": False}), {"k": False}),  # 0 - 1 + 0 saturates at 0
    (({"k": True}, {"k": True}, {"k": False}), {"k": False}),   # removed
    (({"k": True}, {"x": True}, {"x": True}), {"k": True}),    # k: 1 - u + u; x: u - 1 + 1 = u, open in A so open
])
def test_wanted_result_rule(wants, expected):
    assert em.wanted_result(wants) == expected


def test_wanted_result_with_one_open_group():
    assert em.wanted_result(({"k": True}, {"k": False}, {"o": True})) == {"k": True, "o": True}  # 1 - 0 + u >= 1; o: u - u + 1
    assert em.wanted_result(({"o": True}, {"k": True}, {"k": False})) == {"k": False, "o": True}  # u - 1 + 0 <= 0
    assert em.wanted_result(({"k": True}, {"k": True}, {"o": True})) == {"o": True}              # k: 1 - 1 + u = u, open
    with pytest.raises(LatentError):
        em.wanted_result(({"k": True}, {}, {"k": True}))
    with pytest.raises(LatentError, match="not one of"):
        em.wanted_result("no such preset")


def test_wilson_interval_known_values():
    assert em.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert em.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert em.wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert em.wilson_interval(81, 100) == pytest.approx((0.7222, 0.8749), abs=1e-4)
    assert em.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ConfigError):
        em.wilson_interval(11, 10)


# ----------------------------------------------------------------------------------------------------------------
# arithmetic success

SMALL = dict(draws=8, search=300, z_dim=Z_DIM)


def test_arithmetic_succeeds_when_every_attribute_is_a_coordinate():
    G, classifier = ChannelGenerator(), ChannelClassifier()
    scores = em.arithmetic_successes(G, classifier, list(ARITHMETIC_PRESETS), **SMALL)
    for name, s in zip(ARITHMETIC_PRESETS, scores):
        assert s["rate"] == 1.0 and s["successes"] == 8 and s["draws"] == 8, name
        assert s["wanted"] == em.wanted_result(name) and set(s["attributes"].values()) == {1.0}
        assert s["ci95"] == pytest.approx(list(em.wilson_interval(8, 8))) and s["seeds"] == [0, 8 * 300 - 1]
    assert em.arithmetic_success(G, classifier, "smiling woman - neutral woman + neutral man", **SMALL) == scores[0]


def test_an_attribute_the_generator_cannot_make_never_transfers():
    # Male needs channel 1 above 20: no N(0, 1) seed, and no mean(A) - mean(B) + mean(C) of three, gets there
    G, classifier = ChannelGenerator(), ChannelClassifier({"Male": 20.0})
    s = em.arithmetic_success(G, classifier, "smiling woman - neutral woman + neutral man", **SMALL)
    assert s["attributes"] == {"Smiling": 1.0, "Male": 0.0}
    assert s["rate"] == 0.0 and s["successes"] == 0 and s["ci95"][0] == 0.0 and s["mean_proba"]["Male"] < 1e-6


def test_result_boundaries_find_where_each_attribute_begins():
    # Male begins at channel 1 = 1.5, Smiling at channel 0 = 0: the fitted boundaries are those hyperplanes
    z_dim, search = 20, 4000
    G, classifier = ChannelGenerator(z_dim), ChannelClassifier({"Male": 1.5}, sharpness=20.0)
    proba = rate_latents(G, classifier, latents_from_seeds(list(range(search)), z_dim))
    preset = "smiling woman - neutral woman + neutral man"
    boundaries = preset_boundaries(proba, classifier, preset, z_dim=z_dim)
    assert len(boundaries) == 3 and all(b is boundaries[0] for b in boundaries)  # one result, fitted once
    normals, offsets = boundaries[0]  # columns: Smiling, Male (the result's order)
    assert normals.shape == (z_dim, 2) and float(normals[0, 0]) > 0.97 and float(normals[1, 1]) > 0.97
    assert offsets.tolist() == pytest.approx([0.0, -1.5], abs=0.15)
    # the glasses preset wants "not Male": the boundary turns round, the positive side being the wanted one
    normals, offsets = preset_boundaries(proba, classifier, "man with glasses - man without glasses + woman without glasses",
                                         z_dim=z_dim)[0]
    assert float(normals[1, 0]) < -0.97 and float(offsets[0]) == pytest.approx(1.5, abs=0.15)
    # picking from the boundaries fitted on this larger pool gives clear exemplars for a draw of 500 other seeds
    draw = rate_latents(G, classifier, latents_from_seeds(list(range(search, search + 500)), z_dim))
    picked = pick_from_ratings(draw, classifier, preset, z_dim=z_dim, seed_start=search, boundaries=boundaries)
    for group, want in zip(picked, ARITHMETIC_PRESETS[preset]):
        p = rate_latents(G, classifier, latents_from_seeds(group, z_dim))
        for k, v in want.items():
            column = ATTRIBUTES.index(k)
            assert ((p[:, column] >= 0.9) if v else (p[:, column] <= 0.1)).all(), (want, k)


def test_groups_whose_result_constrains_nothing_are_picked_alone():
    # k: 1 - u + 0 and j: u - 1 + u both depend on what B and A leave open: each group gets its own clear exemplars
    G, classifier = ChannelGenerator(), ChannelClassifier()
    wants = ({"Smiling": True}, {"Male": True}, {"Smiling": False})
    assert em.wanted_result(wants) == {}
    z = latents_from_seeds(list(range(300)), Z_DIM)
    a, b, c = (z[seeds] for seeds in pick_preset_seeds(G, classifier, wants, search=300, z_dim=Z_DIM))
    assert (a[:, 0] > 0.5).all() and (b[:, 1] > 0.5).all() and (c[:, 0] < -0.5).all()


def test_exemplars_lie_deep_along_what_they_bring_so_a_hard_attribute_transfers():
    # Male needs channel 1 above 1.5 and the classifier saturates: among clear neutral men every confidence ties at
    # ~1, so only the latents tell a deep exemplar from one just past the boundary. 100 dims, as the real G has.
    z_dim, search = 100, 1000
    G, classifier = ChannelGenerator(z_dim), ChannelClassifier({"Male": 1.5}, sharpness=50.0)
    preset = "smiling woman - neutral woman + neutral man"
    s = em.arithmetic_success(G, classifier, preset, draws=8, search=search, z_dim=z_dim)
    assert s["rate"] == 1.0 and s["mean_proba"]["Male"] > 0.99
    z = latents_from_seeds(list(range(search)), z_dim)
    proba = rate_latents(G, classifier, z)  # the boundaries' own pick (no G to check results with)
    a, b, c = (z[seeds] for seeds in pick_from_ratings(proba, classifier, preset, z_dim=z_dim))
    clear = math.log(9) / 50  # p = 0.9 lies this far past an offset
    smiling_women = z[(z[:, 0] > clear) & (z[:, 1] < 1.5 - clear)]
    neutral_women = z[(z[:, 0] < -clear) & (z[:, 1] < 1.5 - clear)]
    neutral_men = z[(z[:, 0] < -clear) & (z[:, 1] > 1.5 + clear)]
    for group, members in zip((a, b, c), (smiling_women, neutral_women, neutral_men)):  # clear members only
        assert all((members == row).all(1).any() for row in group)
    y = a.mean(0) - b.mean(0) + c.mean(0)
    typical = smiling_women.mean(0) - neutral_women.mean(0) + neutral_men.mean(0)
    assert float((y - typical)[:2].sum()) > 2.0  # smile and man both deeper than typical clear exemplars give
    assert (b[:, 0] + b[:, 1]).max() < -2.0      # B deep along both it brings (not smiling, not male)
    assert y.norm() < z.norm(dim=1).quantile(0.95)  # yet Y is no longer than latents usually are: where G was trained


class BandClassifier(ChannelClassifier):
    """Male only while channel 1 lies between ``low`` and ``high``: past it the "generator" makes no men any more,
    which no linear boundary in z fitted on typical seeds (few reach ``high``) can tell."""

    def __init__(self, low: float, high: float, sharpness: float = 8.0):
        super().__init__({"Male": low}, sharpness)
        self.high = high

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        p = super().predict_proba(x)
        p[:, 1] = p[:, 1] * torch.sigmoid(self.sharpness * (self.high - x.mean((2, 3))[:, 1]))
        return p


def test_rating_the_candidate_results_finds_one_the_boundaries_overshoot():
    G, classifier = ChannelGenerator(), BandClassifier(1.0, 2.5)
    preset, search = "smiling woman - neutral woman + neutral man", 300
    linear, checked = [], []
    for d in range(8):
        seeds = list(range(d * search, (d + 1) * search))
        proba = rate_latents(G, classifier, latents_from_seeds(seeds, Z_DIM))
        for picks, g in ((linear, None), (checked, G)):
            groups = pick_from_ratings(proba, classifier, preset, z_dim=Z_DIM, seed_start=d * search, G=g)
            for group, want in zip(groups, ARITHMETIC_PRESETS[preset]):  # either way, clear members of their group
                p = rate_latents(G, classifier, latents_from_seeds(group, Z_DIM))[:, [ATTRIBUTES.index(k) for k in want]]
                assert torch.where(torch.tensor(list(want.values())), p >= 0.9, p <= 0.1).all(), (d, want)
            a, b, c = (latents_from_seeds(group, Z_DIM) for group in groups)
            picks.append(float(rate_latents(G, classifier, (a.mean(0) - b.mean(0) + c.mean(0))[None])[0, 1]))
    assert sum(p >= 0.5 for p in linear) <= 2  # deepest along Male, the result passes the band
    assert min(checked) >= 0.5                 # some other mix lands within it, and the check keeps that one
    assert em.arithmetic_success(G, classifier, preset, **SMALL)["rate"] == 1.0  # the metric picks as the app does


def test_a_judge_scores_what_the_picking_classifier_picked():
    G, classifier = ChannelGenerator(), ChannelClassifier()
    blind = ChannelClassifier({"Male": 20.0})  # a second opinion that sees no man anywhere
    s = em.arithmetic_success(G, classifier, "smiling woman - neutral woman + neutral man", **SMALL, judge=blind)
    assert s["rate"] == 0.0 and s["attributes"] == {"Smiling": 1.0, "Male": 0.0}
    assert s["picker"] == {"successes": 8, "rate": 1.0, "attributes": {"Smiling": 1.0, "Male": 1.0}}
    assert "picker" not in em.arithmetic_success(G, classifier, "smiling woman - neutral woman + neutral man", **SMALL)
    other = ChannelClassifier()
    other.label_names = ATTRIBUTES[::-1]
    with pytest.raises(ConfigError, match="judge"):
        em.arithmetic_success(G, classifier, "smiling woman - neutral woman + neutral man", **SMALL, judge=other)


def test_arithmetic_is_deterministic_leaves_rng_and_mode_alone():
    G, classifier = ChannelGenerator(), ChannelClassifier()
    G.train()
    bn_state = {k: v.clone() for k, v in G.norm.state_dict().items()}
    rng = torch.get_rng_state()
    first = em.arithmetic_success(G, classifier, "blond woman - black-haired woman + black-haired man", **SMALL)
    assert torch.equal(torch.get_rng_state(), rng)
    assert G.training and all(torch.equal(v, G.norm.state_dict()[k]) for k, v in bn_state.items())  # eval mode inside
    torch.manual_seed(1234)  # another global RNG state changes nothing
    assert em.arithmetic_success(G, classifier, "blond woman - black-haired woman + black-haired man", **SMALL) == first
    assert first["rate"] == 1.0


def test_arithmetic_refuses_bad_arguments():
    G, classifier = ChannelGenerator(), ChannelClassifier()
    for bad in (dict(draws=0), dict(search=2, count=3), dict(draws=True)):
        with pytest.raises(ConfigError):
            em.arithmetic_success(G, classifier, "smiling woman - neutral woman + neutral man", **{**SMALL, **bad})
    classes = ChannelClassifier()
    classes.kind = "classes"
    with pytest.raises(ConfigError, match="attribute classifier"):
        em.arithmetic_success(G, classes, "smiling woman - neutral woman + neutral man", **SMALL)
    assert em.presets_for(classes) == [] and em.presets_for(classifier) == list(ARITHMETIC_PRESETS)
    assert em.preset_attributes(list(ARITHMETIC_PRESETS)) == ["Smiling", "Male", "Eyeglasses", "Blond_Hair", "Black_Hair"]


# ----------------------------------------------------------------------------------------------------------------
# slider success

def test_slider_success_along_and_across_the_attribute():
    G, classifier = ChannelGenerator(), ChannelClassifier()
    along, across = _axis("Smiling", 0), Direction("Male", torch.eye(Z_DIM)[Z_DIM - 1], 1.0, "attribute", "Male")
    rng = torch.get_rng_state()
    s = em.slider_success(G, classifier, [along, across], amount=10.0, n=400, z_dim=Z_DIM)
    assert torch.equal(torch.get_rng_state(), rng)
    smiling, male = s["directions"]["Smiling"], s["directions"]["Male"]
    assert 150 < smiling["without"] < 250 and smiling["gained"] == smiling["without"] and smiling["rate"] == 1.0
    assert 150 < male["without"] < 250 and male["gained"] == 0 and male["rate"] == 0.0  # moved along an unread coordinate
    assert s["amount"] == 10.0 and s["n"] == 400 and s["seeds"] == [0, 399]
    assert em.slider_success(G, classifier, [along, across], amount=10.0, n=400, z_dim=Z_DIM) == s
    shifted = em.slider_success(G, classifier, [along], amount=10.0, n=400, seed=400, z_dim=Z_DIM)
    assert shifted["seeds"] == [400, 799] and shifted["directions"]["Smiling"]["rate"] == 1.0


def test_slider_success_at_the_default_amount_and_when_nobody_lacks_it():
    G = ChannelGenerator()
    s = em.slider_success(G, ChannelClassifier(), [_axis("Smiling", 0)], n=300, z_dim=Z_DIM)
    assert s["amount"] == 3.0 and 0.95 < s["directions"]["Smiling"]["rate"] <= 1.0  # only seeds below -3 stay without
    everyone = em.slider_success(G, ChannelClassifier({"Smiling": -20.0}), [_axis("Smiling", 0)], n=50, z_dim=Z_DIM)
    assert everyone["directions"]["Smiling"] == {"without": 0, "gained": 0, "rate": None, "ci95": [0.0, 1.0]}
    with pytest.raises(ConfigError):
        em.slider_success(G, ChannelClassifier(), [_axis("Smiling", 0)], amount=math.inf, z_dim=Z_DIM)
    with pytest.raises(LatentError, match="not among"):
        em.slider_success(G, ChannelClassifier(), [_axis("Bald", 0)], z_dim=Z_DIM)


# ----------------------------------------------------------------------------------------------------------------
# the CLI

def test_eval_arithmetic_refuses_a_class_classifier(tiny_ckpt, capsys):
    assert cli.main(["eval", str(tiny_ckpt), "--dataset", "mnist", "--arithmetic", "--draws", "2"]) == 2
    err = capsys.readouterr().err
    assert "mnist has a class classifier and no arithmetic presets" in err and "celeba" in err


def test_eval_arithmetic_options_need_the_flag(tiny_ckpt, capsys):
    assert cli.main(["eval", str(tiny_ckpt), "--dataset", "mnist", "--draws", "5"]) == 2
    assert "--draws only mean something with --arithmetic" in capsys.readouterr().err
    assert cli.main(["eval", str(tiny_ckpt), "--dataset", "celeba", "--arithmetic", "--draws", "0"]) == 2
    assert "--draws 0" in capsys.readouterr().err
