"""Small CNN classifiers shipped with the package: the offline feature networks behind `dcgan.metrics`.

One per data set (MNIST, Fashion-MNIST digits/classes; CelebA's 40 attributes), stored as safetensors in
`dcgan/assets/classifiers/` with the architecture as JSON metadata (no pickle). `tools/train_classifier.py` retrains them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .datasets import DATASETS, LUMA
from .errors import CheckpointError, ConfigError
from .io import load_safetensors, metadata_json, module_tensors, read_header, save_safetensors

FORMAT_VERSION = 1
ASSETS_DIR = Path(__file__).resolve().parent / "assets" / "classifiers"
CLASSIFIER_DATASETS = tuple(name for name, spec in DATASETS.items() if spec.classifier)  # mnist, fashion-mnist, celeba
KINDS = ("classes", "attributes")
MAX_CLASSIFIER_BYTES = 64 * 2**20  # the shipped ones are a few MB
JUDGE_SUFFIX = "-judge"            # celeba-judge.safetensors: the second opinion of load_judge


# ----------------------------------------------------------------------------------------------------------------
# config and model

@dataclass
class ClassifierConfig:
    dataset: str = "mnist"         # data set the net was trained on
    kind: str = "classes"          # "classes": one softmax over label_names; "attributes": one sigmoid per label
    image_size: int = 28           # input side the net was trained at; other sizes are resized to it
    channels: int = 1              # 1 (grey) or 3 (RGB); the other count is converted
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # conv widths; each stage ends in a 2x2 max-pool
    convs_per_stage: int = 1       # 3x3 conv-BN-ReLU blocks per stage
    stem_stride: int = 1           # 2: the first conv halves the input (cheap at 64 px)
    feature_dim: int = 128         # penultimate width: the features FID, KID and precision/recall use
    dropout: float = 0.3           # before the output layer, during training only
    label_names: list[str] = field(default_factory=list)  # class names, or attribute names

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind: {self.kind!r} is not one of {KINDS}")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels: {self.channels} must be 1 or 3")
        if self.stem_stride not in (1, 2) or self.convs_per_stage < 1 or not self.widths:
            raise ConfigError("stem_stride must be 1 or 2, convs_per_stage >= 1 and widths non-empty")
        if self.final_side < 1:
            raise ConfigError(f"image_size {self.image_size} is too small for {len(self.widths)} pooling stages")
        if len(self.label_names) < 1:
            raise ConfigError("label_names: a classifier needs at least one label")

    @property
    def final_side(self) -> int:
        return self.image_size // self.stem_stride // 2 ** len(self.widths)


def _conv_block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]


class Classifier(nn.Module):
    """A VGG-style CNN: conv stages with max-pooling, a `feature_dim` embedding, then logits.

    `predict_proba` and `features` accept float [N, C, H, W] in [-1, 1] of any size and 1 or 3 channels, resize
    (bilinear, antialiased) and convert channels to what the net was trained on, and run in batches without grad.
    """

    def __init__(self, cfg: ClassifierConfig, *, batch_size: int = 500):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.batch_size = batch_size
        self.digest = ""  # sha1 prefix of the weights file it was loaded from (keys metric caches)
        layers: list[nn.Module] = []
        c_in = cfg.channels
        for i, width in enumerate(cfg.widths):
            for j in range(cfg.convs_per_stage):
                layers += _conv_block(c_in, width, cfg.stem_stride if i == j == 0 else 1)
                c_in = width
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(c_in * cfg.final_side**2, cfg.feature_dim), nn.BatchNorm1d(cfg.feature_dim), nn.ReLU(True))
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.feature_dim, len(cfg.label_names)))

    @property
    def label_names(self) -> list[str]:
        return list(self.cfg.label_names)

    @property
    def kind(self) -> str:
        return self.cfg.kind

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def channels(self) -> int:
        return self.cfg.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, channels, image_size, image_size] in [-1, 1] -> logits [N, K] (training path, no resizing)."""
        return self.head(self.embed(self.body(x)))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Any float [N, 1|3, H, W] in [-1, 1] -> [N, channels, image_size, image_size] on this net's device."""
        if x.ndim != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
            raise ValueError(f"expected a float image batch [N, 1 or 3, H, W] in [-1, 1], got {x.dtype} {tuple(x.shape)}")
        x = x.to(next(self.parameters()).device, torch.float32)
        if x.shape[1] != self.channels:
            x = x.expand(-1, 3, -1, -1) if self.channels == 3 else (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False)
        return x

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(1) if self.kind == "classes" else logits.sigmoid()

    @torch.no_grad()
    def features_and_proba(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [N, feature_dim], probabilities [N, K]) in one pass; float32 on the CPU."""
        feats, probs = [], []
        for chunk in x.split(self.batch_size):
            h = self.embed(self.body(self.prepare(chunk)))
            feats.append(h.float().cpu())
            probs.append(self._probabilities(self.head(h).float()).cpu())
        return torch.cat(feats), torch.cat(probs)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax, rows sum to 1) or per-attribute probabilities (sigmoid): [N, K]."""
        return self.features_and_proba(x)[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations [N, feature_dim] (after ReLU, so >= 0)."""
        return self.features_and_proba(x)[0]


def build_classifier(cfg: ClassifierConfig) -> Classifier:
    net = Classifier(cfg)
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net


# ----------------------------------------------------------------------------------------------------------------
# files

def classifier_path(dataset: str) -> Path:
    return ASSETS_DIR / f"{dataset}.safetensors"


def judge_path(dataset: str) -> Path:
    return ASSETS_DIR / f"{dataset}{JUDGE_SUFFIX}.safetensors"


def load_judge(dataset: str) -> Classifier | None:
    """A second classifier for ``dataset``, trained as the shipped one is but from another seed, or None when none
    is shipped (celeba has one). It scores what the shipped one picked: the arithmetic presets rate their
    candidate results with the shipped classifier, so its own verdict on them is not a fair measure."""
    path = judge_path(dataset)
    return load_classifier(dataset, path=path) if dataset in CLASSIFIER_DATASETS and path.is_file() else None


def has_classifier(dataset: str) -> bool:
    return dataset in CLASSIFIER_DATASETS and classifier_path(dataset).is_file()


def save_classifier(net: Classifier, path: Path, *, results: dict[str, Any],
                    training: dict[str, Any], dtype: torch.dtype = torch.float16) -> None:
    """Write weights (floats cast to ``dtype``) with the config, measured accuracies and training record as metadata."""
    metadata = {"format_version": str(FORMAT_VERSION), "config": json.dumps(asdict(net.cfg)),
                "results": json.dumps(results), "training": json.dumps(training)}
    save_safetensors(module_tensors(net, dtype), path, metadata=metadata)


def _classifier_metadata(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: format_version {metadata.get('format_version')}, expected {FORMAT_VERSION}")
    return {key: metadata_json(metadata, key, path, default="{}") for key in ("config", "results", "training")}


def read_classifier_metadata(path: Path) -> dict[str, Any]:
    """The JSON metadata of a classifier file: {"config", "results", "training"}; raises CheckpointError."""
    return _classifier_metadata(read_header(path).get("__metadata__") or {}, Path(path))


def load_classifier(dataset: str, *, path: Path | str | None = None) -> Classifier:
    """The shipped classifier for ``dataset`` (mnist, fashion-mnist, celeba) in eval mode on the CPU.

    ``path`` overrides the shipped file. Raises CheckpointError when the weights are missing or invalid.
    """
    if path is None:
        if dataset not in CLASSIFIER_DATASETS:
            raise CheckpointError(f"no classifier is shipped for dataset {dataset!r}; metrics exist for {list(CLASSIFIER_DATASETS)}")
        path = classifier_path(dataset)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: classifier weights for {dataset!r} are missing; "
                              f"reinstall the package or retrain them with `python tools/train_classifier.py --dataset {dataset}`")
    metadata, tensors = load_safetensors(path, max_bytes=MAX_CLASSIFIER_BYTES, what="classifier file")
    meta = _classifier_metadata(metadata, path)
    try:
        cfg = ClassifierConfig(**meta["config"])
        net = Classifier(cfg)
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: invalid classifier config in metadata: {exc}") from exc
    expected = net.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise CheckpointError(f"{path}: tensors do not match the classifier described in its metadata")
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    net.digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
    return net.eval().requires_grad_(False)
