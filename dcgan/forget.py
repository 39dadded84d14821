"""The paper's §6.3.1, forgetting to draw: find the generator feature maps that fire where an attribute is drawn and
zero them everywhere. The paper drew boxes round windows by hand; here the shipped attribute classifier labels the
samples, and its input gradient says where in the image the attribute is.

A dropped map is exact: the BatchNorm scale and shift of that channel are set to 0, so BN outputs 0 and the ReLU
after it 0, for every latent. The ablated generator is therefore an ordinary generator file.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .directions import infer_z_dim
from .errors import ConfigError, brief
from .images import make_grid
from .latent import latents_from_seeds
from .models import recalibrate_batchnorm

log = logging.getLogger(__name__)

THRESHOLD = 0.5         # a sample has an attribute when the classifier's probability exceeds this
REGION = 0.1            # the most salient tenth of a sample's cells (at the layer's resolution) is "where the attribute is"
L2 = 1e-2               # the logistic regression's L2 strength (features standardised)
RENORMALISE = 8         # batches of 256 latents that re-estimate BatchNorm statistics after maps are dropped (0: keep them)
SEARCH_RENORMALISE = 2  # ...while searching (a rougher, faster estimate; the chosen maps are renormalised with RENORMALISE)
VANISH_TARGET = 0.7     # auto: drop maps (in weight order) until the attribute vanishes from this share of the fitting seeds
MAX_POSITIVES = 500     # fitting samples with the attribute that the search scores and checks (a common one has thousands)
MAX_DROPS = 4096        # the most maps one request may drop (all layers together)
BATCH = 250


# ----------------------------------------------------------------------------------------------------------------
# G's feature layers and dropping maps

def feature_layers(G: nn.Module) -> list[nn.BatchNorm2d]:
    """G's hidden feature layers, in order from the latent to the image: each BatchNorm (followed by a ReLU) whose
    channels are the feature maps. The paper's "second-highest conv layer" is the one before the last."""
    return [m for m in G.main if isinstance(m, nn.BatchNorm2d)]


def default_layer(G: nn.Module) -> int:
    """The paper's choice: the second-highest feature layer (for 64 px: 128 maps of 16x16)."""
    return max(len(feature_layers(G)) - 2, 0)


def check_drops(G: nn.Module, drops: dict[int, list[int]]) -> dict[int, list[int]]:
    """``drops`` ({layer: [map, ...]}) with sorted unique maps; ConfigError for a layer, map or count out of range."""
    layers = feature_layers(G)
    if not isinstance(drops, dict):
        raise ConfigError("drops: expected {layer: [map indices]}")
    clean: dict[int, list[int]] = {}
    for layer, maps in drops.items():
        if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < len(layers):
            raise ConfigError(f"layer {layer!r}: G has feature layers 0-{len(layers) - 1}")
        width = layers[layer].num_features
        if not isinstance(maps, (list, tuple)) or not all(isinstance(m, int) and not isinstance(m, bool) and 0 <= m < width for m in maps):
            raise ConfigError(f"layer {layer}: map indices must be integers 0-{width - 1}")
        if maps:
            clean[layer] = sorted(set(maps))
    if sum(len(m) for m in clean.values()) > MAX_DROPS:
        raise ConfigError(f"at most {MAX_DROPS} maps may be dropped at once")
    return clean


def ablate(G: nn.Module, drops: dict[int, list[int]], *, renormalise: int = 0, batch_size: int = 256) -> nn.Module:
    """A copy of G (eval mode) whose maps ``drops`` ({layer: [map, ...]}) are zero for every latent; G is untouched.

    ``renormalise`` > 0 then re-estimates every BatchNorm's running statistics from that many batches of fresh
    latents (dcgan.models.recalibrate_batchnorm), so the layers above the dropped maps see inputs normalised as in
    training rather than shifted by the missing maps (the paper's Theano generator normalised with batch
    statistics). The dropped maps stay exactly zero. With no drops nothing is recomputed: the same images bit for bit.
    """
    drops = check_drops(G, drops)
    ablated = copy.deepcopy(G).eval()
    layers = feature_layers(ablated)
    with torch.no_grad():
        for layer, maps in drops.items():
            layers[layer].weight[maps] = 0
            layers[layer].bias[maps] = 0
    if drops and renormalise:
        recalibrate_batchnorm(ablated, infer_z_dim(ablated), batches=renormalise, batch_size=batch_size)
    return ablated


