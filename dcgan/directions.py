"""Latent directions for sliders and arithmetic presets: SeFa, GANSpace-style PCA and InterFaceGAN boundaries.

A direction is a unit vector in z; ``z + amount * vector`` moves an image along it. Directions are cached in a
safetensors file beside their checkpoint, tagged with a fingerprint of the generator's weights.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .checkpoints import GeneratorInfo, file_beside
from .errors import CheckpointError, ConfigError, LatentError
from .io import check_made_for, load_safetensors, metadata_json, save_safetensors
from .latent import arithmetic, latents_from_seeds
from .models import DCGANGenerator, KerasGenerator

log = logging.getLogger(__name__)

KINDS = ("sefa", "pca", "class", "attribute", "concept")
LABELLED_KINDS = ("class", "attribute")  # directions that need a classifier
MAX_AMOUNT = 10.0                    # slider limit; |amount| beyond this leaves the latent distribution entirely
DIRECTIONS_FILE = "directions.safetensors"
DIRECTIONS_SUFFIX = ".directions.safetensors"  # x.safetensors -> x.directions.safetensors (registries skip these)
DIRECTIONS_FORMAT_VERSION = 1
MAX_DIRECTIONS_BYTES = 64 * 2**20
BATCH = 256                          # latents per generator/classifier forward pass
THRESHOLD = 0.5                      # an image has an attribute when the classifier's probability is at least this
CLEAR = 0.9                          # ... and clearly has it (or clearly lacks it, at most 1 - CLEAR) for an exemplar
LENGTH_WEIGHT = 0.5                  # an exemplar's score: depth toward the result, less this times |z| (keeps Y typical)
CHECKED_LENGTH_WEIGHTS = (0.5, 0.25, 0.0)  # ... and the weights tried when the candidate results are rated (G given)
MIX_STEPS = 20                       # grid steps of the attribute mixes tried when picking (README: how a preset picks)
MIN_SIDE = 5                         # seeds needed on each side to fit an attribute's boundary on a subset

# name -> (want_A, want_B, want_C) for the paper's A - B + C; CelebA attribute names as in list_attr_celeba.txt
ARITHMETIC_PRESETS: dict[str, tuple[dict[str, bool], dict[str, bool], dict[str, bool]]] = {
    "smiling woman - neutral woman + neutral man": (
        {"Smiling": True, "Male": False}, {"Smiling": False, "Male": False}, {"Smiling": False, "Male": True}),
    "man with glasses - man without glasses + woman without glasses": (
        {"Male": True, "Eyeglasses": True}, {"Male": True, "Eyeglasses": False}, {"Male": False, "Eyeglasses": False}),
    "blond woman - black-haired woman + black-haired man": (
        {"Blond_Hair": True, "Male": False}, {"Black_Hair": True, "Male": False}, {"Black_Hair": True, "Male": True}),
}


@dataclass
class Direction:
    name: str             # unique key for amounts: "sefa-0", "pca-3", "Smiling", "digit-7", a user concept name
    vector: torch.Tensor  # float32 [z_dim], unit norm, on the CPU
    strength: float       # sefa: singular value share; pca: variance share; class/attribute: held-out balanced accuracy
    kind: str             # one of KINDS
    label: str = ""       # slider caption, e.g. "SeFa 1 (12.3%)"


# ----------------------------------------------------------------------------------------------------------------
# helpers

def _unit(v: torch.Tensor, what: str) -> torch.Tensor:
    v = v.detach().double().cpu()
    norm = float(v.norm())
    if not math.isfinite(norm) or norm < 1e-8:
        raise LatentError(f"{what}: direction has zero or non-finite length")
    return (v / norm).float()


def _canonical_sign(v: torch.Tensor) -> torch.Tensor:
    """Eigen/singular vectors have no sign; make the largest-magnitude entry positive so results are reproducible."""
    return v if v[v.abs().argmax()] >= 0 else -v


def _core(G: nn.Module) -> nn.Module:
    return getattr(G, "_orig_mod", G)  # torch.compile wrapper


def _first_layer(G: nn.Module) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """(W [out_features, z_dim] of G's linear map from z, z [N, z_dim] -> flattened output of G's first block)."""
    core = _core(G)
    if isinstance(core, DCGANGenerator):
        weight = core.main[0].weight  # ConvTranspose2d weight [z_dim, C, 4, 4]: z as a 1x1 image -> C x 4 x 4
        return weight.detach().flatten(1).T, lambda z: core.main[:3](z[:, :, None, None]).flatten(1)  # after BN+ReLU
    if isinstance(core, KerasGenerator):
        return core.project[0].weight.detach(), core.project  # Linear weight [width * 49, z_dim]; Linear+ReLU
    raise LatentError(f"{type(core).__name__}: directions need a DCGANGenerator or KerasGenerator")


def infer_z_dim(G: nn.Module) -> int:
    return _first_layer(G)[0].shape[1]


@contextlib.contextmanager
def _eval_mode(G: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running stats, never updated) for the duration, then G's previous mode."""
    was_training = G.training
    G.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        G.train(was_training)


