"""Editing metrics: how often the paper's vector arithmetic (section 6.3.2) and the attribute sliders do what they say.

Both are scored by an attribute classifier (the shipped CelebA one, or any object with ``kind``, ``label_names`` and
``predict_proba``). Results are plain dicts of numbers and lists, ready for JSON. Nothing here touches the global RNG.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import nn

from .directions import (
    ARITHMETIC_PRESETS,
    MAX_AMOUNT,
    THRESHOLD,
    Direction,
    _label_index,
    apply_directions,
    infer_z_dim,
    pick_from_ratings,
    preset_boundaries,
    preset_wants,
    rate_latents,
    wanted_result,
)
from .errors import ConfigError, LatentError
from .latent import MAX_SEED, arithmetic, latents_from_seeds

Wants = tuple[dict[str, bool], dict[str, bool], dict[str, bool]]

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
DRAWS = 100               # independent exemplar draws per preset: a rate to within about ±10 points
SEARCH = 2000             # seeds the classifier rates per draw to pick the exemplars
COUNT = 3                 # exemplars per group, as in the paper
AMOUNT = 3.0              # slider move along the unit direction (latents have norm ~sqrt(z_dim))
SLIDER_N = 1000           # seeds scored per slider


# ----------------------------------------------------------------------------------------------------------------
# helpers

def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate (95% by default); (0.0, 1.0) when there are no trials.

    Unlike the normal approximation it stays within [0, 1] and is not empty at 0 or ``trials`` successes.
    """
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ConfigError(f"wilson_interval: {successes} successes of {trials} trials; need 0 <= successes <= trials")
    if trials == 0:
        return 0.0, 1.0
    p, z2 = successes / trials, z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def presets_for(classifier: Any) -> list[str]:
    """The ARITHMETIC_PRESETS an attribute classifier can score (every attribute they name is one of its labels)."""
    if getattr(classifier, "kind", None) != "attributes":
        return []
    labels = set(classifier.label_names)
    return [name for name, wants in ARITHMETIC_PRESETS.items() if all(set(g) <= labels for g in wants)]


def preset_attributes(presets: list[str]) -> list[str]:
    """Every attribute the named presets constrain, in first-seen order: the sliders worth scoring beside them."""
    return list(dict.fromkeys(k for name in presets for group in ARITHMETIC_PRESETS[name] for k in group))


def _check_attribute_classifier(classifier: Any) -> None:
    if getattr(classifier, "kind", None) != "attributes":
        raise ConfigError(f"the editing metrics need an attribute classifier (kind 'attributes'), got kind "
                          f"{getattr(classifier, 'kind', None)!r}")


def _check_count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name}: {value!r}; give an integer of at least {low}")
    return int(value)


# ----------------------------------------------------------------------------------------------------------------
# arithmetic success

def arithmetic_success(G: nn.Module, classifier: Any, preset: Wants | str, *, draws: int = DRAWS, search: int = SEARCH,
                       count: int = COUNT, seed_start: int = 0, z_dim: int | None = None,
                       pool: torch.Tensor | None = None, judge: Any = None) -> dict[str, Any]:
    """How often the paper's A - B + C gives the wanted result, over ``draws`` independent exemplar draws.

    Draw d picks ``count`` exemplars per group as the presets do (``pick_from_ratings`` with G over seeds
    seed_start + d*search .. seed_start + (d+1)*search - 1, so draws share no seeds), takes
    Y = mean(A) - mean(B) + mean(C) and rates G(Y) (eval mode). A draw succeeds when every attribute of
    ``wanted_result`` shows its wanted value (probability >= 0.5 for True, < 0.5 for False). ``pool``: ratings of
    seeds 0..P-1 that the result's boundaries are fitted on, as the app fits them on its preset ratings
    (dcgan.ratings); without, each draw fits them on its own searched seeds. ``judge``: the classifier that scores
    G(Y) (default ``classifier``); the picks rate their candidate results with ``classifier``, so a judge the picks
    never saw (``dcgan.classifiers.load_judge``) is the fair one.

    Returns {"wanted": {attr: bool}, "draws", "successes", "rate", "ci95": [low, high] (Wilson),
    "attributes": {attr: share of draws showing the wanted value}, "mean_proba": {attr: mean probability of the
    attribute in G(Y)}, "search", "count", "seeds": [first, last] searched}, all by the judge, and with a judge
    other than ``classifier`` also "picker": {"successes", "rate", "attributes"} by ``classifier``.
    """
    return arithmetic_successes(G, classifier, [preset], draws=draws, search=search, count=count, seed_start=seed_start,
                                z_dim=z_dim, pool=pool, judge=judge)[0]


