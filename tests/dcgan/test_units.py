"""dcgan.units: guided backprop agrees with autograd on a rectifier-free toy and only passes positive signals
through rectifiers; receptive boxes match the input-gradient support; top patches are the strongest responses."""
import pytest
import torch
from torch import nn

from dcgan.config import ModelConfig
from dcgan.errors import ConfigError
from dcgan.models import build_discriminator
from dcgan.units import Box, check_unit, crop_patch, forward_to, guided_backprop, receptive_box, top_patches, top_units, unit_responses


class Toy(nn.Module):
    """A D-shaped net without rectifiers: guided backprop has nothing to modify."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.main = nn.Sequential(nn.Conv2d(1, 3, 4, 2, 1), nn.BatchNorm2d(3), nn.Conv2d(3, 5, 4, 2, 1), nn.Conv2d(5, 1, 4, 1, 0))


def test_guided_backprop_is_the_input_gradient_without_rectifiers():
    net = Toy().eval()
    x = torch.randn(3, 1, 16, 16, requires_grad=True)
    net.main[:3](x)[:, 2].flatten(1).amax(1).sum().backward()
    torch.testing.assert_close(guided_backprop(net, x, net.main[2], 2), x.grad, rtol=0, atol=0)


def test_guided_backprop_through_a_rectifier_keeps_only_positive_signals():
    net = nn.Module()
    net.main = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.LeakyReLU(0.2), nn.Conv2d(1, 1, 1, bias=False))
    with torch.no_grad():
        net.main[0].weight.fill_(1.0)
        net.main[2].weight.fill_(-2.0)  # the gradient reaching the rectifier is negative: guided backprop stops it
    x = torch.tensor([[[[1.0, -3.0]]]])
    assert torch.equal(guided_backprop(net, x, net.main[2], 0), torch.zeros_like(x))
    with torch.no_grad():
        net.main[2].weight.fill_(2.0)
    # unit = max over space = position 0 (x=1 > 0: slope 1); position 1 is not the maximum and gets nothing
    assert torch.equal(guided_backprop(net, x, net.main[2], 0), torch.tensor([[[[2.0, 0.0]]]]))


def test_guided_maps_have_the_image_shape_and_leave_d_as_it_was():
    model = ModelConfig(image_size=32, channels=3, ndf=4, d_norm="spectral")
    D = build_discriminator(model).train()
    before = {k: v.clone() for k, v in D.state_dict().items()}
    g = guided_backprop(D, torch.randn(2, 3, 32, 32), check_unit(D, 2), 5)
    assert g.shape == (2, 3, 32, 32) and g.abs().sum() > 0 and D.training
    assert all(torch.equal(before[k], v) for k, v in D.state_dict().items())


def test_layers_and_units_are_bounded():
    D = build_discriminator(ModelConfig(image_size=32, channels=1, ndf=4))
    with pytest.raises(ConfigError, match="hidden layers 0-2"):
        check_unit(D, 3)
    with pytest.raises(ConfigError, match="units 0-15"):
        check_unit(D, 2, 16)
    with pytest.raises(ConfigError, match="units 0-3"):
        check_unit(D, 0, -1)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_receptive_boxes_match_the_gradient_support(layer):
    D = build_discriminator(ModelConfig(image_size=32, channels=1, ndf=4)).eval()
    x = torch.randn(1, 1, 32, 32, requires_grad=True)
    out = forward_to(D, x, check_unit(D, layer))
    row, col = out.shape[-1] // 2, 1
    out[0, 0, row, col].backward()
    rows, cols = x.grad[0, 0].abs().sum(1).nonzero().flatten(), x.grad[0, 0].abs().sum(0).nonzero().flatten()
    box = receptive_box(D, layer, row, col)
    assert (max(box.top, 0), min(box.top + box.size, 32) - 1) == (int(rows[0]), int(rows[-1]))
    assert (max(box.left, 0), min(box.left + box.size, 32) - 1) == (int(cols[0]), int(cols[-1]))
    assert box.size == [4, 10, 22][layer]


def test_crop_patch_pads_outside_the_image():
    x = torch.arange(16.0).view(1, 4, 4)
    patch = crop_patch(x, Box(-1, 2, 3))
    assert patch.shape == (1, 3, 3)
    assert patch[0, 0].tolist() == [-1, -1, -1] and patch[0, 1].tolist() == [2, 3, -1] and patch[0, 2].tolist() == [6, 7, -1]


def test_top_patches_come_from_the_strongest_images():
    D = build_discriminator(ModelConfig(image_size=16, channels=1, ndf=4)).eval()
    x = torch.rand(20, 1, 16, 16) * 2 - 1
    maxima, positions = unit_responses(D, x, 1)
    assert maxima.shape == positions.shape == (20, 8)
    units = top_units(maxima, 3)
    assert len(set(units)) == 3
    patches, indices = top_patches(D, x, 1, units, 4, responses=(maxima, positions))
    assert patches.shape == (3, 4, 1, 10, 10) and indices.shape == (3, 4)
    for u, unit in enumerate(units):
        assert indices[u].tolist() == maxima[:, unit].topk(4).indices.tolist()
        assert maxima[indices[u, 0], unit] == maxima[:, unit].max()
