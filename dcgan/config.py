"""Plain dataclasses for model, data and training options; `from_dict` rejects unknown keys and wrong types."""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from .errors import ConfigError, brief

ARCHITECTURES = ("dcgan", "keras")  # dcgan: the paper's all-conv nets; keras: the 28x28 Keras-GAN seed nets
D_NORMS = ("batch", "spectral")    # batch: the paper's BatchNorm in D; spectral: spectral norm on D's layers, no BatchNorm
AUGMENTATIONS = ("color", "translation", "cutout")  # DiffAugment's transforms (dcgan.augment), applied in this order
SWITCHES = ("auto", "on", "off")  # the settings of bf16, channels_last and flip: auto decides by hardware or data set
MAX_INTERVAL = 10**9  # the largest batch size or step interval (log, sample, checkpoint, eval) accepted
R1_EVERY = 16  # the R1 penalty is computed every this many steps, weighted by it (StyleGAN2's lazy regularisation)
BUDGET_LIMITS = {"epochs": 1e6, "max_steps": 10**12, "max_minutes": 60 * 24 * 365}  # larger means "never stop": refused


def parse_augment(policy: str) -> list[str]:
    """A DiffAugment policy such as "color,translation,cutout" -> its transforms in AUGMENTATIONS order; "" -> []."""
    if not isinstance(policy, str):
        raise ConfigError(f"augment: {brief(policy)} must be a string such as 'color,translation,cutout'")
    parts = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(AUGMENTATIONS))
    if unknown:
        raise ConfigError(f"augment: {brief(unknown)} not among {list(AUGMENTATIONS)}; "
                          "combine them with commas, e.g. color,translation,cutout")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"augment: {brief(policy)} names a transform twice")
    return [name for name in AUGMENTATIONS if name in parts]


def _from_dict(cls, values: dict[str, Any]):
    """Build dataclass `cls` from a dict, refusing unknown keys and values of the wrong type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(values).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown option(s) {unknown}; valid options are {sorted(known)}")
    converted = {}
    for name, value in values.items():
        allowed = typing.get_args(hints[name]) or (hints[name],)
        if value is None and type(None) in allowed:
            converted[name] = None
        elif isinstance(value, bool) != (bool in allowed):
            raise ConfigError(f"{cls.__name__}.{name}: {brief(value)} is not of type {hints[name]}")
        elif float in allowed and isinstance(value, (int, float)):
            converted[name] = float(value)
        elif any(t is not type(None) and isinstance(value, t) for t in allowed):
            converted[name] = value
        else:
            raise ConfigError(f"{cls.__name__}.{name}: {brief(value)} is not of type {hints[name]}")
    cfg = cls(**converted)
    cfg.validate()
    return cfg


class _Options:
    """`from_dict` for the option dataclasses: unknown keys and wrong types are refused, values validated."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        return _from_dict(cls, values)


@dataclass
class ModelConfig(_Options):
    arch: str = "dcgan"      # "dcgan" (paper, any power-of-two size 16-256) or "keras" (28x28 seed nets)
    image_size: int = 64     # output side in pixels; keras requires 28
    channels: int = 3        # 1 (grey) or 3 (RGB)
    z_dim: int = 100         # latent size; the paper uses 100
    ngf: int = 64            # generator width: channels of G's last hidden layer
    ndf: int = 64            # discriminator width: channels of D's first layer
    d_norm: str = "batch"    # D's normalisation: "batch" (the paper) or "spectral" (Miyato et al. 2018; G is unchanged)

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"arch: {brief(self.arch)} is not one of {ARCHITECTURES}")
        if self.arch == "dcgan":
            if not (16 <= self.image_size <= 256 and math.log2(self.image_size).is_integer()):
                raise ConfigError(f"image_size: {self.image_size} must be a power of two from 16 to 256 for arch 'dcgan'")
        elif self.image_size != 28:
            raise ConfigError(f"image_size: {self.image_size}; arch 'keras' is built for 28x28 images")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels: {self.channels} must be 1 or 3")
        if self.d_norm not in D_NORMS:
            raise ConfigError(f"d_norm: {brief(self.d_norm)} is not one of {D_NORMS}")
        for name in ("z_dim", "ngf", "ndf"):
            value = getattr(self, name)
            if not 1 <= value <= 4096:
                raise ConfigError(f"{name}: {value} must be between 1 and 4096")


@dataclass
class DataConfig(_Options):
    dataset: str = "mnist"        # mnist, fashion-mnist, cifar10, celeba, folder, fake
    root: str = ""                # folder holding the data set (for "folder": the image folder itself)
    download: bool = False        # let torchvision download mnist/fashion-mnist/cifar10 when missing
    max_images: int | None = None  # use only the first N images (None: all)
    cache_dir: str = ""           # where decoded uint8 tensors are cached ("" : the user cache folder)

    def validate(self) -> None:
        if self.max_images is not None and self.max_images < 1:
            raise ConfigError(f"max_images: {self.max_images} must be at least 1")


