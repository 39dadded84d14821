"""Offline quality metrics on the shipped classifiers' features, as a StyleGAN3-style `register_metric` registry.

Each metric compares a set of images with real reference images (a fixed sample of the train split) and returns
dict[str, float]. `real_floor` scores held-out real images (the test split) the same way, so a generator's number
can be read against what real data gets; `evaluate` reports both. Nothing here touches the global RNG.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save as st_save
from torch import nn

from . import datasets
from .classifiers import Classifier, load_classifier
from .config import DataConfig
from .errors import CheckpointError, ConfigError, DatasetError, LatentError
from .images import quantise
from .io import atomic_write_bytes
from .latent import MAX_SEED, latents_from_seeds

log = logging.getLogger(__name__)

FLOOR_VERSION = 1       # bump when a metric's definition changes: cached floors are keyed by it
REFERENCE_SEED = 0      # picks the reference sample of the train split (fixed, so floors cache across seeds)
COLLAPSE_LOW, COLLAPSE_HIGH = 0.02, 0.30  # a class under 2% or over 30% of samples (10 balanced classes: 10% each)


# ----------------------------------------------------------------------------------------------------------------
# real data splits

def _splits(dataset: str) -> tuple[int, int]:
    """(train, test) sizes of the data set's metric splits, from its DatasetSpec."""
    splits = datasets.get_spec(dataset).splits
    if splits is None:
        with_splits = [name for name, spec in datasets.DATASETS.items() if spec.splits]
        raise DatasetError(f"no train/test split is defined for dataset {dataset!r}; metrics exist for {', '.join(with_splits)}")
    return splits


def load_split(dataset: str, split: str, *, root: str = "", image_size: int, channels: int) -> datasets.ImageData:
    """Real images of ``split`` ("train" or "test") as uint8 [N, channels, image_size, image_size].

    Data sets with an official test split use it (mnist, fashion-mnist: 60k/10k); the others split their first
    images by the sizes in their DatasetSpec (celeba: faces 1-8000 vs 8001-10000).
    """
    if split not in ("train", "test"):
        raise DatasetError(f"split {split!r} must be 'train' or 'test'")
    n_train, n_test = _splits(dataset)
    if datasets.get_spec(dataset).load_test is not None:
        return datasets.build(DataConfig(dataset=dataset, root=root), image_size, channels, test=split == "test")
    data = datasets.build(DataConfig(dataset=dataset, root=root, max_images=n_train + n_test), image_size, channels)
    if len(data) < n_train + n_test or data.labels is None:
        raise DatasetError(f"{dataset} under {root or 'the default data root'}: the metrics need the first {n_train + n_test} "
                           f"labelled images, found {len(data)}{'' if data.labels is not None else ' without labels'}")
    part = slice(0, n_train) if split == "train" else slice(n_train, n_train + n_test)
    return datasets.ImageData(data.images[part], data.labels[part], data.label_names)


# ----------------------------------------------------------------------------------------------------------------
# the pure math

def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features a [N, F] and b [M, F] (float64 eigh, no scipy)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    # tr sqrt(A B) = sum sqrt(eig(sqrt(A) B sqrt(A))), a symmetric PSD product, so eigh is stable
    vals, vecs = torch.linalg.eigh(cov_a)
    sqrt_a = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    tr_covmean = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * tr_covmean)


