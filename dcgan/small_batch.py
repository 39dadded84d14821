"""Frozen networks for the projection's small batches on a CPU: batch norms folded away, and each convolution run
by whichever of two kernel families is faster for it on the machine at hand.

oneDNN, PyTorch's default CPU convolutions, is tuned for training batches. For one image it can lose to PyTorch's
own im2col/col2im + GEMM kernels: on a 2-core AMD Zen 3, celeba-64's 512 -> 256 transposed convolution (4x4 -> 8x8)
took 3.4 ms forward and input-backward at batch 1 with oneDNN and 2.2 ms with the native kernels, while its
128 -> 64 layer went the other way (1.3 against 1.6 ms), and at batch 25 the native kernels were 2x slower
throughout. So `tune`, like cudnn.benchmark, times both on the shapes at hand, layer by layer, and each layer keeps
the faster one for that batch size. The global switch (torch.backends.mkldnn) would change every other request a
server runs at the same time, so the native layers call their kernels themselves. Weights get no gradient here.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

MAX_TUNED_BATCH = 8     # larger batches keep oneDNN: the native kernels measured 2x slower at 25 images
TIMED_RUNS = 5          # per kernel and layer; the fastest run counts
NATIVE_MARGIN = 0.95    # the native kernels must be at least 5% faster to be used (ties keep the default)


def fold_batch_norms(net: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``net`` with every BatchNorm2d that follows a convolution in an nn.Sequential
    folded into that convolution's weights (the norm's place holds an Identity, so layer names stay): the same outputs
    to ~1e-6, two fewer passes over each activation."""
    net = copy.deepcopy(net).eval().requires_grad_(False)
    for parent in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        names = list(parent._modules)
        for name, after in zip(names, names[1:]):
            layer, norm = parent._modules[name], parent._modules[after]
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(norm, nn.BatchNorm2d):
                parent._modules[name] = fuse_conv_bn_eval(layer, norm, transpose=isinstance(layer, nn.ConvTranspose2d))
                parent._modules[after] = nn.Identity()
    return net


class _NativeConvTranspose2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(weight)
        ctx.stride, ctx.padding = stride, padding
        return torch._C._nn.slow_conv_transpose2d(x, weight, weight.shape[2:], bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):  # the input's gradient is a plain convolution with the same weights
        (weight,) = ctx.saved_tensors
        grad_x = torch._C._nn.thnn_conv2d(grad.contiguous(), weight, weight.shape[2:], None, ctx.stride, ctx.padding)
        return grad_x, None, None, None, None


class _NativeConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(weight)
        ctx.stride, ctx.padding, ctx.input_side = stride, padding, x.shape[2:]
        return torch._C._nn.thnn_conv2d(x.contiguous(), weight, weight.shape[2:], bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):  # the input's gradient is a transposed convolution with the same weights
        (weight,) = ctx.saved_tensors
        side = [(g - 1) * s - 2 * p + k for g, s, p, k in zip(grad.shape[2:], ctx.stride, ctx.padding, weight.shape[2:])]
        extra = [i - o for i, o in zip(ctx.input_side, side)]  # rows a strided convolution skipped at the far edge
        grad_x = torch._C._nn.slow_conv_transpose2d(grad.contiguous(), weight, weight.shape[2:], None, ctx.stride, ctx.padding,
                                                    extra)
        return grad_x, None, None, None, None


class TunedConv(nn.Module):
    """A frozen Conv2d or ConvTranspose2d that runs PyTorch's native kernels for the batch sizes in ``native``."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d):
        super().__init__()
        self.conv = conv
        self.native: set[int] = set()

    def use_native(self, batch: int, on: bool) -> None:
        (self.native.add if on else self.native.discard)(batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] not in self.native:
            return self.conv(x)
        kernel = _NativeConvTranspose2d if isinstance(self.conv, nn.ConvTranspose2d) else _NativeConv2d
        return kernel.apply(x, self.conv.weight, self.conv.bias, self.conv.stride, self.conv.padding)


def _tunable(conv: nn.Conv2d | nn.ConvTranspose2d) -> bool:
    plain = (conv.groups == 1 and tuple(conv.dilation) == (1, 1) and conv.padding_mode == "zeros"
             and not isinstance(conv.padding, str))
    return plain and (not isinstance(conv, nn.ConvTranspose2d) or tuple(conv.output_padding) == (0, 0))


def tunable(net: nn.Module) -> nn.Module:
    """``net`` (frozen, changed in place) with each plain convolution wrapped in a TunedConv."""
    net.requires_grad_(False)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)) and _tunable(child):
                setattr(parent, name, TunedConv(child))
    return net


def _seconds(layer: TunedConv, x: torch.Tensor, grad: torch.Tensor, native: bool) -> float:
    layer.use_native(x.shape[0], native)
    best = float("inf")
    for run in range(TIMED_RUNS + 1):  # the first run warms the kernel's caches up
        start = time.perf_counter()
        torch.autograd.grad(layer(x), x, grad)
        if run:
            best = min(best, time.perf_counter() - start)
    return best


def tune(net: nn.Module, run: Callable[[], Any]) -> dict[str, bool]:
    """Time each TunedConv of ``net`` on the input ``run()`` gives it (forward and input-backward, both kernel
    families) and keep the faster for that batch size. CPU, float32 and batches up to MAX_TUNED_BATCH only; a
    layer seen with several batch sizes is tuned for each. Returns {layer name: uses the native kernels}."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda m, args, name=name: seen.setdefault(name, args[0].detach()))
             for name, m in net.named_modules() if isinstance(m, TunedConv)]
    try:
        with torch.no_grad():
            run()
    finally:
        for hook in hooks:
            hook.remove()
    layers = dict(net.named_modules())
    chosen = {}
    for name, x in seen.items():
        layer = layers[name]
        if x.device.type != "cpu" or x.dtype != torch.float32 or x.shape[0] > MAX_TUNED_BATCH:
            continue
        with torch.enable_grad():
            x = x.clone().requires_grad_(True)
            grad = torch.randn_like(layer(x))
            default, native = _seconds(layer, x, grad, False), _seconds(layer, x, grad, True)
        chosen[name] = native < NATIVE_MARGIN * default
        layer.use_native(x.shape[0], chosen[name])
    return chosen
