"""DiffAugment and flips: shapes, what each transform does, differentiability, reproducibility from the generator."""
import pytest
import torch

from dcgan.augment import color, cutout, diff_augment, random_flip, translation
from dcgan.config import TrainConfig, parse_augment
from dcgan.errors import ConfigError


def batch(n=8, c=3, side=16, seed=0):
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_policies_parse_in_the_papers_order_and_refuse_unknown_names():
    assert parse_augment("cutout,color,translation") == ["color", "translation", "cutout"]
    assert parse_augment("") == [] and parse_augment("translation") == ["translation"]
    with pytest.raises(ConfigError, match="not among"):
        parse_augment("color,rotate")
    with pytest.raises(ConfigError, match="twice"):
        parse_augment("color,color")
    with pytest.raises(ConfigError, match="not among"):
        TrainConfig.from_dict({"augment": "colour"})
    with pytest.raises(ConfigError, match="auto, on or off"):
        TrainConfig.from_dict({"flip": "sometimes"})


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_shapes_kept_gradients_flow_and_the_generator_decides(policy):
    x = batch().requires_grad_(True)
    y = diff_augment(x, parse_augment(policy), gen(1))
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = diff_augment(x.detach(), parse_augment(policy), gen(1))
    other = diff_augment(x.detach(), parse_augment(policy), gen(2))
    assert torch.equal(y.detach(), again) and not torch.equal(again, other)


def test_translation_shifts_whole_pixels_and_fills_with_zeros():
    x = batch(n=64, c=1)
    y = translation(x, gen(3))
    for a, b in zip(x[:, 0], y[:, 0]):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)  # 16 px * 1/8 = up to 2 px
                 if torch.equal(b, torch.roll(torch.nn.functional.pad(a, (2, 2, 2, 2)), (-dy, -dx), (0, 1))[2:-2, 2:-2])]
        assert found, "each output is its input shifted by at most 2 px with zeros shifted in"


def test_cutout_erases_one_square_of_half_the_side():
    y = cutout(torch.ones(256, 1, 16, 16), gen(4))
    erased = (y == 0).float().sum((1, 2, 3))
    assert erased.max() == 64 and erased.min() > 0  # an 8x8 square, fully inside or hanging over the edge
    assert ((y == 0) | (y == 1)).all()


def test_color_changes_each_image_by_its_own_amounts():
    x = batch(n=32)
    y = color(x, gen(5))
    shift = (y - x).mean((1, 2, 3))
    assert shift.std() > 0.05  # brightness is drawn per image
    grey = color(batch(n=4, c=1), gen(5))
    assert grey.shape == (4, 1, 16, 16)  # no saturation step without colour


def test_flip_mirrors_about_half_the_images():
    x = batch(n=200)
    y = random_flip(x, gen(6))
    flipped = [torch.equal(b, a.flip(-1)) for a, b in zip(x, y)]
    kept = [torch.equal(b, a) for a, b in zip(x, y)]
    assert all(f or k for f, k in zip(flipped, kept)) and 70 < sum(flipped) < 130