def kernel_distance(a: torch.Tensor, b: torch.Tensor, *, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel (x.y/F + 1)^3, averaged over random subsets."""
    a, b = a.double(), b.double()
    dim = a.shape[1]
    m = min(len(a), len(b), max_subset_size)
    rng = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = a[torch.randperm(len(a), generator=rng)[:m]]
        y = b[torch.randperm(len(b), generator=rng)[:m]]
        k_xx, k_yy, k_xy = [(u @ v.T / dim + 1) ** 3 for u, v in ((x, x), (y, y), (x, y))]
        within = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
        total += float(within / (m - 1) - k_xy.sum() * 2 / m)
    return total / num_subsets / m


def _kth_neighbour_radius(x: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row: [N]."""
    return torch.cat([torch.cdist(chunk, x).kthvalue(k + 1, dim=1).values for chunk in x.split(batch)])


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch: int) -> float:
    """Fraction of points inside at least one ball (centre, radius)."""
    inside = [(torch.cdist(chunk, centres) <= radii[None]).any(1) for chunk in points.split(batch)]
    return float(torch.cat(inside).float().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = 3, batch: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls in feature space.

    precision: fraction of fakes inside the real manifold; recall: fraction of reals inside the fake manifold.
    """
    real, fake = real.float(), fake.float()
    precision = _coverage(fake, real, _kth_neighbour_radius(real, k, batch), batch)
    recall = _coverage(real, fake, _kth_neighbour_radius(fake, k, batch), batch)
    return precision, recall


def inception_score(probs: torch.Tensor, kind: str) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over the whole set (one split).

    classes: the usual score, 1 (no confident, varied predictions) to K. attributes: the binary score of each
    attribute (1 to 2), averaged over the attributes.
    """
    p = probs.double().clamp(1e-12, 1)
    if kind == "classes":
        return math.exp(float((p * (p.log() - p.mean(0).log())).sum(1).mean()))
    q = 1 - probs.double().clamp(0, 1 - 1e-12)
    p_mean, q_mean = p.mean(0), q.mean(0)
    kl = p * (p.log() - p_mean.log()) + q * (q.log() - q_mean.log())  # [N, A]
    return float(kl.mean(0).exp().mean())


def label_rates(probs: torch.Tensor, kind: str) -> torch.Tensor:
    """classes: fraction of samples per predicted class [K]; attributes: fraction with each attribute [A]."""
    if kind == "classes":
        return torch.bincount(probs.argmax(1), minlength=probs.shape[1]).double() / len(probs)
    return (probs > 0.5).double().mean(0)


# ----------------------------------------------------------------------------------------------------------------
# the registry

@dataclass
class FeatureSet:
    features: torch.Tensor  # float32 [N, F]: the classifier's penultimate layer
    probs: torch.Tensor     # float32 [N, K]: class or attribute probabilities

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class MetricOptions:
    real: FeatureSet        # the reference: real training images
    fake: FeatureSet        # the set scored: generated images, or held-out real ones for the floor
    kind: str               # "classes" or "attributes"
    label_names: list[str]
    seed: int = 0           # seeds KID's subsets


MetricFn = Callable[[MetricOptions], dict[str, float]]
_metric_dict: dict[str, MetricFn] = {}


def register_metric(fn: MetricFn) -> MetricFn:
    _metric_dict[fn.__name__] = fn
    return fn


def is_valid_metric(name: str) -> bool:
    return name in _metric_dict


def list_valid_metrics() -> list[str]:
    return list(_metric_dict)


@register_metric
def fid(opts: MetricOptions) -> dict[str, float]:
    return {"fid": frechet_distance(opts.real.features, opts.fake.features)}


@register_metric
def kid(opts: MetricOptions) -> dict[str, float]:
    return {"kid": kernel_distance(opts.real.features, opts.fake.features, seed=opts.seed)}


@register_metric
def pr(opts: MetricOptions) -> dict[str, float]:
    precision, recall = precision_recall(opts.real.features, opts.fake.features, k=3)
    return {"precision": precision, "recall": recall}


@register_metric
def inception(opts: MetricOptions) -> dict[str, float]:
    return {"is": inception_score(opts.fake.probs, opts.kind)}


@register_metric
def hist(opts: MetricOptions) -> dict[str, float]:
    """Predicted label rates of the scored set, and their distance to the reference's rates."""
    fake, real = label_rates(opts.fake.probs, opts.kind), label_rates(opts.real.probs, opts.kind)
    if opts.kind == "classes":
        summary = {"hist_tv": float((fake - real).abs().sum() / 2)}  # total variation distance
        prefix = "hist/"
    else:
        summary = {"attr_mae": float((fake - real).abs().mean())}   # mean absolute rate difference
        prefix = "attr/"
    return {**summary, **{prefix + name: float(rate) for name, rate in zip(opts.label_names, fake)}}


def compute_metrics(real: FeatureSet, fake: FeatureSet, classifier: Classifier, metrics: list[str] | None = None,
                    *, seed: int = 0) -> dict[str, float]:
    names = list_valid_metrics() if metrics is None else metrics
    unknown = [m for m in names if not is_valid_metric(m)]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; valid metrics are {list_valid_metrics()}")
    opts = MetricOptions(real, fake, classifier.kind, classifier.label_names, seed)
    out: dict[str, float] = {}
    for name in names:
        out.update(_metric_dict[name](opts))
    return out


# ----------------------------------------------------------------------------------------------------------------
# features of real and generated images, cached

def _cache_key(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _root_key(root: str) -> str:
    return str(Path(root).resolve()) if root else ""


def image_features(images: torch.Tensor, classifier: Classifier, *, batch_size: int = 1000) -> FeatureSet:
    """Features of uint8 [N, C, H, W] images, converted to [-1, 1] batch by batch."""
    parts = [classifier.features_and_proba(datasets.batch_to_float(chunk)) for chunk in images.split(batch_size)]
    return FeatureSet(torch.cat([f for f, _ in parts]), torch.cat([p for _, p in parts]))


def real_features(dataset: str, split: str, n: int, classifier: Classifier,
                  *, root: str = "", image_size: int, channels: int) -> FeatureSet:
    """Features of min(n, split size) real images (a fixed random sample), cached in the user cache folder."""
    key = _cache_key(dataset, split, n, _root_key(root), image_size, channels, classifier.digest, FLOOR_VERSION)
    path = datasets.default_cache_dir() / "metrics" / f"features-{dataset}-{split}-{image_size}px-{channels}ch-n{n}-{key}.safetensors"
    if path.exists():
        try:
            blob = st_load_file(str(path))
            return FeatureSet(blob["features"], blob["probs"])
        except (OSError, KeyError, SafetensorError):
            path.unlink(missing_ok=True)  # a damaged cache is recomputed
    data = load_split(dataset, split, root=root, image_size=image_size, channels=channels)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:n]
    feats = image_features(data.images[index], classifier)
    _write_cache(st_save({"features": feats.features.contiguous(), "probs": feats.probs.contiguous()}), path)
    return feats


def _write_cache(data: bytes, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(data, path)
    except (OSError, CheckpointError) as exc:
        log.warning("could not cache %s (%s); it will be recomputed next time", path, exc)  # an optimisation only


@torch.no_grad()
def generated_features(G: nn.Module, classifier: Classifier,
                       *, n: int, seed: int, z_dim: int, batch_size: int = 250) -> tuple[FeatureSet, tuple[int, int]]:
    """Features of G's images for latent seeds seed..seed+n-1 (dcgan.latent's seed contract); also (image_size, channels)."""
    if seed < 0 or seed + n - 1 > MAX_SEED:
        raise LatentError(f"seeds {seed}..{seed + n - 1} leave the range 0..{MAX_SEED}")
    device = next(G.parameters(), torch.empty(0)).device
    feats, probs, shape = [], [], None
    for start in range(seed, seed + n, batch_size):
        z = latents_from_seeds(list(range(start, min(start + batch_size, seed + n))), z_dim).to(device)
        x = G(z).float()
        shape = (x.shape[-1], x.shape[1])
        f, p = classifier.features_and_proba(x)
        feats.append(f)
        probs.append(p)
    return FeatureSet(torch.cat(feats), torch.cat(probs)), shape


# ----------------------------------------------------------------------------------------------------------------
# the public entry points

def _floor_sizes(dataset: str, n: int) -> tuple[int, int]:
    """(reference, held-out) sizes: n capped by the train and test splits."""
    n_train, n_test = _splits(dataset)
    return min(n, n_train), min(n, n_test)


def real_floor(dataset: str, n: int = 10000, *, root: str = "", image_size: int | None = None, channels: int | None = None,
               classifier: Classifier | None = None) -> dict[str, float]:
    """Every metric for held-out real images (test split) against the train-split reference: the best a generator
    that has not memorised its data can expect. Computed once per setting and cached as JSON.

    image_size/channels default to the classifier's own; pass the generator's so real images are resized as its
    training data was. n is capped by the splits (celeba: 8000 reference, 2000 held-out faces).
    """
    classifier = classifier or load_classifier(dataset)
    image_size, channels = image_size or classifier.image_size, channels or classifier.channels
    n_ref, n_test = _floor_sizes(dataset, n)
    key = _cache_key(dataset, n_ref, n_test, _root_key(root), image_size, channels, classifier.digest, FLOOR_VERSION, list_valid_metrics())
    path = datasets.default_cache_dir() / "metrics" / f"floor-{dataset}-{image_size}px-{channels}ch-n{n_ref}-{key}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            path.unlink(missing_ok=True)  # a damaged cache is recomputed
    log.info("computing the real-vs-real floor for %s (%d train vs %d held-out images)", dataset, n_ref, n_test)
    real = real_features(dataset, "train", n_ref, classifier, root=root, image_size=image_size, channels=channels)
    held_out = real_features(dataset, "test", n_test, classifier, root=root, image_size=image_size, channels=channels)
    floor = compute_metrics(real, held_out, classifier)
    _write_cache(json.dumps(floor, indent=1).encode(), path)
    return floor


def evaluate(G: nn.Module, dataset: str, n: int = 10000, seed: int = 0, *, z_dim: int, root: str = "",
             classifier: Classifier | None = None, metrics: list[str] | None = None, batch_size: int = 250) -> dict:
    """Score generator G (eval mode, outputs [N, C, H, W] in [-1, 1]) on n samples with latent seeds seed..seed+n-1.

    Returns {"dataset", "n", "seed", "image_size", "channels", "metrics": {name: value}, "floor": {name: value},
    "floor_n": {"reference", "held_out"}, "classifier"}; metrics and floor share their keys.
    """
    if n < 2:
        raise ConfigError(f"n: {n}; the metrics need at least 2 samples")
    classifier = classifier or load_classifier(dataset)
    fake, (image_size, channels) = generated_features(G, classifier, n=n, seed=seed, z_dim=z_dim, batch_size=batch_size)
    n_ref, n_test = _floor_sizes(dataset, n)
    real = real_features(dataset, "train", n_ref, classifier, root=root, image_size=image_size, channels=channels)
    scores = compute_metrics(real, fake, classifier, metrics)
    floor = real_floor(dataset, n, root=root, image_size=image_size, channels=channels, classifier=classifier)
    return {"dataset": dataset, "n": n, "seed": seed, "image_size": image_size, "channels": channels, "metrics": scores,
            "floor": {k: floor[k] for k in scores}, "floor_n": {"reference": n_ref, "held_out": n_test},
            "classifier": classifier.digest}


# ----------------------------------------------------------------------------------------------------------------
# reading a score: what changes nobody would notice in a real image cost

def _blur(x: torch.Tensor) -> torch.Tensor:
    """Half-strength [1 2 1]/4 blur: the mean of the image and its binomially blurred copy."""
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None]).div(16).expand(x.shape[1], 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])
    return (x + blurred) / 2


PERTURBATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "shifted right by 1 pixel": lambda x, rng: torch.roll(x, 1, dims=-1),
    "Gaussian noise, sigma 2.5% of the range": lambda x, rng: x + 0.05 * torch.randn(x.shape, generator=rng),
    "contrast 90%": lambda x, rng: (x + 1) * 0.9 - 1,
    "half-strength 3x3 blur": lambda x, rng: _blur(x),
}


def perturbed_floors(dataset: str, n: int = 10000, *, root: str = "", image_size: int | None = None, channels: int | None = None,
                     classifier: Classifier | None = None, metrics: list[str] | None = None) -> dict[str, dict[str, float]]:
    """The floor's held-out real images after each of PERTURBATIONS (quantised back to uint8), scored like a generator.

    A generator whose samples were these images would be near perfect to the eye, so these numbers tell how close to
    its floor a score can be expected to get. Returns {perturbation: {metric: value}}.
    """
    classifier = classifier or load_classifier(dataset)
    image_size, channels = image_size or classifier.image_size, channels or classifier.channels
    n_ref, n_test = _floor_sizes(dataset, n)
    real = real_features(dataset, "train", n_ref, classifier, root=root, image_size=image_size, channels=channels)
    held_out = load_split(dataset, "test", root=root, image_size=image_size, channels=channels)
    index = torch.randperm(len(held_out), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:n_test]
    x = datasets.batch_to_float(held_out.images[index])
    out = {}
    for name, perturb in PERTURBATIONS.items():
        images = quantise(perturb(x, torch.Generator().manual_seed(REFERENCE_SEED)))
        out[name] = compute_metrics(real, image_features(images, classifier), classifier, metrics)
    return out


