"""The projection's frozen networks: folded batch norms and the native kernels give the default path's numbers."""
import pytest
import torch
from torch import nn

from dcgan import small_batch
from dcgan.config import ModelConfig
from dcgan.models import build_generator
from dcgan.small_batch import MAX_TUNED_BATCH, TunedConv, fold_batch_norms, tunable, tune


def _generator_with_statistics(arch: str = "dcgan") -> nn.Module:
    """A small G whose batch norms hold non-trivial running statistics and affine weights (as a trained one does)."""
    torch.manual_seed(0)
    G = build_generator(ModelConfig(arch=arch, image_size=28 if arch == "keras" else 32, channels=1, z_dim=16, ngf=8))
    for m in G.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    return G.eval()


@pytest.mark.parametrize("arch", ["dcgan", "keras"])
def test_folded_generator_gives_the_same_images_and_leaves_the_original_alone(arch):
    G = _generator_with_statistics(arch)
    folded = fold_batch_norms(G)
    z = torch.randn(5, 16)
    with torch.no_grad():
        assert torch.allclose(folded(z), G(z), atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in G.modules())
    assert all(p.requires_grad for p in G.parameters()) and not any(p.requires_grad for p in folded.parameters())


def test_folding_keeps_layer_names_and_indices():
    from collections import OrderedDict

    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), norm=nn.BatchNorm2d(4), act=nn.ReLU(), pool=nn.MaxPool2d(2))).eval()
    net.norm.running_var.fill_(4.0)
    folded = fold_batch_norms(net)
    assert list(folded._modules) == ["conv", "norm", "act", "pool"] and isinstance(folded.norm, nn.Identity)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-6)


@pytest.mark.parametrize("conv, side", [
    (nn.ConvTranspose2d(6, 4, 4, 2, 1), 5),
    (nn.ConvTranspose2d(6, 4, 4, 1, 0, bias=False), 1),
    (nn.Conv2d(6, 4, 3, 1, 1), 7),
    (nn.Conv2d(6, 4, 3, 2, 1), 7),   # odd side, stride 2: the input gradient needs the far edge row back
    (nn.Conv2d(6, 4, 4, 2, 1, bias=False), 8),
])
def test_native_kernels_match_the_default_forward_and_input_gradient(conv, side):
    layer = TunedConv(conv.requires_grad_(False))
    x = torch.randn(2, 6, side, side, requires_grad=True)
    default = layer(x)
    (g_default,) = torch.autograd.grad(default, x, torch.ones_like(default) * torch.arange(default.numel()).view_as(default) % 7)
    layer.native.add(2)
    native = layer(x)
    (g_native,) = torch.autograd.grad(native, x, torch.ones_like(native) * torch.arange(native.numel()).view_as(native) % 7)
    assert native.shape == default.shape and torch.allclose(native, default, atol=1e-5)
    assert g_native.shape == x.shape and torch.allclose(g_native, g_default, atol=1e-4)
    layer.native.clear()
    assert torch.equal(layer(x), default)  # other batch sizes keep oneDNN


def test_tunable_wraps_plain_convolutions_only():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, groups=2),
                        nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.ConvTranspose2d(4, 2, 4, 2, 1, output_padding=1),
                        nn.ConvTranspose2d(2, 2, 4, 2, 1))
    wrapped = tunable(net)
    assert [type(m).__name__ for m in wrapped] == ["TunedConv", "Conv2d", "Conv2d", "ConvTranspose2d", "TunedConv"]
    assert not any(p.requires_grad for p in wrapped.parameters())


def test_tune_keeps_the_faster_kernel_per_layer_and_batch_size(monkeypatch):
    G = tunable(fold_batch_norms(_generator_with_statistics()))
    layers = [name for name, m in G.named_modules() if isinstance(m, TunedConv)]
    slow_native = {layers[1]}  # pretend the native kernels lose on this layer only

    def seconds(layer, x, grad, native):
        name = next(n for n, m in G.named_modules() if m is layer)
        return 1.0 if not native else (2.0 if name in slow_native else 0.5)

    monkeypatch.setattr(small_batch, "_seconds", seconds)
    z = torch.randn(1, 16)
    chosen = tune(G, lambda: G(z))
    assert chosen == {name: name not in slow_native for name in layers}
    modules = dict(G.named_modules())
    assert all((1 in modules[name].native) == chosen[name] for name in layers)
    assert all(2 not in modules[name].native for name in layers)
    big = torch.randn(MAX_TUNED_BATCH + 1, 16)
    assert tune(G, lambda: G(big)) == {}  # large batches keep oneDNN without timing anything


@pytest.mark.parametrize("native_seconds, chosen", [(0.97, False), (0.9, True)])
def test_tune_needs_a_clear_win_for_the_native_kernels(monkeypatch, native_seconds, chosen):
    G = tunable(fold_batch_norms(_generator_with_statistics()))
    monkeypatch.setattr(small_batch, "_seconds", lambda layer, x, grad, native: native_seconds if native else 1.0)
    z = torch.randn(1, 16)
    assert set(tune(G, lambda: G(z)).values()) == {chosen}  # 3% faster is noise: the default stays


def test_tune_with_real_timings_leaves_the_images_unchanged():
    G = tunable(fold_batch_norms(_generator_with_statistics()))
    z = torch.randn(1, 16)
    with torch.no_grad():
        before = G(z)
    chosen = tune(G, lambda: G(z))
    assert set(chosen) == {name for name, m in G.named_modules() if isinstance(m, TunedConv)}
    with torch.no_grad():
        assert torch.allclose(G(z), before, atol=1e-5)
