"""Data sets decoded once into an in-memory uint8 tensor [N, C, H, W] at the model's size.

`DATASETS` holds one `DatasetSpec` per name: its loader and every other fact about it (default size and channels,
splits, classifier, where it lives offline), so the CLI, the metrics, the classifiers and the app read one table.
Every loader returns `ImageData`; `batch_to_float` maps a uint8 batch to [-1, 1]. Decoded tensors are cached
(keyed by data set, size and count) outside the data folder, which may be read-only.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .config import DataConfig
from .errors import DatasetError
from .io import atomic_torch_save

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CELEBA_CROP = 0.72  # side of the centre face crop as a fraction of the aligned image's width (64 px at 89 px wide)
LUMA = (0.299, 0.587, 0.114)  # RGB -> grey weights (ITU-R BT.601, as PIL's "L" mode); dcgan.classifiers uses them too
KERAS_IMAGE_SIZE = 28  # the keras seed nets are built for 28x28 images only (ModelConfig.validate)


@dataclass
class ImageData:
    images: torch.Tensor               # uint8 [N, C, H, W]
    labels: torch.Tensor | None = None  # int64 [N] class ids, or int8 [N, A] attributes in {0, 1}
    label_names: list[str] | None = None  # class names, or attribute names

    def __len__(self) -> int:
        return len(self.images)


def default_cache_dir() -> Path:
    return Path(os.environ.get("DCGAN_CACHE", Path.home() / ".cache" / "dcgan-explorer"))


def default_data_root() -> Path:
    return default_cache_dir() / "data"


def batch_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square uint8 [N, C, h, w] -> [N, C, size, size] with antialiased bilinear resampling, in chunks."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = []
    for chunk in images.split(4096):
        out.append(F.interpolate(chunk.float(), size=(size, size), mode="bilinear",
                                 antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    return (images.float() * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True).round().to(torch.uint8)


Loader = Callable[[DataConfig, int, int], ImageData]  # (cfg, image_size, channels) -> images at that size


def _torchvision(class_name: str, *, train: bool = True) -> Loader:
    """A loader for torchvision.datasets.<class_name>: its train split, or with train=False its official test split."""
    def load(cfg: DataConfig, image_size: int, channels: int) -> ImageData:
        import torchvision  # slow to import; only these loaders need it

        root = Path(cfg.root) if cfg.root else default_data_root()
        split = "" if train else " test split"
        try:
            ds = getattr(torchvision.datasets, class_name)(root=str(root), train=train, download=cfg.download)
        except RuntimeError as exc:
            raise DatasetError(f"{cfg.dataset}{split}: not found under {root} ({exc}); "
                               "pass --data-root DIR holding it, or --download") from exc
        data = torch.as_tensor(np.asarray(ds.data))
        images = data[:, None] if data.ndim == 3 else data.permute(0, 3, 1, 2)
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        if cfg.max_images:
            images, labels = images[: cfg.max_images], labels[: cfg.max_images]
        images = resize_uint8(_match_channels(images.contiguous(), channels), image_size)
        return ImageData(images, labels, list(ds.classes))
    return load


def _centre_crop_square(img: Image.Image, fraction: float) -> Image.Image:
    w, h = img.size
    side = max(1, round(min(w, h) * fraction))
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def _decode_images(paths: list[Path], image_size: int, channels: int, crop: float) -> torch.Tensor:
    out = torch.empty(len(paths), channels, image_size, image_size, dtype=torch.uint8)
    mode = "RGB" if channels == 3 else "L"
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                img = _centre_crop_square(img.convert(mode), crop)
                img = img.resize((image_size, image_size), Image.Resampling.LANCZOS)
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"{path}: cannot read this image ({exc})") from exc
        arr = np.asarray(img, dtype=np.uint8)
        out[i] = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
    return out


def _list_images(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DatasetError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in it or its subfolders")
    return paths


def read_celeba_attributes(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Parse the official list_attr_celeba.txt: (attribute names, file name -> int8 [40] in {0, 1})."""
    try:
        lines = path.read_text().splitlines()
        names = lines[1].split()
        rows = {}
        for line in lines[2:]:
            parts = line.split()
            if parts:
                rows[parts[0]] = (np.array(parts[1:], dtype=np.int8) > 0).astype(np.int8)
    except (OSError, IndexError, ValueError) as exc:
        raise DatasetError(f"{path}: not a CelebA attribute file ({exc})") from exc
    return names, rows