def collapse_warnings(result: dict) -> list[str]:
    """Plain-words warnings for an `evaluate` result: a collapsing class histogram, attribute rates far off, low recall."""
    scores, floor, out = result["metrics"], result["floor"], []
    classes = {key[5:]: rate for key, rate in scores.items() if key.startswith("hist/")}
    dominant = [f"{name!r} ({rate:.0%})" for name, rate in classes.items() if rate > COLLAPSE_HIGH]
    missing = [repr(name) for name, rate in classes.items() if rate < COLLAPSE_LOW]
    if dominant:
        out.append(f"class histogram collapsing: {', '.join(dominant)} of samples (over {COLLAPSE_HIGH:.0%}): mode collapse suspected")
    if missing:
        out.append(f"class histogram collapsing: {', '.join(missing)} in under {COLLAPSE_LOW:.0%} of samples: mode collapse suspected")
    for key, rate in scores.items():
        if key.startswith("attr/") and abs(rate - floor[key]) > 0.25:
            out.append(f"attribute {key[5:]!r} in {rate:.0%} of samples vs {floor[key]:.0%} of real images")
    if "recall" in scores and scores["recall"] < 0.5 * floor["recall"]:
        out.append(f"recall {scores['recall']:.2f} vs {floor['recall']:.2f} for real data: samples cover little of the data")
    return out