def arithmetic_successes(G: nn.Module, classifier: Any, presets: list[Wants | str], *, draws: int = DRAWS, search: int = SEARCH,
                         count: int = COUNT, seed_start: int = 0, z_dim: int | None = None,
                         pool: torch.Tensor | None = None, judge: Any = None) -> list[dict[str, Any]]:
    """``arithmetic_success`` for several presets, rating each draw's searched seeds once for all of them."""
    _check_attribute_classifier(classifier)
    if judge is not None:
        _check_attribute_classifier(judge)
        if list(judge.label_names) != list(classifier.label_names):
            raise ConfigError("judge: its attributes differ from the picking classifier's")
    draws, search, count = _check_count("draws", draws, 1), _check_count("search", search, 1), _check_count("count", count, 1)
    seed_start = _check_count("seed_start", seed_start, 0)
    if count > search:
        raise ConfigError(f"count: {count} exemplars per group from search={search} seeds; need count <= search")
    if seed_start + draws * search - 1 > MAX_SEED:
        raise ConfigError(f"draws * search: seeds up to {seed_start + draws * search - 1} are beyond the largest seed {MAX_SEED}")
    wants = [preset_wants(p) for p in presets]
    wanted = [wanted_result(w) for w in wants]
    for p, want in zip(presets, wanted):
        if not want:
            raise LatentError(f"preset {p!r}: its result constrains no attribute, so there is nothing to score")
    z_dim = z_dim or infer_z_dim(G)
    boundaries = [None if pool is None else preset_boundaries(pool, classifier, w, z_dim=z_dim) for w in wants]
    y = [[] for _ in wants]  # per preset: Y of each draw
    for d in range(draws):
        start = seed_start + d * search
        proba = rate_latents(G, classifier, latents_from_seeds(list(range(start, start + search)), z_dim))
        for i, w in enumerate(wants):
            picked = pick_from_ratings(proba, classifier, w, count=count, seed_start=start, z_dim=z_dim,
                                       boundaries=boundaries[i], G=G)
            a, b, c = (latents_from_seeds(s, z_dim) for s in picked)
            y[i].append(arithmetic(a, b, c))
    y_all = torch.stack([v for per in y for v in per])
    judged = _shown(rate_latents(G, judge or classifier, y_all), judge or classifier, wanted, draws)
    picker = _shown(rate_latents(G, classifier, y_all), classifier, wanted, draws) if judge is not None else None
    out = []
    for i, (want, (p, shown)) in enumerate(zip(wanted, judged)):
        tally = _tally(shown, want)
        out.append({"wanted": dict(want), "draws": draws, **tally, "ci95": list(wilson_interval(tally["successes"], draws)),
                    "mean_proba": {k: float(p[:, j].double().mean()) for j, k in enumerate(want)},
                    "search": search, "count": count, "seeds": [seed_start, seed_start + draws * search - 1]})
        if picker is not None:
            out[-1]["picker"] = _tally(picker[i][1], want)
    return out


def _tally(shown: torch.Tensor, want: dict[str, bool]) -> dict[str, Any]:
    """{"successes": draws showing every wanted value, "rate", "attributes": {attr: share showing it}} of shown
    [draws, len(want)]."""
    successes = int(shown.all(1).sum())
    return {"successes": successes, "rate": successes / len(shown),
            "attributes": {k: float(shown[:, j].double().mean()) for j, k in enumerate(want)}}


def _shown(proba: torch.Tensor, classifier: Any, wanted: list[dict[str, bool]], draws: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per preset (proba rows i*draws .. (i+1)*draws-1): (p [draws, len(want)] of the wanted attributes, whether each
    shows its wanted value)."""
    out = []
    for i, want in enumerate(wanted):
        p = proba[i * draws:(i + 1) * draws][:, _label_index(classifier, list(want))]
        out.append((p, (p >= THRESHOLD) == torch.tensor(list(want.values()))))
    return out


# ----------------------------------------------------------------------------------------------------------------
# slider success

def slider_success(G: nn.Module, classifier: Any, directions: list[Direction], *, amount: float = AMOUNT, n: int = SLIDER_N,
                   seed: int = 0, z_dim: int | None = None) -> dict[str, Any]:
    """Per labelled direction: the share of seeds without its attribute (p < 0.5) that gain it (p >= 0.5) at
    z + amount * direction, over seeds seed .. seed+n-1.

    Each direction's name must be one of the classifier's labels (InterFaceGAN directions are named so: "Smiling").
    Returns {"amount", "n", "seeds": [first, last], "directions": {name: {"without": seeds lacking it,
    "gained": of those, how many have it after the move, "rate": gained / without (None when without is 0),
    "ci95": [low, high] (Wilson)}}}.
    """
    _check_attribute_classifier(classifier)
    n, seed = _check_count("n", n, 1), _check_count("seed", seed, 0)
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not math.isfinite(amount) or abs(amount) > MAX_AMOUNT:
        raise ConfigError(f"amount: {amount!r}; give a finite number within ±{MAX_AMOUNT}")
    if seed + n - 1 > MAX_SEED:
        raise ConfigError(f"seed + n: seeds up to {seed + n - 1} are beyond the largest seed {MAX_SEED}")
    names = [d.name for d in directions]
    if len(set(names)) != len(names):
        raise LatentError(f"direction names must be unique: {names}")
    columns = _label_index(classifier, names)
    z_dim = z_dim or infer_z_dim(G)
    z = latents_from_seeds(list(range(seed, seed + n)), z_dim)
    before = rate_latents(G, classifier, z)[:, columns] >= THRESHOLD  # [n, len(directions)]
    moved = [apply_directions(z[~before[:, j]], [d], {d.name: float(amount)}) for j, d in enumerate(directions)]
    after = rate_latents(G, classifier, torch.cat(moved)) if sum(len(m) for m in moved) else torch.zeros(0, len(classifier.label_names))
    out, start = {}, 0
    for j, (d, m) in enumerate(zip(directions, moved)):
        gained = int((after[start:start + len(m), columns[j]] >= THRESHOLD).sum())
        start += len(m)
        out[d.name] = {"without": len(m), "gained": gained, "rate": gained / len(m) if len(m) else None,
                       "ci95": list(wilson_interval(gained, len(m)))}
    return {"amount": float(amount), "n": n, "seeds": [seed, seed + n - 1], "directions": out}