def load_celeba(cfg: DataConfig, image_size: int, channels: int) -> ImageData:
    """Aligned CelebA faces: `root/img_align_celeba/*.jpg` (or images directly in root) + optional attributes."""
    root = Path(cfg.root) if cfg.root else default_data_root() / "celeba"
    folder = root / "img_align_celeba" if (root / "img_align_celeba").is_dir() else root
    paths = _list_images(folder)[: cfg.max_images]
    images = _decode_images(paths, image_size, channels, CELEBA_CROP)
    attr_path = root / "list_attr_celeba.txt"
    if not attr_path.exists():
        return ImageData(images)
    names, rows = read_celeba_attributes(attr_path)
    missing = [p.name for p in paths if p.name not in rows]
    if missing:
        raise DatasetError(f"{attr_path}: no attributes for {len(missing)} image(s), e.g. {missing[0]}")
    return ImageData(images, torch.from_numpy(np.stack([rows[p.name] for p in paths])), names)


def load_folder(cfg: DataConfig, image_size: int, channels: int) -> ImageData:
    """Any folder of images, searched recursively; each centre-cropped to a square and resized."""
    if not cfg.root:
        raise DatasetError("dataset 'folder' needs --data-root pointing at the image folder")
    paths = _list_images(Path(cfg.root))[: cfg.max_images]
    return ImageData(_decode_images(paths, image_size, channels, 1.0))


def load_fake(cfg: DataConfig, image_size: int, channels: int) -> ImageData:
    """Deterministic random blobs: a smoke-test data set that needs no files (like pytorch/examples' --dataset fake)."""
    n = cfg.max_images or 512
    rng = torch.Generator().manual_seed(1234)
    coarse = torch.rand(n, channels, 4, 4, generator=rng)
    images = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return ImageData((images * 255).round().to(torch.uint8), torch.randint(0, 10, (n,), generator=rng), [str(i) for i in range(10)])


# ----------------------------------------------------------------------------------------------------------------
# the table