def feature_maps(G: nn.Module, z: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps [N, C, h, w] after the layer's ReLU, images x [N, C, H, W] in [-1, 1]) for latents z, without grad."""
    layers = feature_layers(G)
    if not 0 <= layer < len(layers):
        raise ConfigError(f"layer {layer!r}: G has feature layers 0-{len(layers) - 1}")
    captured: list[torch.Tensor] = []
    hook = layers[layer].register_forward_hook(lambda _m, _i, out: captured.append(F.relu(out)))
    try:
        with torch.no_grad():
            x = G(z)
    finally:
        hook.remove()
    return captured[0], x


# ----------------------------------------------------------------------------------------------------------------
# where the attribute is

def label_index(classifier: Any, attribute: str) -> int:
    if attribute not in classifier.label_names:
        raise ConfigError(f"attribute {attribute!r}: the {classifier.cfg.dataset} classifier knows {', '.join(classifier.label_names)}")
    return classifier.label_names.index(attribute)


def saliency(classifier: Any, x: torch.Tensor, index: int, side: int) -> torch.Tensor:
    """|d logit / d x| of label ``index`` summed over colour channels and average-pooled to side x side: [N, side, side]."""
    was_training = classifier.training
    classifier.eval()
    maps = []
    try:
        for chunk in x.split(BATCH):
            chunk = chunk.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                classifier(classifier.prepare(chunk))[:, index].sum().backward()
            maps.append(F.adaptive_avg_pool2d(chunk.grad.abs().sum(1, keepdim=True), side)[:, 0])
    finally:
        classifier.train(was_training)
    return torch.cat(maps)


def rate(classifier: Any, x: torch.Tensor) -> torch.Tensor:
    """Whether each sample has each label: bool [N, K] (probability > THRESHOLD)."""
    return classifier.predict_proba(x) > THRESHOLD


# ----------------------------------------------------------------------------------------------------------------
# which maps draw it

def _logistic_weights(features: torch.Tensor, targets: torch.Tensor, l2: float = L2) -> torch.Tensor:
    """Weights [C] of an L2 logistic regression on standardised features [M, C] with binary targets [M]."""
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    x = (features - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], lr=1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b, targets) + 0.5 * l2 * w.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return w.detach()