def _device_dtype(G: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(G.parameters())
    return p.device, p.dtype


def _sample_z(n: int, z_dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def _check_k(k: int, z_dim: int) -> None:
    if not 1 <= k <= z_dim:
        raise ConfigError(f"k: {k} directions; choose 1 to z_dim={z_dim}")


def generator_fingerprint(G: nn.Module) -> str:
    """SHA-256 of G's weights and buffers: tells a directions file which generator it belongs to."""
    digest = hashlib.sha256()
    for name, tensor in _core(G).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# unsupervised directions

def sefa_directions(G: nn.Module, k: int = 10) -> list[Direction]:
    """Closed-form factorisation (Shen & Zhou 2021): top-k eigenvectors of W^T W for G's first layer W."""
    W, _ = _first_layer(G)
    _check_k(k, W.shape[1])
    eigenvalues, eigenvectors = torch.linalg.eigh(W.double().cpu().T @ W.double().cpu())  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0).clamp_min(0), eigenvectors.flip(1)
    singular = eigenvalues.sqrt()
    share = singular / singular.sum()
    return [Direction(f"sefa-{i}", _unit(_canonical_sign(eigenvectors[:, i]), f"sefa-{i}"), float(share[i]), "sefa",
                      f"SeFa {i + 1} ({100 * float(share[i]):.1f}%)") for i in range(k)]


def _top_components(y: torch.Tensor, k: int, seed: int, iterations: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomised SVD of centred y [n, d]: (coordinates [n, k], singular values [k]); seeded, so reproducible."""
    q = min(k + 10, *y.shape)
    omega = torch.randn(y.shape[1], q, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    basis = torch.linalg.qr(y @ omega).Q
    for _ in range(iterations):  # power iterations sharpen the subspace when the spectrum decays slowly
        basis = torch.linalg.qr(y @ torch.linalg.qr(y.T @ basis).Q).Q
    u, s, _ = torch.linalg.svd(basis.T @ y, full_matrices=False)
    return (basis @ u[:, :k]) * s[:k], s[:k]


def pca_directions(G: nn.Module, k: int = 10, n: int = 5000, seed: int = 0) -> list[Direction]:
    """GANSpace-style: PCA of the first block's activations for n latents, regressed back to unit z directions.

    GANSpace's recipe for models whose latent is the input: with PCA coordinates X [n, k] of the activations,
    solve min_U ||X U - Z||^2; row i of U is the z direction that moves activations along component i.
    """
    W, features = _first_layer(G)
    z_dim = W.shape[1]
    _check_k(k, z_dim)
    if n < max(10, 2 * k):
        raise ConfigError(f"n: {n} latents is too few for {k} PCA directions; use at least {max(10, 2 * k)}")
    device, dtype = _device_dtype(G)
    z = _sample_z(n, z_dim, seed)
    with _eval_mode(G):
        y = torch.cat([features(zb.to(device, dtype)).float().cpu() for zb in z.split(BATCH)])
    y -= y.mean(0)
    total = float(y.square().sum())
    coords, singular = _top_components(y, min(k, y.shape[1]), seed)
    del y
    u = torch.linalg.lstsq(coords.double(), z.double()).solution  # [k, z_dim]
    share = singular.double().square() / max(total, 1e-30)
    return [Direction(f"pca-{i}", _unit(_canonical_sign(u[i]), f"pca-{i}"), float(share[i]), "pca",
                      f"PCA {i + 1} ({100 * float(share[i]):.1f}%)") for i in range(len(share))]


# ----------------------------------------------------------------------------------------------------------------
# labelled directions (InterFaceGAN)

def rate_latents(G: nn.Module, classifier: Any, z: torch.Tensor) -> torch.Tensor:
    """classifier.predict_proba of G(z) for z [N, z_dim]: float32 [N, K] on the CPU."""
    device, dtype = _device_dtype(G)
    with _eval_mode(G):
        return torch.cat([torch.as_tensor(classifier.predict_proba(G(zb.to(device, dtype)))).float().cpu() for zb in z.split(BATCH)])


def _direction_name(label_name: str, kind: str) -> str:
    """"digit-7" for MNIST's class "7 - seven" (or "7"); other labels as they are ("Sneaker", "Smiling")."""
    first = label_name.split(" ", 1)[0]
    return f"digit-{first}" if kind == "class" and first.isdigit() else label_name


def _label_index(classifier: Any, names: list[str]) -> list[int]:
    """Columns of predict_proba for label names (or their direction names, such as "digit-7")."""
    kind = "attribute" if classifier.kind == "attributes" else "class"
    lookup = {}
    for i, label in enumerate(classifier.label_names):
        lookup[label] = lookup[_direction_name(label, kind)] = i
    unknown = [name for name in names if name not in lookup]
    if unknown:
        raise LatentError(f"labels {unknown} are not among the classifier's {list(classifier.label_names)}")
    return [lookup[name] for name in names]


def _fit_boundaries(z: torch.Tensor, p: torch.Tensor, l2: float = 1e-3, *, balanced: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent L2-regularised logistic regressions z -> p[:, j] (soft targets): (weights [D, K], bias [K]).

    ``balanced``: positives are weighted by negative/positive mass, as if the classes were balanced (InterFaceGAN
    trains on equal numbers of each), so that the direction suits rare labels too; unbalanced, logit 0 is where the
    classifier's p crosses 0.5, which is what predicting a verdict needs.
    """
    z, p = z.double(), p.double().clamp(0, 1)
    pos_weight = ((1 - p).sum(0).clamp_min(1e-3) / p.sum(0).clamp_min(1e-3)) if balanced else torch.ones(p.shape[1], dtype=torch.float64)
    weight = torch.zeros(z.shape[1], p.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(p.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=200, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z @ weight + bias, p, pos_weight=pos_weight, reduction="none").mean(0).sum()
        loss = loss + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weight.detach(), bias.detach()


def _balanced_accuracy(truth: torch.Tensor, pred: torch.Tensor) -> float:
    rates = [float((pred[truth == c] == c).double().mean()) for c in (False, True) if (truth == c).any()]
    return sum(rates) / len(rates)


def labelled_directions(G: nn.Module, classifier: Any, n: int = 5000, seed: int = 0, names: list[str] | None = None,
                       *, min_examples: int = 5) -> list[Direction]:
    """InterFaceGAN: a linear boundary in z per label of ``classifier`` on n generated images; its normal is the direction.

    Classes get one-vs-rest boundaries ("digit-7", "Sneaker"), attributes one each ("Smiling"). Strength is the
    boundary's balanced accuracy on a held-out fifth of the latents (0.5: chance). Labels with fewer than
    ``min_examples`` generated images on either side are skipped with a warning.
    """
    z_dim = infer_z_dim(G)
    if n < 20:
        raise ConfigError(f"n: {n} latents is too few for labelled directions; use at least 20")
    kind = "attribute" if classifier.kind == "attributes" else "class"
    columns = _label_index(classifier, list(names) if names is not None else list(classifier.label_names))
    z = _sample_z(n, z_dim, seed)
    p = rate_latents(G, classifier, z)[:, columns]
    n_val = max(1, n // 5)
    weight, bias = _fit_boundaries(z[:-n_val], p[:-n_val])
    pred = (z[-n_val:].double() @ weight + bias) > 0
    out = []
    for j, col in enumerate(columns):
        label_name = classifier.label_names[col]
        positives = int((p[:, j] > 0.5).sum())
        if min(positives, n - positives) < min_examples:
            log.warning("%s: %d of %d generated images have it; too few on one side for a boundary, skipped", label_name, positives, n)
            continue
        accuracy = _balanced_accuracy(p[-n_val:, j] > 0.5, pred[:, j])
        name = _direction_name(label_name, kind)
        caption = name.replace("-", " ") if name != label_name else label_name.replace("_", " ")
        out.append(Direction(name, _unit(weight[:, j], name), accuracy, kind, f"{caption} (acc {100 * accuracy:.0f}%)"))
    return out


def concept_direction(name: str, positive_z: torch.Tensor, negative_z: torch.Tensor, label: str = "") -> Direction:
    """A user concept: unit vector from the mean of negative_z [n, z_dim] to the mean of positive_z [m, z_dim]."""
    if positive_z.ndim != 2 or negative_z.ndim != 2 or not len(positive_z) or not len(negative_z):
        raise LatentError(f"concept {name!r}: needs latents shaped [n, z_dim] on both sides")
    return Direction(name, _unit(positive_z.mean(0) - negative_z.mean(0), name), 1.0, "concept", label or name)


# ----------------------------------------------------------------------------------------------------------------
# using directions

def condition(direction: Direction, keep_fixed: list[Direction]) -> Direction:
    """InterFaceGAN conditional manipulation: remove the components along ``keep_fixed`` and renormalise.

    The result keeps the name (it is the same slider, made to leave the fixed attributes alone); a fixed direction
    of the same name as ``direction`` is ignored, so callers may pass every ticked attribute.
    """
    keep_fixed = [d for d in keep_fixed if d.name != direction.name]
    basis: list[torch.Tensor] = []
    for other in keep_fixed:  # Gram-Schmidt, skipping fixed directions that depend on earlier ones
        v = other.vector.double()
        for b in basis:
            v = v - (v @ b) * b
        if float(v.norm()) > 1e-6:
            basis.append(v / v.norm())
    v = direction.vector.double()
    for b in basis:
        v = v - (v @ b) * b
    if float(v.norm()) < 1e-6:
        raise LatentError(f"{direction.name}: lies within the span of {[d.name for d in keep_fixed]}; nothing left after conditioning")
    fixed = ", ".join(d.name for d in keep_fixed)
    label = f"{direction.label or direction.name} (fixed: {fixed})" if fixed else direction.label
    return Direction(direction.name, (v / v.norm()).float(), direction.strength, direction.kind, label)


HOLD_SPAN = 4.0   # the search of hold_judgements: t in ±HOLD_SPAN along each held direction ...
HOLD_POINTS = 17  # ... on this many points, then 9 points within ±half a coarse step of the best


def hold_judgements(G: nn.Module, classifier: Any, z_before: torch.Tensor, z_after: torch.Tensor,
                    fixed: list[Direction]) -> torch.Tensor:
    """``z_after`` [N, z_dim] moved along each fixed labelled direction until the classifier's logit for that label
    is back where it was at ``z_before``: per latent, a search over t of |logit(z + t v) - logit before|, coarse
    then fine, the smallest move among equals. Fixed SeFa/PCA/concept directions have no judge and are left alone.

    Why: ``condition`` keeps a linear boundary's score, but G is not linear, so +3 Smiling made orthogonal to Male
    still turns 16% of celeba-64's faces into the other sex in the classifier's eyes; moving back along the Male
    direction itself undoes that (README "Sliders": 95% kept). Two rounds when several labels are held.
    """
    held = [d for d in fixed if d.kind in LABELLED_KINDS]
    if not held or classifier is None:
        return z_after
    columns = _label_index(classifier, [d.name for d in held])

    def logits(z: torch.Tensor) -> torch.Tensor:
        p = rate_latents(G, classifier, z)[:, columns].double().clamp(1e-6, 1 - 1e-6)
        return (p / (1 - p)).log()

    wanted = logits(z_before)
    coarse = sorted(torch.linspace(-HOLD_SPAN, HOLD_SPAN, HOLD_POINTS).tolist(), key=abs)
    half_step = HOLD_SPAN / (HOLD_POINTS - 1)
    fine = sorted(torch.linspace(-half_step, half_step, 9).tolist(), key=abs)
    z = z_after.float().clone()
    for _ in range(2 if len(held) > 1 else 1):
        for j, direction in enumerate(held):
            v = direction.vector.float()
            for grid in (coarse, fine):
                t = torch.tensor(grid)
                candidates = (z[:, None] + t[None, :, None] * v).flatten(0, 1)
                error = (logits(candidates)[:, j].view(len(z), len(t)) - wanted[:, j:j + 1]).abs()
                z = z + t[error.argmin(1)][:, None] * v
    return z


def apply_directions(z: torch.Tensor, directions: list[Direction], amounts: dict[str, float]) -> torch.Tensor:
    """z [N, z_dim] or [z_dim] plus sum(amount * vector), amounts by direction name, each within ±MAX_AMOUNT."""
    by_name: dict[str, Direction] = {}
    for d in directions:
        by_name.setdefault(d.name, d)
    delta = torch.zeros(z.shape[-1], dtype=torch.float32)
    for name, amount in amounts.items():
        if name not in by_name:
            raise LatentError(f"direction {name!r} is unknown; known: {sorted(by_name)}")
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not math.isfinite(amount):
            raise LatentError(f"direction {name!r}: amount {amount!r} must be a finite number")
        if abs(amount) > MAX_AMOUNT:
            raise LatentError(f"direction {name!r}: amount {amount} is beyond ±{MAX_AMOUNT}")
        vector = by_name[name].vector
        if vector.shape != (z.shape[-1],):
            raise LatentError(f"direction {name!r} has {vector.numel()} dims; the latent has {z.shape[-1]}")
        delta = delta + float(amount) * vector.float().cpu()
    return z + delta.to(z.device, z.dtype)


def preset_wants(preset: tuple[dict[str, bool], ...] | str) -> tuple[dict[str, bool], ...]:
    """(want_A, want_B, want_C) of an ARITHMETIC_PRESETS name, or of three non-empty {attribute: bool} dicts."""
    groups = _wants(preset)
    if len(groups) != 3 or not all(isinstance(g, dict) and g for g in groups):
        raise LatentError("a preset is three non-empty {attribute: bool} dicts (want_A, want_B, want_C)")
    return groups


def wanted_result(wants: tuple[dict[str, bool], ...] | str) -> dict[str, bool]:
    """The attributes the result of the paper's A - B + C should show, from a preset's (want_A, want_B, want_C).

    The rule, per attribute k, in saturating {0, 1} logic: r = clamp(a - b + c, 0, 1) with a, b, c the wanted
    values (True = 1, False = 0) and a key missing from a group meaning "not constrained": it stands for an unknown
    value u, the same in every group that leaves k open (such groups are drawn alike as far as k goes, so they
    cancel). k is wanted with value r when r is the same for u = 0 and u = 1, and is left out otherwise.

    "smiling woman - neutral woman + neutral man": Smiling 1-0+0 = 1, Male 0-0+1 = 1 -> {Smiling: True, Male: True}.
    "blond woman - black-haired woman + black-haired man": Blond_Hair 1-u+u = 1, Male 1, Black_Hair u-1+1 = u (open)
    -> {Blond_Hair: True, Male: True}. A value pushed past 1 or below 0 saturates: 1-0+1 gives True.
    """
    groups = preset_wants(wants)
    out: dict[str, bool] = {}
    for key in dict.fromkeys(k for group in groups for k in group):  # first-seen order
        values = [min(1, max(0, a - b + c)) for a, b, c in
                  ([int(g[key]) if key in g else u for g in groups] for u in (0, 1))]
        if values[0] == values[1]:
            out[key] = bool(values[0])
    return out


def _result_sides(wants: tuple[dict[str, bool], ...]) -> tuple[list[dict[str, bool]], list[float]]:
    """What each group's picks must make the arithmetic show, and the group's sign in it: for the paper's three
    groups, A - B + C must land on ``wanted_result`` (signs +1, -1, +1); any other number of groups, or three whose
    result constrains nothing, stand alone (each its own result, sign +1)."""
    result = wanted_result(wants) if len(wants) == 3 and all(wants) else {}
    if result:
        return [result] * 3, [1.0, -1.0, 1.0]
    return [dict(w) for w in wants], [1.0] * len(wants)


def result_boundaries(proba: torch.Tensor, z: torch.Tensor, classifier: Any, result: dict[str, bool]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear boundaries in z of the result's attributes, where the result must land: (unit normals [D, K], offsets [K]),
    oriented so that z @ normals + offsets is the signed distance to the wanted side of each.

    Each attribute's boundary is a logistic regression on the rated seeds that already show the result's other
    attributes (glasses among women, for "a woman with glasses"), because attributes in z are entangled: glasses
    lie on the male side, so the boundary among all faces misplaces it for women. Too few such seeds on either side
    (under MIN_SIDE) and it is fitted on all of them.
    """
    columns = _label_index(classifier, list(result))
    p = proba[:, columns].double().clamp(0, 1)
    on_side = torch.stack([(p[:, j] >= THRESHOLD) == v for j, v in enumerate(result.values())], 1)
    normals, offsets = [], []
    for j, wanted in enumerate(result.values()):
        rows = on_side[:, [i for i in range(len(result)) if i != j]].all(1)
        if min(int(on_side[rows, j].sum()), int((~on_side[rows, j]).sum())) < MIN_SIDE:
            rows = torch.ones_like(rows)
        target = p[rows, j] if wanted else 1 - p[rows, j]
        weight, bias = _fit_boundaries(z[rows], target[:, None], balanced=False)
        length = weight[:, 0].norm().clamp_min(1e-12)
        normals.append(weight[:, 0] / length)
        offsets.append(bias[0] / length)
    return torch.stack(normals, 1), torch.stack(offsets)


def _mixes(k: int) -> torch.Tensor:
    """Weights over k attributes on a grid of the simplex (11 mixes for two, in steps of 0.1): [M, k]."""
    steps = max(2, MIX_STEPS // k)
    grid = [c for c in itertools.product(range(steps + 1), repeat=k) if sum(c) == steps]
    return torch.tensor(grid, dtype=torch.float64) / steps


def _confidence(p: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Joint log-probability of the wanted values, labels taken as independent: [N]."""
    p = p.clamp(1e-6, 1 - 1e-6)
    return torch.where(want, p.log(), (1 - p).log()).sum(1)


def _tiers(proba: torch.Tensor, classifier: Any, want: dict[str, bool]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per seed: 2 when it clearly shows every wanted value (p >= CLEAR or <= 1 - CLEAR), 1 when merely (on the
    wanted side of THRESHOLD), 0 otherwise; whether it shows them; and their joint confidence."""
    p = proba[:, _label_index(classifier, list(want))].double()
    wanted = torch.tensor(list(want.values()))
    shown = ((p >= THRESHOLD) == wanted).all(1)
    clear = torch.where(wanted, p >= CLEAR, p <= 1 - CLEAR).all(1)
    return clear.long() + shown.long(), shown, _confidence(p, wanted)


def _ordered(tier: torch.Tensor, shown: torch.Tensor, score: torch.Tensor, confidence: torch.Tensor, count: int) -> list[int]:
    """The first ``count`` indices by tier, then by score among seeds that show the group (by confidence among those
    that do not)."""
    by_rank = torch.sort(-torch.where(shown, score, confidence), stable=True).indices  # equal ranks: lower index first
    return by_rank[torch.sort(-tier[by_rank], stable=True).indices[:count]].tolist()


def _check_pick(want: dict[str, bool], count: int, search: int) -> None:
    if not want:
        raise LatentError("exemplar search needs at least one attribute in `want`")
    if count < 1 or search < count:
        raise LatentError(f"count {count} and search {search}: need 1 <= count <= search")


def pick_exemplar_seeds(G: nn.Module, classifier: Any, want: dict[str, bool], count: int = 3, search: int = 2000,
                        seed_start: int = 0, z_dim: int | None = None) -> list[int]:
    """Seeds among seed_start .. seed_start+search-1 that most clearly have/lack each label in ``want``."""
    return pick_preset_seeds(G, classifier, (want,), count=count, search=search, seed_start=seed_start, z_dim=z_dim)[0]


def _wants(wants: tuple[dict[str, bool], ...] | str) -> tuple[dict[str, bool], ...]:
    if isinstance(wants, str):
        if wants not in ARITHMETIC_PRESETS:
            raise LatentError(f"preset {wants!r} is not one of {sorted(ARITHMETIC_PRESETS)}")
        return ARITHMETIC_PRESETS[wants]
    return tuple(wants)


def pick_preset_seeds(G: nn.Module, classifier: Any, wants: tuple[dict[str, bool], ...] | str, *, count: int = 3,
                      search: int = 2000, seed_start: int = 0, z_dim: int | None = None) -> list[list[int]]:
    """``pick_exemplar_seeds`` for several groups (or an ARITHMETIC_PRESETS name), rating the searched seeds once
    (and the candidate results, for the paper's three groups: ``pick_from_ratings`` with G)."""
    wants = _wants(wants)
    for want in wants:
        _check_pick(want, count, search)
    z_dim = z_dim or infer_z_dim(G)
    proba = rate_latents(G, classifier, latents_from_seeds(list(range(seed_start, seed_start + search)), z_dim))
    return pick_from_ratings(proba, classifier, wants, count=count, seed_start=seed_start, z_dim=z_dim, G=G)


def pick_from_ratings(proba: torch.Tensor, classifier: Any, wants: tuple[dict[str, bool], ...] | str, *, z_dim: int,
                      count: int = 3, seed_start: int = 0,
                      boundaries: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                      G: nn.Module | None = None) -> list[list[int]]:
    """``pick_preset_seeds`` from ratings already made: proba [N, K] of seeds seed_start .. seed_start+N-1
    (dcgan.ratings caches them beside the checkpoint).

    Per group, the exemplars are seeds the classifier sees clearly in the group (p >= 0.9, or <= 0.1, on every
    wanted attribute) whose latents lie deepest toward the side of the result's boundaries (``result_boundaries``)
    the group's sign in A - B + C pushes the result to, less a length weight times their length; only along the
    attributes the group does not want the other way (the smiling woman is not pushed toward "man"). How much each
    attribute counts is a mix (what glasses gain in depth a woman may lose in femininity). ``boundaries`` (one per
    group, as ``preset_boundaries`` gives) come from a larger pool of ratings where there is one; without, they are
    fitted on ``proba``.

    Without ``G`` the mix is the one whose predicted result (the signed sum of each group's first ``count``, under
    LENGTH_WEIGHT) clears its nearest boundary by the most. With ``G`` every mix under each of
    CHECKED_LENGTH_WEIGHTS is a candidate, the classifier rates each candidate's G(Y), and the one that shows the
    most wanted attributes, then shows its least certain one most clearly, is kept: G is not linear, and the
    paper's authors, who chose exemplars by eye, saw their results too (README: how a preset picks its exemplars).
    """
    wants = _wants(wants)
    for want in wants:
        _check_pick(want, count, len(proba))
    seeds = list(range(seed_start, seed_start + len(proba)))
    z = latents_from_seeds(seeds, z_dim)
    results, signs = _result_sides(wants)
    if boundaries is None:
        boundaries = _fitted_boundaries(proba, z, classifier, results)
    groups = [(*_tiers(proba, classifier, want), sign,  # a group never pushes against its own wanted value
               torch.tensor([want.get(k, v) == (v == (sign > 0)) for k, v in result.items()], dtype=torch.float64))
              for want, result, sign in zip(wants, results, signs)]
    if min(signs) > 0:  # the groups stand alone, each with its own result
        orders = [_candidates(z, [group], *bounds, count, (LENGTH_WEIGHT,))[0][0] for group, bounds in zip(groups, boundaries)]
    elif G is None:  # A - B + C: one result, the groups picked together
        orders = _candidates(z, groups, *boundaries[0], count, (LENGTH_WEIGHT,))[0]
    else:
        candidates = _candidates(z, groups, *boundaries[0], count, CHECKED_LENGTH_WEIGHTS)
        results_y = torch.stack([arithmetic(*(z[order] for order in orders)) for orders in candidates])
        orders = candidates[_best_rated(rate_latents(G, classifier, results_y), classifier, results[0])]
    return [[seeds[i] for i in order] for order in orders]


def _best_rated(proba: torch.Tensor, classifier: Any, result: dict[str, bool]) -> int:
    """Index of the candidate result whose rating shows the most wanted values, then its least certain one best
    (the first among equals: candidates come best predicted first)."""
    p = proba[:, _label_index(classifier, list(result))].double()
    wanted = torch.tensor(list(result.values()))
    on_side = torch.where(wanted, p, 1 - p)
    shown, weakest = (on_side >= THRESHOLD).sum(1).tolist(), on_side.min(1).values.tolist()
    return max(range(len(p)), key=lambda i: (shown[i], weakest[i], -i))


def _candidates(z: torch.Tensor, groups: list[tuple], normals: torch.Tensor, offsets: torch.Tensor, count: int,
                length_weights: tuple[float, ...]) -> list[list[list[int]]]:
    """Each group's first ``count`` seeds (groups: (tier, shown, confidence, sign, pushed attributes)), one such
    list per mix of the result's attributes and length weight, distinct, best predicted first: by how many of the
    result's boundaries the predicted Y (the signed sum of each group's mean) lies past, then how far past its
    nearest (so an attribute the generator cannot make does not take every other one down with it); among equals,
    in the order tried."""
    z64 = z.double()
    projections, length = z64 @ normals, z64.norm(dim=1)
    scored: dict[tuple, tuple[tuple[int, float], list[list[int]]]] = {}
    for weight in length_weights:
        for mix in _mixes(normals.shape[1]):
            orders = [_ordered(tier, shown, sign * (projections @ (mix * pushed)) - weight * length, confidence, count)
                      for tier, shown, confidence, sign, pushed in groups]
            key = tuple(tuple(order) for order in orders)
            if key not in scored:
                margins = sum(g[3] * z64[order].mean(0) for g, order in zip(groups, orders)) @ normals + offsets
                scored[key] = ((int((margins > 0).sum()), float(margins.min())), orders)
    return [orders for _, orders in sorted(scored.values(), key=lambda v: v[0], reverse=True)]  # stable


def preset_boundaries(proba: torch.Tensor, classifier: Any, wants: tuple[dict[str, bool], ...] | str, *, z_dim: int,
                      seed_start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``result_boundaries`` of what each group of ``wants`` must make the arithmetic show, fitted on the ratings
    proba [N, K] of seeds seed_start .. seed_start+N-1: one (normals, offsets) per group."""
    z = latents_from_seeds(list(range(seed_start, seed_start + len(proba))), z_dim)
    return _fitted_boundaries(proba, z, classifier, _result_sides(_wants(wants))[0])


def _fitted_boundaries(proba: torch.Tensor, z: torch.Tensor, classifier: Any, results: list[dict[str, bool]]
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``result_boundaries`` of each group's result (``_result_sides``) for the seeds' latents z [N, D], each
    distinct result fitted once."""
    z = z.double()
    fitted: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for result in results:
        key = repr(result)
        if key not in fitted:
            fitted[key] = result_boundaries(proba, z, classifier, result)
    return [fitted[repr(result)] for result in results]


# ----------------------------------------------------------------------------------------------------------------
# files

def directions_path(checkpoint_path: Path | str) -> Path:
    """The directions file of a checkpoint: <dir>/directions.safetensors for a run dir (or its generator file),
    x.directions.safetensors for any other x.safetensors."""
    return file_beside(checkpoint_path, DIRECTIONS_FILE, DIRECTIONS_SUFFIX)


def save_directions(directions: list[Direction], path: Path | str, *, fingerprint: str = "") -> None:
    """Write a directions file atomically: vectors [K, z_dim] float32, names/strengths/kinds/labels as JSON metadata."""
    if not directions:
        raise LatentError("no directions to save")
    names = [d.name for d in directions]
    if len(set(names)) != len(names):
        raise LatentError(f"direction names must be unique: {names}")
    if len({d.vector.numel() for d in directions}) != 1:
        raise LatentError("directions have different lengths")
    bad_kinds = sorted({d.kind for d in directions} - set(KINDS))
    if bad_kinds:
        raise LatentError(f"direction kinds {bad_kinds} are not among {KINDS}")
    vectors = torch.stack([d.vector.detach().float().cpu().flatten() for d in directions]).contiguous()
    entries = [{"name": d.name, "strength": float(d.strength), "kind": d.kind, "label": d.label} for d in directions]
    metadata = {"format_version": str(DIRECTIONS_FORMAT_VERSION), "content": "dcgan-directions",
                "directions": json.dumps(entries), "generator_fingerprint": fingerprint}
    save_safetensors({"vectors": vectors}, path, metadata=metadata)


def load_directions(path: Path | str, *, fingerprint: str | None = None) -> list[Direction]:
    """Read and validate a directions file; CheckpointError if it is damaged, foreign, or (given ``fingerprint``)
    computed for a different generator."""
    path = Path(path)
    metadata, tensors = load_safetensors(path, max_bytes=MAX_DIRECTIONS_BYTES, what="directions file")
    check_made_for(metadata, path, content="dcgan-directions", version=DIRECTIONS_FORMAT_VERSION, fingerprint=fingerprint,
                   what="a directions file", remedy="recompute with `dcgan directions`")
    if "vectors" not in tensors:
        raise CheckpointError(f"{path}: damaged directions file (no 'vectors' tensor)")
    vectors, entries = tensors["vectors"], metadata_json(metadata, "directions", path)
    if not isinstance(entries, list) or vectors.ndim != 2 or len(entries) != len(vectors) or vectors.dtype != torch.float32:
        raise CheckpointError(f"{path}: metadata lists {len(entries) if isinstance(entries, list) else '?'} directions "
                              f"for vectors {tuple(vectors.shape)}")
    out = []
    for entry, vector in zip(entries, vectors):
        ok = (isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry.get("kind") in KINDS
              and isinstance(entry.get("label", ""), str) and isinstance(entry.get("strength"), (int, float))
              and math.isfinite(entry["strength"]))
        if not ok:
            raise CheckpointError(f"{path}: bad direction entry {entry!r}")
        if not torch.isfinite(vector).all() or abs(float(vector.norm()) - 1) > 1e-3:
            raise CheckpointError(f"{path}: direction {entry['name']!r} is not a finite unit vector")
        out.append(Direction(entry["name"], vector.clone(), float(entry["strength"]), entry["kind"], entry.get("label", "")))
    if len({d.name for d in out}) != len(out):
        raise CheckpointError(f"{path}: direction names repeat")
    return out


def shipped_classifier(dataset: str | None) -> Any:
    """dcgan.classifiers' classifier for ``dataset``, or None when there is none.

    dcgan.classifiers is imported here, not at the top, so directions work in installs without it.
    """
    if not dataset:
        return None
    try:
        from . import classifiers
    except ModuleNotFoundError as exc:
        log.info("no classifiers module (%s); no labelled directions", exc)
        return None
    try:
        return classifiers.load_classifier(dataset)
    except CheckpointError as exc:
        log.info("no classifier for %s (%s); no labelled directions", dataset, exc)
        return None


def unlabelled_directions(G: nn.Module, k: int = 10, n: int = 5000) -> list[Direction]:
    """SeFa and PCA directions (k of each, capped at z_dim): no classifier needed, fast enough to compute on demand."""
    k = min(k, infer_z_dim(G))
    return sefa_directions(G, k) + pca_directions(G, k, n)


def compute_directions(G: nn.Module, info: GeneratorInfo, *, k: int = 10, n: int = 5000, classifier: Any = None,
                       labelled: bool = True) -> list[Direction]:
    """SeFa and PCA directions, plus labelled ones (unless ``labelled`` is False) when ``classifier`` is given or
    ``dcgan.classifiers`` has one for the checkpoint's data set. k is capped at z_dim."""
    directions = unlabelled_directions(G, k, n)
    if labelled and classifier is None:
        classifier = shipped_classifier(info.info.get("dataset") if isinstance(info.info, dict) else None)
    if labelled and classifier is not None:
        directions += labelled_directions(G, classifier, n)
    return directions


def _cached_directions(path: Path, G: nn.Module, fingerprint: str) -> list[Direction] | None:
    """The directions file at ``path`` if it was computed for exactly this generator, else None."""
    if not path.exists():
        return None
    try:
        directions = load_directions(path, fingerprint=fingerprint)
    except CheckpointError as exc:
        log.warning("%s; recomputing", exc)
        return None
    if any(d.vector.numel() != infer_z_dim(G) for d in directions):
        log.warning("%s: directions do not match z_dim %d; recomputing", path, infer_z_dim(G))
        return None
    return directions


def _save_quietly(directions: list[Direction], path: Path, fingerprint: str) -> None:
    try:
        save_directions(directions, path, fingerprint=fingerprint)
    except (CheckpointError, OSError) as exc:  # a read-only checkpoint folder only costs recomputation next time
        log.info("directions not cached: %s", exc)


def start_directions(checkpoint_path: Path | str, G: nn.Module, classifier: Any) -> tuple[list[Direction], bool]:
    """The directions usable at once, and whether labelled ones (slow: a classifier rates n samples) are still to
    be added by ``finish_directions``.

    The cache rule: the file beside the checkpoint is used when it belongs to G (weights fingerprint and z_dim).
    One saved before a classifier existed keeps its SeFa/PCA directions and gains the labelled ones. Otherwise
    SeFa and PCA are computed now (milliseconds) and, when there is no classifier, saved.
    """
    path = directions_path(checkpoint_path)
    fingerprint = generator_fingerprint(G)
    cached = _cached_directions(path, G, fingerprint)
    if cached is not None and (classifier is None or any(d.kind in LABELLED_KINDS for d in cached)):
        return cached, False
    if cached is not None:
        log.info("%s: a classifier is now available; adding labelled directions", path)
        return cached, True
    quick = unlabelled_directions(G)
    if classifier is None:
        _save_quietly(quick, path, fingerprint)
    return quick, classifier is not None


def finish_directions(checkpoint_path: Path | str, G: nn.Module, quick: list[Direction], classifier: Any) -> list[Direction]:
    """``quick`` plus the labelled directions of ``classifier``, saved beside the checkpoint for next time."""
    directions = list(quick) + labelled_directions(G, classifier)
    _save_quietly(directions, directions_path(checkpoint_path), generator_fingerprint(G))
    return directions


def load_or_compute_directions(checkpoint_path: Path | str, G: nn.Module, info: GeneratorInfo,
                               classifier: Any = None) -> list[Direction]:
    """Every direction of G: the file beside the checkpoint if it matches, else computed and saved there.

    ``classifier`` defaults to the shipped one for the checkpoint's data set. The explorer runs the same two steps,
    ``start_directions`` at once and ``finish_directions`` in the background.
    """
    if classifier is None:
        classifier = shipped_classifier(info.info.get("dataset") if isinstance(info.info, dict) else None)
    directions, incomplete = start_directions(checkpoint_path, G, classifier)
    return finish_directions(checkpoint_path, G, directions, classifier) if incomplete else directions
