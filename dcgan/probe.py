"""The paper's §5: D as a feature extractor. Every conv layer of D, max-pooled to a 4x4 grid, flattened and
concatenated, under an L2-regularised logistic regression trained on a few labelled images; beside the same
architecture with random weights and raw pixels, so the score says what training D added.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .datasets import ImageData, batch_to_float
from .errors import ConfigError
from .models import build_discriminator

log = logging.getLogger(__name__)

POOL_SIDE = 4                             # the paper's 4x4 grid per layer
DRAWS = 5                                 # class-balanced draws of the labelled images per label count
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)   # L2 strengths tried; the one best on a held-out fifth of the labelled draw is refitted
SELECT_MAX = 10_000                       # images the L2 strength is chosen on (a class-balanced subset beyond this)
MAX_ITER = 200                            # L-BFGS iterations per fit (the 'all' fits on 60k MNIST images stop here)
FEATURE_KINDS = ("trained", "random", "pixels")
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)


# ----------------------------------------------------------------------------------------------------------------
# features

def hidden_activations(D: nn.Module) -> list[nn.Module]:
    """D's nonlinearities after each hidden conv layer, in order: the outputs the probe and dcgan.units read."""
    return [m for m in D.main if isinstance(m, ACTIVATIONS)]


def layer_shapes(model: ModelConfig) -> list[tuple[int, int]]:
    """(channels, side) of each hidden layer of the D of ``model``, measured on the meta device (no memory, no compute)."""
    shapes: list[tuple[int, int]] = []
    with torch.device("meta"):
        D = build_discriminator(model).eval()
    for m in hidden_activations(D):
        m.register_forward_hook(lambda _m, _i, out: shapes.append((out.shape[1], out.shape[-1])))
    with torch.no_grad():
        D(torch.empty(1, model.channels, model.image_size, model.image_size, device="meta"))
    return shapes


@torch.no_grad()
def pooled_features(D: nn.Module, x: torch.Tensor, *, side: int = POOL_SIDE, batch_size: int = 500) -> torch.Tensor:
    """x [N, C, H, W] in [-1, 1] -> [N, sum over hidden layers of channels * side * side]: each layer max-pooled to a
    side x side grid (§5), flattened, concatenated; float32 on the CPU."""
    layers = hidden_activations(D)
    device = next(D.parameters()).device
    captured: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: captured.append(F.adaptive_max_pool2d(out.float(), side).flatten(1)))
             for m in layers]
    parts = []
    try:
        for chunk in x.split(batch_size):
            captured.clear()
            D(chunk.to(device))
            parts.append(torch.cat(captured, 1).cpu())
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat(parts)