def map_weights(maps_pos: torch.Tensor, saliency_pos: torch.Tensor, maps_neg: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """The logistic regression of §6.3.1, weights [C] (one per feature map; positive: the map fires where the attribute is).

    Positives: each feature vector at the REGION most salient cells of a sample that has the attribute. Negatives, as
    many: random other cells of the same samples (the paper's), and the same salient cells in samples without the
    attribute (ours: it tells the glasses from the eyes beneath them, so maps that merely draw eyes are kept).
    maps_pos [P, C, h, w] with saliency_pos [P, h, w]; maps_neg [Q, C, h, w] of samples without it.
    """
    rng = torch.Generator().manual_seed(seed)
    p, c, h, w = maps_pos.shape
    cells = h * w
    top = max(1, round(REGION * cells))
    region = saliency_pos.flatten(1).topk(top, dim=1).indices                                   # [P, top]
    flat_pos = maps_pos.flatten(2).transpose(1, 2)                                              # [P, cells, C]
    positives = torch.gather(flat_pos, 1, region[..., None].expand(-1, -1, c)).reshape(-1, c)
    inside = torch.zeros(p, cells, dtype=torch.bool)
    inside.scatter_(1, region, True)
    outside = (~inside).float()
    elsewhere = torch.multinomial(outside, top, replacement=False, generator=rng)               # random other cells, same samples
    same_image = torch.gather(flat_pos, 1, elsewhere[..., None].expand(-1, -1, c)).reshape(-1, c)
    partners = torch.randint(len(maps_neg), (p,), generator=rng)
    flat_neg = maps_neg[partners].flatten(2).transpose(1, 2)
    same_place = torch.gather(flat_neg, 1, region[..., None].expand(-1, -1, c)).reshape(-1, c)  # the same cells, attribute absent
    features = torch.cat([positives, same_image, same_place])
    targets = torch.cat([torch.ones(len(positives)), torch.zeros(len(same_image) + len(same_place))])
    return _logistic_weights(features, targets)


def _generate(G: nn.Module, seeds: list[int], z_dim: int, layer: int | None = None,
              classifier: Any = None) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """(layer's maps [N, C, h, w] or None, images [N, C, H, W], each label rated bool [N, K] or None) of ``seeds``,
    in batches (each rated as soon as it is drawn), float32 on the CPU."""
    device = next(G.parameters()).device
    maps, images, rated = [], [], []
    for start in range(0, len(seeds), BATCH):
        z = latents_from_seeds(seeds[start: start + BATCH], z_dim).to(device)
        if layer is None:
            with torch.no_grad():
                x = G(z).float().cpu()
        else:
            m, x = feature_maps(G, z, layer)
            maps.append(m.float().cpu())
            x = x.float().cpu()
        images.append(x)
        if classifier is not None:
            rated.append(rate(classifier, x))
    if not images:
        raise ConfigError("no seeds to generate")
    return (torch.cat(maps) if maps else None), torch.cat(images), (torch.cat(rated) if rated else None)


def attribution_scores(G: nn.Module, classifier: Any, index: int, z: torch.Tensor, layer: int) -> torch.Tensor:
    """Per map of ``layer``, how much it adds to the classifier's logit of label ``index`` where it is active:
    mean over z of sum over positions of a * d logit / d a (a: the map after its ReLU); the first-order drop of the
    logit when the map is zeroed. [C]."""
    target = feature_layers(G)[layer]
    was_training = classifier.training
    classifier.eval()
    total = None
    for chunk in z.split(BATCH):
        captured: list[torch.Tensor] = []

        def keep(_m, _i, out, captured=captured):
            leaf = out.detach().requires_grad_(True)  # its gradient is kept, and nothing below it is differentiated
            captured.append(leaf)
            return leaf.clone()  # G's in-place ReLU may not write into a leaf

        hook = target.register_forward_hook(keep, prepend=True)  # first, so other hooks see the tracked output
        try:
            with torch.enable_grad():
                x = G(chunk)
                classifier(classifier.prepare(x))[:, index].sum().backward()
        finally:
            hook.remove()
        out = captured[0]
        score = (F.relu(out) * out.grad).detach().sum((2, 3)).sum(0).float().cpu()
        total = score if total is None else total + score
    classifier.train(was_training)
    return total / len(z)


RANKINGS = ("attribution", "regression")  # how maps are ordered for dropping (see find_maps)


@dataclass
class ForgetPlan:
    """What `find_maps` chose."""
    attribute: str
    layer: int
    rank: str                           # "attribution" or "regression"
    maps: list[int]                     # dropped, in the order they were chosen
    scores: list[float]                 # every map's score before any was dropped (regression weight, or attribution)
    fit_seeds: tuple[int, int]          # [first, last] seeds used to fit and choose
    fit_positives: int                  # of them, samples with the attribute that the search used (at most MAX_POSITIVES)
    vanished_on_fit: float              # share of those that lose it with ``maps`` dropped
    sweep: list[dict[str, float]] = field(default_factory=list)  # {"maps": k, "vanished": share} after each step


def find_maps(G: nn.Module, classifier: Any, attribute: str, *, z_dim: int, layer: int | None = None, n_fit: int = 4000,
              first_seed: int = 0, count: int | None = None, target: float = VANISH_TARGET, rank: str = "attribution",
              renormalise: bool = True, seed: int = 0) -> ForgetPlan:
    """Choose the maps of ``layer`` to drop, on seeds first_seed..first_seed+n_fit-1, a few at a time until
    ``count`` are dropped or (count None) the attribute vanishes from ``target`` of the fitting samples that have it.

    rank "regression" is the paper's: maps in the order of their weight in `map_weights` (positive ones only).
    rank "attribution" orders them by `attribution_scores` on the samples with the attribute, recomputed after each
    step on the generator as ablated so far (maps that draw the attribute redundantly surface once the first are
    gone); measured on celeba-64 it removes glasses with fewer maps and less damage to the other attributes.
    """
    layer = default_layer(G) if layer is None else layer
    check_drops(G, {layer: []})
    if rank not in RANKINGS:
        raise ConfigError(f"rank: {brief(rank)} is not one of {', '.join(RANKINGS)}")
    index = label_index(classifier, attribute)
    seeds = list(range(first_seed, first_seed + n_fit))
    maps, x, rated = _generate(G, seeds, z_dim, layer, classifier)
    has = rated[:, index]
    if int(has.sum()) < 5 or int((~has).sum()) < 5:
        raise ConfigError(f"{attribute}: {int(has.sum())} of {n_fit} samples have it; need at least 5 with and 5 without "
                          f"(raise --n-fit)")
    width = maps.shape[1]
    if count is not None and not 0 <= count <= width:
        raise ConfigError(f"--maps {count}: layer {layer} has {width} maps")
    positive_seeds = [s for s, h in zip(seeds, has.tolist()) if h][:MAX_POSITIVES]
    device = next(G.parameters()).device
    z_pos = latents_from_seeds(positive_seeds, z_dim).to(device)
    step = max(1, width // 32)
    if rank == "regression":
        scores = map_weights(maps[has], saliency(classifier, x[has], index, maps.shape[-1]), maps[~has], seed=seed)
        order = [int(i) for i in scores.argsort(descending=True) if count is not None or scores[i] > 0]
    else:
        scores = attribution_scores(G, classifier, index, z_pos, layer)
    del maps

    def trial(dropped: list[int]) -> nn.Module:
        return ablate(G, {layer: dropped}, renormalise=SEARCH_RENORMALISE if renormalise else 0)

    def next_maps(dropped: list[int], size: int) -> list[int]:
        if rank == "regression":
            return order[len(dropped): len(dropped) + size]
        current = scores if not dropped else attribution_scores(trial(dropped), classifier, index, z_pos, layer)
        current = current.clone()
        current[dropped] = -float("inf")
        ranked = [int(i) for i in current.argsort(descending=True) if count is not None or current[i] > 0]
        return ranked[:size]

    dropped: list[int] = []
    sweep: list[dict[str, float]] = []
    share = 0.0
    while count is None or len(dropped) < count:
        new = next_maps(dropped, step if count is None else min(step, count - len(dropped)))
        if not new:
            break
        dropped += new
        share = float((~_generate(trial(dropped), positive_seeds, z_dim, classifier=classifier)[2][:, index]).float().mean())
        sweep.append({"maps": len(dropped), "vanished": share})
        log.info("forget %s (%s): %d maps of layer %d dropped, gone from %.0f%% of %d fitting samples",
                 attribute, rank, len(dropped), layer, 100 * share, len(positive_seeds))
        if count is None and share >= target:
            break
    return ForgetPlan(attribute, layer, rank, dropped, scores.tolist(), (seeds[0], seeds[-1]), len(positive_seeds), share, sweep)


# ----------------------------------------------------------------------------------------------------------------
# measuring it

def measure_forgetting(G: nn.Module, ablated: nn.Module, classifier: Any, attribute: str, *, z_dim: int,
                       seeds: list[int]) -> dict[str, Any]:
    """Rates before and after on ``seeds`` (held out from the fit): the attribute on the seeds that had it, and every
    label's rate over all of them. Returns {"seeds", "had": n, "kept": share still showing it, "vanished", "rates":
    {label: {"before", "after"}}, "had_seeds": the seeds that had it}."""
    index = label_index(classifier, attribute)
    rated_before = _generate(G, seeds, z_dim, classifier=classifier)[2]
    rated_after = _generate(ablated, seeds, z_dim, classifier=classifier)[2]
    had = rated_before[:, index]
    kept = float(rated_after[had, index].float().mean()) if had.any() else float("nan")
    rates = {name: {"before": float(rated_before[:, i].float().mean()), "after": float(rated_after[:, i].float().mean())}
             for i, name in enumerate(classifier.label_names)}
    return {"seeds": [seeds[0], seeds[-1]], "had": int(had.sum()), "kept": kept, "vanished": 1 - kept, "rates": rates,
            "had_seeds": [s for s, h in zip(seeds, had.tolist()) if h]}


EVAL_SEED = 10**6                 # the report's seeds start here, far from the fitting seeds 0..n_fit-1
WATCH = ("Smiling", "Male")       # labels whose rates should not move when another is forgotten (those the classifier has)


@dataclass
class ForgetResult:
    plan: ForgetPlan
    generator: nn.Module          # the ablated copy, eval mode
    report: dict[str, Any]        # JSON-ready: the plan, the held-out rates before/after, FID before/after
    grid: np.ndarray              # uint8 HWC: a row of seeds that had the attribute, and the same seeds ablated below


def before_after_grid(G: nn.Module, ablated: nn.Module, seeds: list[int], z_dim: int) -> np.ndarray:
    """The paper's Figure 6: samples of ``seeds`` (top row) and the same latents with the maps dropped (bottom row)."""
    if not seeds:
        return np.zeros((1, 1, 3), np.uint8)
    before, after = _generate(G, seeds, z_dim)[1], _generate(ablated, seeds, z_dim)[1]
    return make_grid(torch.cat([before, after]), nrow=max(len(seeds), 1))


def forget_attribute(G: nn.Module, classifier: Any, attribute: str, *, z_dim: int, layer: int | None = None, count: int | None = None,
                     target: float = VANISH_TARGET, rank: str = "attribution", renormalise: bool = True, n_fit: int = 4000,
                     n_eval: int = 4000, fid_n: int = 4000, dataset: str = "", root: str = "", grid_seeds: int = 8) -> ForgetResult:
    """find_maps on seeds 0..n_fit-1, the ablated generator, and its report on held-out seeds EVAL_SEED..: the
    attribute on the seeds that had it, every label's rate, and (fid_n > 0) classifier FID before and after."""
    if min(n_fit, n_eval) < 10 or fid_n < 0:
        raise ConfigError(f"n_fit {n_fit}, n_eval {n_eval}: give at least 10 seeds each (and fid_n >= 0)")
    plan = find_maps(G, classifier, attribute, z_dim=z_dim, layer=layer, n_fit=n_fit, count=count, target=target, rank=rank,
                     renormalise=renormalise)
    ablated = ablate(G, {plan.layer: plan.maps}, renormalise=RENORMALISE if renormalise else 0)
    evaluation = measure_forgetting(G, ablated, classifier, attribute, z_dim=z_dim, seeds=list(range(EVAL_SEED, EVAL_SEED + n_eval)))
    plan_report = {k: v for k, v in asdict(plan).items() if k != "scores"}
    report: dict[str, Any] = {"attribute": attribute, "layer": plan.layer, "rank": plan.rank, "renormalised": bool(renormalise),
                              "maps": plan.maps, "plan": plan_report,
                              "scores": [round(w, 5) for w in plan.scores], "eval": evaluation,
                              "watch": [n for n in (attribute, *WATCH) if n in classifier.label_names]}
    if fid_n:
        from .metrics import evaluate

        scores = [evaluate(net, dataset, n=fid_n, z_dim=z_dim, root=root, classifier=classifier, metrics=["fid"]) for net in (G, ablated)]
        before, after = scores[0]["metrics"]["fid"], scores[1]["metrics"]["fid"]
        report["fid"] = {"n": fid_n, "before": before, "after": after, "rise": after / before - 1 if before > 0 else float("inf"),
                         "floor": scores[0]["floor"]["fid"]}
    grid = before_after_grid(G, ablated, evaluation["had_seeds"][:grid_seeds], z_dim)
    return ForgetResult(plan, ablated, report, grid)