@dataclass
class TrainConfig(_Options):
    batch_size: int = 128          # images per step per process (the paper: 128)
    lr: float = 2e-4               # Adam learning rate for G, and for D unless lr_d is set (the paper: 0.0002)
    lr_d: float | None = None      # D's own learning rate (two time-scale update rule, Heusel et al. 2017); None: lr
    beta1: float = 0.5             # Adam beta1 (the paper: 0.5, to stabilise training)
    beta2: float = 0.999           # Adam beta2
    epochs: float | None = None    # stop after this many passes over the data (fractions allowed)
    max_steps: int | None = None   # stop after this many generator updates
    max_minutes: float | None = None  # stop after this much wall-clock time (for CPU users)
    lr_decay_from: int | None = None  # from this step lr falls linearly to 0 at the last step (needs max_steps or epochs)
    ema_decay: float = 0.999       # EMA of G's weights (ramped up over the first steps); 0 disables
    label_smoothing: float = 0.0   # D's target for real images is 1 - this (one-sided; 0: the paper)
    r1_gamma: float = 0.0          # weight of the R1 gradient penalty on real images, gamma/2 |grad D(x)|^2 (0: the paper)
    augment: str = ""              # DiffAugment policy: AUGMENTATIONS joined by commas, on reals and fakes alike ("": the paper)
    flip: str = "auto"             # random left-right flips of real images; auto: where the data set allows (faces, folders)
    seed: int = 0                  # seeds weights, data order and noise
    device: str = "auto"           # auto, cpu, cuda, cuda:N, mps
    bf16: str = "auto"             # auto (on where the hardware has fast bf16), on, off
    channels_last: str = "auto"    # auto (on CPUs, and on CUDA with bf16), on, off
    compile: bool = False          # torch.compile G and D (slow start, faster steady state on GPUs)
    log_every: int = 50            # steps between metrics.jsonl lines (the only host syncs)
    sample_every: int = 500        # steps between fixed-noise preview grids
    checkpoint_every: int = 1000   # steps between state.pt + generator.safetensors saves
    keep_generators: bool = False  # also keep every checkpoint's generator (generators/step-NNNNNNN.safetensors) to score later
    init_from: str = ""            # start from this checkpoint's G (and its D, where one ships beside it) instead of random weights
    freeze_generator: bool = False  # train only D, against the fixed G of init_from: a D for a generator whose own D was lost
    eval_every: int = 0            # steps between quality metrics in metrics.jsonl (0: off)
    num_fixed: int = 64            # images in each preview grid

    def validate(self) -> None:
        for name in ("batch_size", "log_every", "sample_every", "checkpoint_every", "num_fixed", "eval_every"):
            value, lowest = getattr(self, name), 0 if name == "eval_every" else 1
            if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= MAX_INTERVAL:
                raise ConfigError(f"{name}: {brief(value)} must be an integer, at least {lowest} and at most {MAX_INTERVAL:,}"
                                  + (" (0: off)" if name == "eval_every" else ""))
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing: {brief(self.label_smoothing)} must be in [0, 0.5)")
        if not 0 <= self.r1_gamma < math.inf:  # written so that NaN fails too
            raise ConfigError(f"r1_gamma: {brief(self.r1_gamma)} must be a finite number, at least 0 (0: off)")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay: {brief(self.ema_decay)} must be in [0, 1)")
        parse_augment(self.augment)
        for name in ("bf16", "channels_last", "flip"):
            if getattr(self, name) not in SWITCHES:
                raise ConfigError(f"{name}: {brief(getattr(self, name))} must be auto, on or off")
        for name in ("lr", "lr_d"):  # written so that NaN fails too
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                raise ConfigError(f"{name}: {brief(value)} must be a positive number")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"beta1 {brief(self.beta1)} and beta2 {brief(self.beta2)} must be in [0, 1)")
        if self.freeze_generator and not self.init_from:
            raise ConfigError("freeze_generator: needs init_from, the checkpoint whose generator D is trained against")
        if self.lr_decay_from is not None and not 0 <= self.lr_decay_from < (self.max_steps or math.inf):
            raise ConfigError(f"lr_decay_from: {self.lr_decay_from} must be a step in [0, max_steps)")
        for name, largest in BUDGET_LIMITS.items():
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 < value <= largest):
                raise ConfigError(f"{name}: {brief(value)} must be a positive number no larger than {largest:g}")


@dataclass
class RunConfig:
    """Everything a training run needs; saved as config.json and inside state.pt."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        unknown = sorted(set(values) - {"model", "data", "train"})
        if unknown:
            raise ConfigError(f"RunConfig: unknown section(s) {unknown}")
        return cls(
            model=ModelConfig.from_dict(values.get("model", {})),
            data=DataConfig.from_dict(values.get("data", {})),
            train=TrainConfig.from_dict(values.get("train", {})),
        )
