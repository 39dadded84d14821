"""The paper's §6.2: what D's units respond to. The images (and patches: each unit's receptive field at its
strongest location) that activate a hidden unit most, and guided-backpropagation maps (Springenberg et al. 2014)
of a unit on one image.

Layers are D's hidden conv layers as the probe reads them (dcgan.probe.hidden_activations: the output of each
hidden conv's nonlinearity); a unit is one channel of a layer, and its response to an image is the channel's
spatial maximum.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .probe import ACTIVATIONS, hidden_activations


def _slope(module: nn.Module) -> float:
    return module.negative_slope if isinstance(module, nn.LeakyReLU) else 0.0


class _GuidedRectifier(torch.autograd.Function):
    """(Leaky) ReLU whose backward pass lets only positive gradients through where the input was positive
    (guided backprop: the ReLU's own mask times the deconvnet's mask on the signal; a leaky unit keeps its slope)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        return F.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        local = torch.where(x > 0, torch.ones_like(x), torch.full_like(x, ctx.slope))
        return grad.clamp_min(0) * local, None


def check_unit(D: nn.Module, layer: int, unit: int | None = None) -> nn.Module:
    """The activation module of hidden ``layer``; ConfigError naming the valid ranges for a bad layer or unit."""
    layers = hidden_activations(D)
    if not isinstance(layer, int) or not 0 <= layer < len(layers):
        raise ConfigError(f"layer {layer!r}: D has hidden layers 0-{len(layers) - 1}")
    if unit is not None:
        width = _layer_widths(D)[layer]
        if not isinstance(unit, int) or not 0 <= unit < width:
            raise ConfigError(f"unit {unit!r}: layer {layer} has units 0-{width - 1}")
    return layers[layer]


def _layer_widths(D: nn.Module) -> list[int]:
    """Channels of each hidden layer: the out_channels of the last conv before each activation."""
    widths, last = [], None
    for m in D.main:
        if isinstance(m, nn.Conv2d):
            last = m.out_channels
        elif isinstance(m, ACTIVATIONS):
            widths.append(last)
    return widths


def forward_to(D: nn.Module, x: torch.Tensor, target: nn.Module, *, guided: bool = False) -> torch.Tensor:
    """Run D.main on x up to and including module ``target``; with ``guided``, every rectifier is a guided one."""
    h = x
    for m in D.main:
        if isinstance(m, ACTIVATIONS):
            h = _GuidedRectifier.apply(h, _slope(m)) if guided else F.leaky_relu(h, _slope(m))  # never in place: autograd needs h
        else:
            h = m(h)
        if m is target:
            return h
    raise ValueError("target is not a module of D.main")


def guided_backprop(D: nn.Module, x: torch.Tensor, target: nn.Module, unit: int) -> torch.Tensor:
    """Guided-backprop map of channel ``unit`` of ``target``'s output (its spatial maximum per image) with respect
    to x [N, C, H, W]: a tensor of x's shape. Through a net without rectifiers it is the plain input gradient."""
    was_training = D.training
    D.eval()
    x = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = forward_to(D, x, target, guided=True)
            out[:, unit].flatten(1).amax(1).sum().backward()
    finally:
        D.train(was_training)
    return x.grad.detach()


@torch.no_grad()
def unit_responses(D: nn.Module, x: torch.Tensor, layer: int, *, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(maxima [N, C], flat positions [N, C]) of every unit of hidden ``layer``: each channel's spatial maximum and where."""
    target = check_unit(D, layer)
    device = next(D.parameters()).device
    values, positions = [], []
    for chunk in x.split(batch_size):
        out = forward_to(D, chunk.to(device), target).flatten(2)
        best = out.max(2)
        values.append(best.values.float().cpu())
        positions.append(best.indices.cpu())
    return torch.cat(values), torch.cat(positions)


def top_units(maxima: torch.Tensor, count: int, *, per_unit: int = 8) -> list[int]:
    """The ``count`` units whose ``per_unit`` strongest responses over the pool are largest (units that fire hard on some images)."""
    strongest = maxima.topk(min(per_unit, len(maxima)), dim=0).values.mean(0)
    return strongest.topk(min(count, maxima.shape[1])).indices.tolist()


@dataclass(frozen=True)
class Box:
    top: int
    left: int
    size: int  # side of the receptive field; the box may reach outside the image (padding)


def receptive_box(D: nn.Module, layer: int, row: int, col: int) -> Box:
    """The input window that unit position (row, col) of hidden ``layer`` sees, from its convs' kernels, strides
    and paddings (exact for D's conv stacks; right/bottom-only zero padding shifts nothing)."""
    target = check_unit(D, layer)
    convs = []
    for m in D.main:
        if isinstance(m, nn.Conv2d):
            convs.append(m)
        if m is target:
            break
    top, bottom, left, right = row, row, col, col
    for conv in reversed(convs):
        (k, _), (s, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
        top, bottom = top * s - p, bottom * s - p + k - 1
        left, right = left * s - p, right * s - p + k - 1
    return Box(top, left, bottom - top + 1)


def crop_patch(x: torch.Tensor, box: Box, fill: float = -1.0) -> torch.Tensor:
    """The box of one image x [C, H, W] as [C, size, size], with ``fill`` where the box leaves the image."""
    c, h, w = x.shape
    patch = x.new_full((c, box.size, box.size), fill)
    top, left = max(box.top, 0), max(box.left, 0)
    bottom, right = min(box.top + box.size, h), min(box.left + box.size, w)
    if bottom > top and right > left:
        patch[:, top - box.top: bottom - box.top, left - box.left: right - box.left] = x[:, top:bottom, left:right]
    return patch


def top_patches(D: nn.Module, x: torch.Tensor, layer: int, units: list[int], k: int,
                responses: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(patches [len(units), k, C, S, S], image indices [len(units), k]): for each unit the receptive-field windows
    of the k images in the pool x [N, C, H, W] that activate it most, at the location where it fires."""
    maxima, positions = responses if responses is not None else unit_responses(D, x, layer)
    side = int(forward_to(D, x[:1].to(next(D.parameters()).device), check_unit(D, layer)).shape[-1])
    k = min(k, len(x))
    patches, indices = [], []
    for unit in units:
        check_unit(D, layer, unit)
        best = maxima[:, unit].topk(k).indices
        row = []
        for i in best.tolist():
            r, c = divmod(int(positions[i, unit]), side)
            row.append(crop_patch(x[i].cpu(), receptive_box(D, layer, r, c)))
        patches.append(torch.stack(row))
        indices.append(best)
    return torch.stack(patches), torch.stack(indices)