def image_features(kind: str, D: nn.Module, random_D: nn.Module, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Features of uint8 images [N, C, H, W] for one of FEATURE_KINDS, converted to [-1, 1] chunk by chunk."""
    if kind == "pixels":
        return torch.cat([batch_to_float(chunk).flatten(1) for chunk in images.split(batch_size)])
    net = D if kind == "trained" else random_D
    return torch.cat([pooled_features(net, batch_to_float(chunk), batch_size=batch_size) for chunk in images.split(batch_size * 4)])


def random_discriminator(model: ModelConfig, seed: int = 0) -> nn.Module:
    """The control: D's architecture with the paper's random init (spectral norm's vectors from the same seed), eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_discriminator(model).eval()


# ----------------------------------------------------------------------------------------------------------------
# the linear classifier

def balanced_draw(labels: torch.Tensor, n: int, num_classes: int, seed: int) -> torch.Tensor:
    """Indices of n labelled images, n // K from each class and the remainder from randomly picked classes."""
    rng = torch.Generator().manual_seed(seed)
    per_class = [n // num_classes + (1 if c < n % num_classes else 0) for c in range(num_classes)]
    order = torch.randperm(num_classes, generator=rng)
    picked = []
    for c, count in zip(order.tolist(), per_class):
        pool = (labels == c).nonzero().flatten()
        if len(pool) < count:
            raise ConfigError(f"{n} labels: class {c} has only {len(pool)} training images, {count} are needed")
        picked.append(pool[torch.randperm(len(pool), generator=rng)[:count]])
    return torch.cat(picked)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, *, l2: float, max_iter: int = MAX_ITER) -> nn.Linear:
    """Multinomial logistic regression on x [N, F] (already standardised), labels y [N]: mean cross-entropy +
    l2 / 2 * |W|^2, minimised by L-BFGS from zero."""
    linear = nn.Linear(x.shape[1], num_classes).to(x.device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimiser = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(linear(x), y) + 0.5 * l2 * linear.weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return linear.requires_grad_(False)


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Scale every feature to zero mean and unit variance on ``train`` (constant features stay constant)."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-3)
    return [(t - mean) / std for t in (train, *others)]


def accuracy(linear: nn.Linear, x: torch.Tensor, y: torch.Tensor, batch_size: int = 10_000) -> float:
    with torch.no_grad():
        correct = sum(int((linear(chunk).argmax(1) == truth).sum()) for chunk, truth in zip(x.split(batch_size), y.split(batch_size)))
    return correct / len(y)


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, num_classes: int, *,
                   seed: int = 0, max_iter: int = MAX_ITER) -> tuple[float, float]:
    """(test accuracy, chosen l2): L2_GRID searched on a class-balanced fifth of the training set held out (of at most
    SELECT_MAX images: the 'all' draws choose on a subset, so only the final fit sees every image), then the best
    strength refitted on all of it."""
    pool = torch.arange(len(train_y))
    if len(pool) > SELECT_MAX:
        pool = balanced_draw(train_y, SELECT_MAX, num_classes, seed + 20_000)
    held = pool[balanced_draw(train_y[pool], max(num_classes, len(pool) // 5), num_classes, seed + 10_000)]
    keep = torch.zeros(len(train_y), dtype=torch.bool)
    keep[pool] = True
    keep[held] = False
    fit_x, val_x = standardise(train_x[keep], train_x[held])
    scores = [accuracy(fit_logistic(fit_x, train_y[keep], num_classes, l2=l2, max_iter=max_iter), val_x, train_y[held]) for l2 in L2_GRID]
    best = L2_GRID[max(range(len(L2_GRID)), key=lambda i: (scores[i], L2_GRID[i]))]  # ties: the stronger regulariser
    all_x, test_std = standardise(train_x, test_x)
    return accuracy(fit_logistic(all_x, train_y, num_classes, l2=best, max_iter=max_iter), test_std, test_y), best


# ----------------------------------------------------------------------------------------------------------------
# the experiment

def parse_label_counts(text: str) -> list[int | None]:
    """'100,1000,all' -> [100, 1000, None] (None: every training image)."""
    counts: list[int | None] = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        if part == "all":
            counts.append(None)
        elif part.isdigit() and int(part) > 0:
            counts.append(int(part))
        else:
            raise ConfigError(f"--labels: {part!r} is not a positive count or 'all'; e.g. 100,1000,all")
    if not counts or len(set(counts)) != len(counts):
        raise ConfigError(f"--labels: {text!r} must name each count once, e.g. 100,1000,all")
    return counts


def run_probe(D: nn.Module, model: ModelConfig, train: ImageData, test: ImageData, label_counts: list[int | None], *,
              draws: int = DRAWS, seed: int = 0, max_iter: int = MAX_ITER) -> dict[str, Any]:
    """Test accuracy of the probe on D's features, a random D's and raw pixels, per label count.

    ``train``/``test`` hold uint8 images at D's size with class labels. Each finite count is drawn ``draws`` times,
    class-balanced (seeds seed..seed+draws-1); 'all' (None) is one draw. Returns {"labels": {"100": {kind: {"mean",
    "std", "accuracies", "l2"}}}, "feature_dims": {kind: F}, "num_classes", "train_images", "test_images", "seconds"}.
    """
    if train.labels is None or train.labels.ndim != 1 or test.labels is None:
        raise ConfigError("the probe needs one class label per image (mnist, fashion-mnist, cifar10); this data set has none or several")
    if draws < 1:
        raise ConfigError(f"draws: {draws}; give at least 1")
    num_classes = int(train.labels.max()) + 1
    for n in label_counts:
        if n is not None and not num_classes <= n <= len(train):
            raise ConfigError(f"--labels {n}: give between {num_classes} (one per class) and {len(train)} (or 'all')")
    start = time.monotonic()
    D = D.eval()
    random_D = random_discriminator(model, seed).to(next(D.parameters()).device)
    plan = {n: [torch.arange(len(train))] if n is None else [balanced_draw(train.labels, n, num_classes, seed + d) for d in range(draws)]
            for n in label_counts}
    needed = torch.unique(torch.cat([i for draws_ in plan.values() for i in draws_]))
    position = torch.full((len(train),), -1, dtype=torch.long)
    position[needed] = torch.arange(len(needed))
    results: dict[str, dict[str, Any]] = {("all" if n is None else str(n)): {} for n in label_counts}
    dims = {}
    for kind in FEATURE_KINDS:
        log.info("probe: %s features of %d training and %d test images", kind, len(needed), len(test))
        train_f = image_features(kind, D, random_D, train.images[needed])
        test_f = image_features(kind, D, random_D, test.images)
        dims[kind] = train_f.shape[1]
        for n, index_sets in plan.items():
            accs, l2s = [], []
            for d, index in enumerate(index_sets):
                acc, l2 = probe_accuracy(train_f[position[index]], train.labels[index], test_f, test.labels, num_classes,
                                         seed=seed + d, max_iter=max_iter)
                accs.append(acc)
                l2s.append(l2)
                log.info("probe: %s, %s labels, draw %d: %.4f (l2 %g)", kind, n or "all", d, acc, l2)
            mean = sum(accs) / len(accs)
            std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
            results["all" if n is None else str(n)][kind] = {"mean": mean, "std": std, "accuracies": accs, "l2": l2s}
        del train_f, test_f
    return {"labels": results, "feature_dims": dims, "num_classes": num_classes, "train_images": len(train), "test_images": len(test),
            "draws": draws, "seconds": round(time.monotonic() - start, 1)}
