import math

import pytest
import torch

from dcgan.errors import LatentError
from dcgan.latent import (
    arithmetic,
    arithmetic_variants,
    interpolate_path,
    latent_from_seed,
    latents_from_seeds,
    lerp,
    parse_seeds,
    slerp,
    truncate,
)


def test_seed_contract_is_torch_generator_randn():
    expected = torch.randn(100, generator=torch.Generator().manual_seed(42))
    torch.testing.assert_close(latent_from_seed(42, 100), expected, rtol=0, atol=0)


def test_seed_is_independent_of_batch_and_global_rng():
    torch.manual_seed(0)
    a = latents_from_seeds([5, 42, 7], 100)[1]
    torch.manual_seed(999)
    b = latents_from_seeds([42], 100)[0]
    assert torch.equal(a, b)
    assert not torch.equal(latent_from_seed(1, 100), latent_from_seed(2, 100))


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "3", True])
def test_invalid_seed(bad):
    with pytest.raises(LatentError):
        latent_from_seed(bad, 10)


@pytest.mark.parametrize("text,seeds", [("0-3", [0, 1, 2, 3]), ("3,7,42", [3, 7, 42]), (" 0 - 1 , 9 ", [0, 1, 9]), ("5", [5])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("bad", ["", "a", "3-1", "1,,2", "0-100000", "-3", "1.5", "99999999999"])
def test_parse_seeds_rejects(bad):
    with pytest.raises(LatentError):
        parse_seeds(bad)


def test_slerp_endpoints_and_norm():
    a, b = latent_from_seed(0, 100), latent_from_seed(1, 100)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    c = slerp(a * 2, b * 2, 0.5)
    assert math.isclose(c.norm().item(), (a * 2).norm().item() * 0.5 + (b * 2).norm().item() * 0.5, rel_tol=1e-5)
    same = slerp(a, a, 0.3)  # parallel vectors do not divide by zero
    torch.testing.assert_close(same, a)


def test_slerp_stays_on_shell_lerp_does_not():
    a, b = latent_from_seed(3, 100), latent_from_seed(4, 100)
    b = b / b.norm() * a.norm()
    assert slerp(a, b, 0.5).norm() == pytest.approx(a.norm().item(), rel=1e-5)
    assert lerp(a, b, 0.5).norm() < 0.8 * a.norm()


def test_interpolate_path_frame_counts():
    keys = latents_from_seeds([0, 1, 2], 16)
    open_path = interpolate_path(keys, 8)
    assert open_path.shape == (2 * 8 + 1, 16)
    torch.testing.assert_close(open_path[0], keys[0])
    torch.testing.assert_close(open_path[-1], keys[-1])
    torch.testing.assert_close(open_path[8], keys[1])
    loop = interpolate_path(keys, 8, method="linear", loop=True)
    assert loop.shape == (3 * 8, 16)
    with pytest.raises(LatentError):
        interpolate_path(keys[:1], 8)
    with pytest.raises(LatentError):
        interpolate_path(keys, 8, method="cubic")


def test_arithmetic_is_mean_a_minus_mean_b_plus_mean_c():
    a, b, c = latents_from_seeds([1, 2, 3], 8), latents_from_seeds([4, 5], 8), latents_from_seeds([6], 8)
    torch.testing.assert_close(arithmetic(a, b, c), a.mean(0) - b.mean(0) + c.mean(0))
    with pytest.raises(LatentError):
        arithmetic(a, b[:0], c)


def test_arithmetic_variants_centre_and_noise_bounds():
    y = latent_from_seed(0, 32)
    grid = arithmetic_variants(y, noise=0.25, seed=7)
    assert grid.shape == (9, 32)
    torch.testing.assert_close(grid[4], y)
    assert (grid - y).abs().max() <= 0.25
    assert torch.equal(grid, arithmetic_variants(y, noise=0.25, seed=7))
    assert not torch.equal(grid, arithmetic_variants(y, noise=0.25, seed=8))


def test_truncation():
    z = latent_from_seed(0, 8)
    torch.testing.assert_close(truncate(z, 0.5), z * 0.5)
    with pytest.raises(LatentError):
        truncate(z, 1.5)


def test_seed_lists_refuse_numbers_with_thousands_of_digits():
    with pytest.raises(LatentError, match="above the largest seed") as info:
        parse_seeds("1" * 5000)
    assert len(str(info.value)) < 300
    assert parse_seeds("0000000000007") == [7]  # leading zeros are not digits of size