@dataclass(frozen=True)
class DatasetSpec:
    """Every fact about one data set. Label names themselves come from the loader (torchvision's classes, CelebA's
    attribute file), so they are never written twice."""
    load: Loader                           # the training images
    channels: int                          # native channels (1 grey, 3 RGB): the default for training
    native_size: int | None                # side of the stored images; None: they vary and are centre-cropped
    train_size: int = 64                   # default image size for arch "dcgan" (keras: always KERAS_IMAGE_SIZE)
    labels: str | None = None              # "classes" (one per image) or "attributes" (several per image); None: unlabelled
    splits: tuple[int, int] | None = None  # (train, test) images in the metrics' splits; None: no held-out split
    load_test: Loader | None = None        # the official test split; None with splits: test = the next images after train
    classifier: bool = False               # a metric classifier ships for it (dcgan/assets/classifiers/<name>.safetensors)
    folder: str = ""                       # where it lives under a data root: DataConfig.root is data_root/folder
    files: tuple[str, ...] = ()            # files under data_root/folder that show it is present offline (none: never)
    hflip: bool = False                    # a mirrored image is still a valid sample (faces, photos; not digits or clothes)
    cache: bool = True                     # decoded images are cached (not for generated data)

    def default_image_size(self, arch: str) -> int:
        return KERAS_IMAGE_SIZE if arch == "keras" else self.train_size

    def root_under(self, data_root: Path | str) -> Path:
        """The DataConfig.root of this data set inside a data root laid out like ../shared/data."""
        return Path(data_root) / self.folder

    def is_present(self, data_root: Path | str) -> bool:
        """Whether its files are under ``data_root`` (checked without decoding anything)."""
        return bool(self.files) and all((self.root_under(data_root) / f).exists() for f in self.files)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(_torchvision("MNIST"), channels=1, native_size=28, train_size=32, labels="classes",
                         splits=(60_000, 10_000), load_test=_torchvision("MNIST", train=False), classifier=True,
                         files=("MNIST/raw/train-images-idx3-ubyte",)),
    "fashion-mnist": DatasetSpec(_torchvision("FashionMNIST"), channels=1, native_size=28, train_size=32, labels="classes",
                                 splits=(60_000, 10_000), load_test=_torchvision("FashionMNIST", train=False), classifier=True,
                                 files=("FashionMNIST/raw/train-images-idx3-ubyte",)),
    "cifar10": DatasetSpec(_torchvision("CIFAR10"), channels=3, native_size=32, train_size=32, labels="classes",
                           splits=(50_000, 10_000), load_test=_torchvision("CIFAR10", train=False),
                           files=("cifar-10-batches-py/data_batch_1",), hflip=True),
    # celeba10k ships no split: faces 1-8000 are the metrics' train split, 8001-10000 the held-out one
    "celeba": DatasetSpec(load_celeba, channels=3, native_size=None, labels="attributes", splits=(8_000, 2_000), classifier=True,
                          folder="celeba10k", files=("list_attr_celeba.txt",), hflip=True),
    "folder": DatasetSpec(load_folder, channels=3, native_size=None, hflip=True),
    "fake": DatasetSpec(load_fake, channels=3, native_size=None, labels="classes", hflip=True, cache=False),
}


def get_spec(name: str) -> DatasetSpec:
    """The table entry of data set ``name``; DatasetError naming the choices if there is none."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name]


def _cache_path(cfg: DataConfig, image_size: int, channels: int, test: bool) -> Path:
    root = str(Path(cfg.root).resolve()) if cfg.root else ""
    split = "|test" if test else ""  # the training images keep the keys they always had
    key = hashlib.sha1(f"{cfg.dataset}|{root}|{image_size}|{channels}|{cfg.max_images}{split}|v1".encode()).hexdigest()[:16]
    base = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    return base / "decoded" / f"{cfg.dataset}{'-test' if test else ''}-{image_size}px-{channels}ch-{key}.pt"


def build(cfg: DataConfig, image_size: int, channels: int, *, test: bool = False, use_cache: bool = True) -> ImageData:
    """Load data set `cfg.dataset` as uint8 [N, channels, image_size, image_size] (cached after the first decode).

    test=True loads its official test split instead (only for data sets whose spec has ``load_test``).
    """
    spec = get_spec(cfg.dataset)
    loader = spec.load_test if test else spec.load
    if loader is None:
        raise DatasetError(f"dataset {cfg.dataset!r} has no official test split")
    cache = _cache_path(cfg, image_size, channels, test)
    if use_cache and spec.cache and cache.exists():
        try:
            blob = torch.load(cache, weights_only=True)
            return ImageData(blob["images"], blob.get("labels"), blob.get("label_names"))
        except (RuntimeError, KeyError, EOFError, OSError):
            cache.unlink(missing_ok=True)  # a broken cache is rebuilt from the data
    data = loader(cfg, image_size, channels)
    if len(data) == 0:
        raise DatasetError(f"dataset {cfg.dataset!r} under {cfg.root or default_data_root()} is empty")
    if use_cache and spec.cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save({"images": data.images, "labels": data.labels, "label_names": data.label_names}, cache)
        except OSError:
            pass  # caching is an optimisation; an unwritable cache folder must not stop training
    return data
