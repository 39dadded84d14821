"""Data sets decoded once into an in-memory uint8 tensor [N, C, H, W] at the model's size.

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
        out.append(F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    return (images.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).round().to(torch.uint8)


def _torchvision(name: str) -> Callable[[DataConfig, int, int], ImageData]:
    def load(cfg: DataConfig, image_size: int, channels: int) -> ImageData:
        import torchvision

        cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
        root = Path(cfg.root) if cfg.root else default_data_root()
        try:
            ds = cls(root=str(root), train=True, download=cfg.download)
        except RuntimeError as exc:
            raise DatasetError(f"{name}: not found under {root} ({exc}); pass --data-root DIR holding it, or --download") from exc
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


DATASETS: dict[str, Callable[[DataConfig, int, int], ImageData]] = {
    "mnist": _torchvision("mnist"),
    "fashion-mnist": _torchvision("fashion-mnist"),
    "cifar10": _torchvision("cifar10"),
    "celeba": load_celeba,
    "folder": load_folder,
    "fake": load_fake,
}


def _cache_path(cfg: DataConfig, image_size: int, channels: int) -> Path:
    root = str(Path(cfg.root).resolve()) if cfg.root else ""
    key = hashlib.sha1(f"{cfg.dataset}|{root}|{image_size}|{channels}|{cfg.max_images}|v1".encode()).hexdigest()[:16]
    base = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    return base / "decoded" / f"{cfg.dataset}-{image_size}px-{channels}ch-{key}.pt"


def build(cfg: DataConfig, image_size: int, channels: int, *, use_cache: bool = True) -> ImageData:
    """Load data set `cfg.dataset` as uint8 [N, channels, image_size, image_size] (cached after the first decode)."""
    if cfg.dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {cfg.dataset!r}; choose from {sorted(DATASETS)}")
    cache = _cache_path(cfg, image_size, channels)
    if use_cache and cfg.dataset != "fake" and cache.exists():
        try:
            blob = torch.load(cache, weights_only=True)
            return ImageData(blob["images"], blob.get("labels"), blob.get("label_names"))
        except (RuntimeError, KeyError, EOFError, OSError):
            cache.unlink(missing_ok=True)  # a broken cache is rebuilt from the data
    data = DATASETS[cfg.dataset](cfg, image_size, channels)
    if len(data) == 0:
        raise DatasetError(f"dataset {cfg.dataset!r} under {cfg.root or default_data_root()} is empty")
    if use_cache and cfg.dataset != "fake":
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save({"images": data.images, "labels": data.labels, "label_names": data.label_names}, cache)
        except OSError:
            pass  # caching is an optimisation; an unwritable cache folder must not stop training
    return data
