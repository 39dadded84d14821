"""Projection of real images into a generator's latent space: find z with G(z) close to a given photo or drawing.

The method (chosen by measurement, see README "Bring your own image"): the input is prepared like the model's
training data, the start is the best of K seeded latents by classifier-feature distance, then Adam on z minimises a
pixel loss, a perceptual loss on the shipped classifier's activations and a prior keeping |z| where G was trained.
G stays in eval mode, and the loss is a sum of per-image terms, so each image's result is independent of its batch.
"""
from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from .datasets import CELEBA_CROP
from .errors import DCGANError, LatentError
from .latent import latents_from_seeds
from .small_batch import MAX_TUNED_BATCH, fold_batch_norms, tunable, tune

MAX_IMAGE_SIDE = 4096              # px on either side of an uploaded image
MAX_IMAGE_BYTES = 20 * 2**20       # an encoded image file
MAX_IMAGES = 64                    # images one call projects
MAX_LATENT_ABS = 20.0              # |z_i| beyond this is not a latent G was trained on (N(0, 1) entries)
MAX_LATENT_NORM_RATIO = 3.0        # |z| / sqrt(z_dim) beyond this is refused too
DIGIT_BOX = 20 / 28                # MNIST: the digit's bounding box fills 20 of 28 px, centred by its centre of mass
LATENT_NAME_PREFIX = "img-"
LATENT_NAME_HEX = 12


class ImageError(DCGANError, ValueError):
    """An image file or array cannot be used (not an image, too large, a decompression bomb, wrong shape)."""


# ----------------------------------------------------------------------------------------------------------------
# reading images safely

def read_image(data: bytes | str | Any) -> Image.Image:
    """Decode an image file (bytes or a path) with size checks done before the pixels are decoded.

    Any PIL mode is accepted (grey, RGB, RGBA, palette, 16-bit); the first frame of an animation is used.
    Raises ImageError for non-images, files over MAX_IMAGE_BYTES and images over MAX_IMAGE_SIDE px a side.
    """
    if not isinstance(data, (bytes, bytearray)):
        try:
            with open(data, "rb") as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
        except (OSError, TypeError) as exc:
            raise ImageError(f"{data}: cannot read this file ({exc})") from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"image file over {MAX_IMAGE_BYTES // 2**20} MB; send a smaller one")
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:  # checked from the header, before any pixel is decoded
            raise ImageError(f"image is {width}x{height} px; at most {MAX_IMAGE_SIDE} px a side")
        img.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError(f"not a usable image ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt files
        raise ImageError(f"damaged image file ({exc})") from exc
    return img


def _flatten(img: Image.Image) -> Image.Image:
    """RGB on a white background: transparency (a sketch pad, a PNG cut-out) becomes paper, not black."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith(("I", "F")):  # 16/32-bit grey: stretch its range to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        low, high = float(arr.min()), float(arr.max())
        img = Image.fromarray(((arr - low) * (255 / max(high - low, 1e-9))).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def as_pil_images(images: Any) -> list[Image.Image]:
    """uint8 [N, H, W, C] / [N, H, W] arrays, one [H, W, C] array, PIL images or a list of these -> PIL images."""
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, torch.Tensor):
        images = images.cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ImageError(f"images must be uint8 [N, H, W, C], got {images.dtype}")
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3, 4) and images.shape[0] > 4):
            images = images[None]
        if images.ndim not in (3, 4):
            raise ImageError(f"images must be uint8 [N, H, W, C] or [N, H, W], got shape {images.shape}")
        images = list(images)
    if not isinstance(images, (list, tuple)) or not images:
        raise ImageError("no images given")
    if len(images) > MAX_IMAGES:
        raise ImageError(f"{len(images)} images; at most {MAX_IMAGES} per call")
    out = []
    for img in images:
        if isinstance(img, Image.Image):
            out.append(img)
            continue
        arr = np.asarray(img)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4)):
            raise ImageError(f"each image must be uint8 [H, W], [H, W, 1|3|4] or a PIL image, got {arr.dtype} {arr.shape}")
        if max(arr.shape[:2]) > MAX_IMAGE_SIDE or min(arr.shape[:2]) < 1:
            raise ImageError(f"image is {arr.shape[1]}x{arr.shape[0]} px; 1 to {MAX_IMAGE_SIDE} px a side")
        out.append(Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr))
    return out


# ----------------------------------------------------------------------------------------------------------------
# preparing images like the training data

def _centre_square(img: Image.Image, fraction: float) -> Image.Image:
    w, h = img.size
    side = max(1, round(min(w, h) * fraction))
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def prepare_face(img: Image.Image, image_size: int, *, crop: float = CELEBA_CROP) -> Image.Image:
    """CelebA's training crop: the centre square of ``crop`` x the short side, resized (as dcgan.datasets does).

    It expects an aligned portrait like CelebA's (eyes level, face centred, the head about 60% of the width);
    pass crop=1.0 for an image that is already a tight square face crop.
    """
    return _centre_square(_flatten(img), crop).resize((image_size, image_size), Image.Resampling.LANCZOS)


def _border(grey: np.ndarray) -> np.ndarray:
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def prepare_digit(img: Image.Image, image_size: int, *, box: float = DIGIT_BOX) -> Image.Image:
    """MNIST's layout: a light stroke on black, its bounding box scaled to ``box`` of the frame, centred by mass.

    A dark drawing on light paper is inverted first (decided by the border, which is background in a drawing).
    """
    grey = np.asarray(_flatten(img).convert("L"), dtype=np.float32)
    if np.median(_border(grey)) > 127:
        grey = 255 - grey
    grey = np.clip(grey - np.median(_border(grey)), 0, None)  # the background becomes 0, as MNIST's
    if grey.max() < 1:
        return Image.new("L", (image_size, image_size))
    grey *= 255 / grey.max()
    ink = grey > 0.2 * 255
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = Image.fromarray(grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.uint8))
    side = 28  # lay out on MNIST's own 28 px frame, then resize: the model saw 28 px digits resized to its size
    scale = box * side / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.Resampling.LANCZOS)
    mass = np.asarray(crop, dtype=np.float64)
    total = max(mass.sum(), 1e-9)
    cy, cx = (mass.sum(1) * np.arange(mass.shape[0])).sum() / total, (mass.sum(0) * np.arange(mass.shape[1])).sum() / total
    canvas = Image.new("L", (side, side))
    left = int(round(side / 2 - cx - 0.5))
    top = int(round(side / 2 - cy - 0.5))
    canvas.paste(crop, (min(max(left, 0), side - crop.width), min(max(top, 0), side - crop.height)))
    return canvas.resize((image_size, image_size), Image.Resampling.BILINEAR) if image_size != side else canvas


def prepare_square(img: Image.Image, image_size: int) -> Image.Image:
    """Any other data set: the centre square, resized."""
    return _centre_square(_flatten(img), 1.0).resize((image_size, image_size), Image.Resampling.LANCZOS)


PREPARERS = {"celeba": prepare_face, "mnist": prepare_digit, "fashion-mnist": lambda img, size: prepare_digit(img, size, box=1.0)}
INPUT_ADVICE = {
    "celeba": "an aligned portrait like CelebA's: one face, centred, eyes level, the head about 60% of the image width",
    "mnist": "one digit, dark on light paper or light on dark, filling most of the image",
    "fashion-mnist": "one garment on a plain background, filling most of the image",
}


def prepare_images(images: Any, *, image_size: int, channels: int, dataset: str | None) -> torch.Tensor:
    """Images of any size and mode -> x float32 [N, channels, image_size, image_size] in [-1, 1], laid out as
    the training data of ``dataset`` (celeba: the face crop; mnist, fashion-mnist: grey on black, centred)."""
    prepare = PREPARERS.get(dataset or "", prepare_square)
    out = []
    for img in as_pil_images(images):
        ready = prepare(img, image_size).convert("RGB" if channels == 3 else "L")
        arr = np.array(ready, dtype=np.uint8)  # a writable copy (PIL's buffer is read-only)
        out.append(torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)))
    return torch.stack(out).float().div_(127.5).sub_(1.0)


# ----------------------------------------------------------------------------------------------------------------
# features and quality

def _activations(classifier: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """(activations after each pooling stage, embedding [N, feature_dim], logits [N, K]) of the classifier, with grad."""
    h = classifier.prepare(x).contiguous(memory_format=torch.channels_last)
    stages = []
    for layer in classifier.body:
        h = layer(h)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(h)
    embedding = classifier.embed(h)
    return stages, embedding, classifier.head(embedding)


def feature_network(classifier: nn.Module) -> nn.Module:
    """A copy of the classifier for the projection's inner loop: batch norms folded into the convolutions before them
    (small_batch.fold_batch_norms) and NHWC weights: 2x faster per step on a CPU than the classifier as shipped, same
    outputs to 1e-6. The copy has no weight gradients; the shared classifier is left as it is."""
    return fold_batch_norms(classifier).to(memory_format=torch.channels_last)


def _unit_channels(h: torch.Tensor) -> torch.Tensor:
    return h / (h.square().sum(1, keepdim=True).sqrt() + 1e-8)  # LPIPS-style: compare directions, not magnitudes


def _perceptual(stages: list[torch.Tensor], target_stages: list[torch.Tensor]) -> torch.Tensor:
    """Per image: sum over stages of the mean squared difference of channel-normalised activations: [N]."""
    return sum((_unit_channels(a) - _unit_channels(b)).square().sum(1).mean((1, 2)) for a, b in zip(stages, target_stages))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [-1, 1], per image: [N]."""
    mse = ((x - y) / 2).square().flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def _labels(classifier: Any, logits: torch.Tensor) -> torch.Tensor:
    """Hard labels: class ids [N] or attribute booleans [N, K]."""
    return logits.argmax(1) if classifier.kind == "classes" else logits > 0


def quality(classifier: Any, target: torch.Tensor, reconstruction: torch.Tensor) -> list[dict[str, Any]]:
    """Per image: psnr (dB), feature_distance (|f(x) - f(G(z))| / |f(x)| on the classifier's embedding), agreement
    (share of attributes judged alike, or 1/0 for the same class), and per label the two probabilities."""
    out = [{"psnr": float(p)} for p in psnr(target, reconstruction)]
    if classifier is None:
        return out
    with torch.no_grad():
        _, e_x, logit_x = _activations(classifier, target)
        _, e_r, logit_r = _activations(classifier, reconstruction)
    distance = (e_x - e_r).norm(dim=1) / e_x.norm(dim=1).clamp_min(1e-8)
    names = classifier.label_names
    if classifier.kind == "classes":
        p_x, p_r = logit_x.softmax(1), logit_r.softmax(1)
        for q, d, a, b, pa, pb in zip(out, distance, logit_x.argmax(1), logit_r.argmax(1), p_x, p_r):
            q.update(feature_distance=float(d), agreement=float(a == b),
                     original=names[int(a)], reconstructed=names[int(b)],
                     probabilities={n: [round(float(u), 4), round(float(v), 4)] for n, u, v in zip(names, pa, pb)})
        return out
    p_x, p_r = logit_x.sigmoid(), logit_r.sigmoid()
    for q, d, pa, pb in zip(out, distance, p_x, p_r):
        q.update(feature_distance=float(d), agreement=float(((pa > 0.5) == (pb > 0.5)).float().mean()),
                 probabilities={n: [round(float(u), 4), round(float(v), 4)] for n, u, v in zip(names, pa, pb)})
    return out


# ----------------------------------------------------------------------------------------------------------------
# projection

@dataclass(frozen=True)
class ProjectionSettings:
    """How hard to try; PRESETS holds the measured choices."""
    steps: int = 150                  # Adam steps on z
    lr: float = 0.05                  # Adam step size at the start (z entries are ~N(0, 1))
    lr_end: float = 0.05              # step size at the last step, reached by a cosine decay from lr
    candidates: int = 1024            # seeded latents 0..K-1 the start is chosen from
    starts: int = 1                   # starts optimised together (one batch); the lowest final loss wins
    start_encoder: bool = True        # the first start is the encoder's guess E(x), when the generator has an encoder
    #                                   (encoder.safetensors beside it); the others are the best bank candidates
    start_embedding: bool = True      # pick the start by pixel + classifier-embedding distance (else pixel only)
    feature_fraction: float = 1.0     # share of the steps (the first ones) that use the classifier terms; the rest
    #                                   fit pixels only (but see embedding_throughout), so the perceptual terms steer the
    #                                   start and cost no PSNR at the end
    embedding_throughout: bool = False  # the embedding term stays on after feature_fraction (the attributes held to
    #                                   the end; only the perceptual term stops)
    pixel_weight: float = 1.0         # mean squared error in [-1, 1]: what PSNR measures, so it leads
    perceptual_weight: float = 0.005  # classifier activations (channel-normalised), summed over stages
    embedding_weight: float = 0.05    # relative squared distance of the classifier embeddings (attributes, class)
    prior_weight: float = 0.01        # (|z|^2 / z_dim - 1)^2: keeps |z| on the shell where N(0, I) latents live

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and 0 <= self.steps <= 5000):
            raise LatentError(f"steps: {self.steps} must be an integer from 0 to 5000")
        if not (isinstance(self.candidates, int) and 1 <= self.candidates <= 65536):
            raise LatentError(f"candidates: {self.candidates} must be an integer from 1 to 65536")
        if not (isinstance(self.starts, int) and 1 <= self.starts <= min(self.candidates, 16)):
            raise LatentError(f"starts: {self.starts} must be an integer from 1 to min(candidates, 16)")
        for name in ("lr", "lr_end", "pixel_weight", "perceptual_weight", "embedding_weight", "prior_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise LatentError(f"{name}: {value} must be a finite number >= 0")
        if not (isinstance(self.feature_fraction, (int, float)) and 0 <= self.feature_fraction <= 1):
            raise LatentError(f"feature_fraction: {self.feature_fraction} must be a number from 0 to 1")

    @property
    def feature_steps(self) -> int:
        """How many of the first steps use the classifier terms."""
        return round(self.steps * self.feature_fraction)

    def lr_at(self, step: int) -> float:
        """Cosine decay from lr (step 0) to lr_end (the last step)."""
        t = step / max(self.steps - 1, 1)
        return self.lr_end + (self.lr - self.lr_end) * 0.5 * (1 + math.cos(math.pi * t))


PRESETS = {  # measured in bench/projection.py (README "Bring your own image"); fast: the live UI; full: the default;
    # sharp: the most PSNR, 1,000 steps (keeping the embedding term to the end: -0.06 dB, Smiling agreement 84% -> 94% on 50 faces);
    # fast: 130 steps, one face in ~1.9 s on an AVX2-only Zen 3 at its quiet-hour speed (150 steps: 2.14 s there, +0.17 dB, same agreement)
    "fast": ProjectionSettings(steps=130, lr=0.2, lr_end=0.005, feature_fraction=0.25, embedding_throughout=True,
                               embedding_weight=0.004),
    "full": ProjectionSettings(steps=300, lr=0.2, lr_end=0.001, feature_fraction=0.1, embedding_throughout=True,
                               embedding_weight=0.004),
    "sharp": ProjectionSettings(steps=1000, lr=0.2, lr_end=0.001, feature_fraction=0.1, embedding_throughout=True,
                                embedding_weight=0.004),
}


@dataclass
class Projection:
    z: torch.Tensor                 # float32 [N, z_dim]
    reconstruction: torch.Tensor    # G(z): float32 [N, C, H, W] in [-1, 1]
    target: torch.Tensor            # the prepared input: float32 [N, C, H, W] in [-1, 1]
    quality: list[dict[str, Any]] = field(default_factory=list)  # per image, see quality()


class Projector:
    """Projects images for one generator; holds the candidate bank (K seeded latents and their features), so the
    explorer builds one per model and reuses it. It runs its own frozen copies of G and of the classifier, batch
    norms folded and each convolution's kernels picked by measurement for the batch sizes it projects
    (dcgan/small_batch.py); the networks passed in are left as they are."""

    def __init__(self, G: nn.Module, *, z_dim: int, classifier: Any = None, dataset: str | None = None, candidates: int = 1024,
                 encoder: nn.Module | None = None):
        self.G = tunable(fold_batch_norms(G))
        self.encoder = encoder.eval() if encoder is not None else None
        self.z_dim = z_dim
        self.classifier = classifier
        self.feature_net = tunable(feature_network(classifier)) if classifier is not None else None
        self.tuned_batches: set[int] = set()
        self.dataset = dataset
        p = next(G.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.bank_z = latents_from_seeds(list(range(candidates)), z_dim)
        with torch.no_grad():
            self.bank_x = torch.cat([self.G(z.to(self.device, self.dtype)).float().cpu() for z in self.bank_z.split(256)])
            self.bank_e = self._embedding(self.bank_x) if classifier is not None else None
            self.channels, self.image_size = self.bank_x.shape[1], self.bank_x.shape[-1]

    def _embedding(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([_activations(self.feature_net, chunk)[1] for chunk in x.split(256)])

    def prepare(self, images: Any) -> torch.Tensor:
        return prepare_images(images, image_size=self.image_size, channels=self.channels, dataset=self.dataset)

    def start(self, target: torch.Tensor, candidates: int, *, embedding: bool = True, starts: int = 1,
              encoder: bool = True) -> torch.Tensor:
        """Each target's starts together, [N * starts, z_dim]: the encoder's guess first (if ``encoder`` and there is
        one), then the best of the first ``candidates`` bank latents by pixel (+ embedding) distance."""
        if encoder and self.encoder is not None:
            with torch.no_grad():
                guess = self.encoder(target).float()[:, None]
            if starts == 1:
                return guess.flatten(0, 1)
            bank = self.start(target, candidates, embedding=embedding, starts=starts - 1, encoder=False)
            return torch.cat([guess, bank.view(len(target), starts - 1, -1)], 1).flatten(0, 1)
        k = min(candidates, len(self.bank_z))
        pixel = torch.cdist(target.flatten(1), self.bank_x[:k].flatten(1)).square() / target[0].numel()
        score = pixel
        if self.bank_e is not None and embedding:
            with torch.no_grad():
                e = self._embedding(target)
            score = pixel + torch.cdist(e, self.bank_e[:k]).square() / e.square().sum(1, keepdim=True).clamp_min(1e-8)
        return self.bank_z[score.topk(min(starts, k), dim=1, largest=False).indices.flatten()].clone()

    def tune(self, batch: int) -> None:
        """Pick G's and the classifier's kernels for optimising ``batch`` latents at once, the first time only."""
        if batch in self.tuned_batches or batch > MAX_TUNED_BATCH:
            return
        self.tuned_batches.add(batch)
        z = self.bank_z[:1].repeat(batch, 1).to(self.device, self.dtype)
        tune(self.G, lambda: self.G(z))
        if self.feature_net is not None:
            x = self.bank_x[:1].repeat(batch, 1, 1, 1).to(self.device, self.dtype)
            tune(self.feature_net, lambda: _activations(self.feature_net, x))

    def project(self, images: Any = None, *, target: torch.Tensor | None = None, settings: ProjectionSettings = PRESETS["full"],
                z_start: torch.Tensor | None = None, progress: Any = None) -> Projection:
        """Project ``images`` (anything ``prepare_images`` takes) or an already prepared ``target`` x [N, C, H, W].

        ``progress(done, total)`` is called after each step (for a progress bar).
        """
        if target is None:
            target = self.prepare(images)
        target = target.float().cpu()
        if z_start is None:
            z0 = self.start(target, settings.candidates, embedding=settings.start_embedding, starts=settings.starts,
                            encoder=settings.start_encoder)
        else:
            z0 = z_start.float().cpu().clone()
        per_image = len(z0) // len(target)
        self.tune(len(z0))
        z, loss = optimise_latents(self.G, target.repeat_interleave(per_image, 0), z0, settings, classifier=self.feature_net,
                                   progress=progress)
        winner = loss.view(len(target), per_image).argmin(1)
        z = z.view(len(target), per_image, -1)[torch.arange(len(target)), winner]
        with torch.no_grad():
            reconstruction = torch.cat([self.G(chunk.to(self.device, self.dtype)).float().cpu() for chunk in z.split(256)])
        return Projection(z, reconstruction, target, quality(self.classifier, target, reconstruction))


def optimise_latents(G: nn.Module, target: torch.Tensor, z: torch.Tensor, settings: ProjectionSettings, *,
                     classifier: Any = None, progress: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on z from ``z`` [N, z_dim] toward ``target`` [N, C, H, W]; returns the best z seen per image in the last
    phase and its loss (that phase's: the pixel phase's when there is one): ([N, z_dim], [N]).

    The loss is a sum over images of per-image terms and Adam is elementwise, so images never affect each other.
    """
    p = next(G.parameters())
    requires_grad = [q.requires_grad for q in G.parameters()]
    G.eval().requires_grad_(False)  # no weight gradients: half the backward pass
    target = target.to(p.device, p.dtype)
    z = z.to(p.device, p.dtype).clone().requires_grad_(True)
    z_dim = z.shape[1]
    use_features = classifier is not None and (settings.perceptual_weight > 0 or settings.embedding_weight > 0)
    feature_steps = settings.feature_steps if use_features else 0
    if feature_steps:
        requires_grad_c = [q.requires_grad for q in classifier.parameters()]
        classifier.requires_grad_(False)
        with torch.no_grad():
            target_stages, target_embedding, _ = _activations(classifier, target)
        embedding_scale = target_embedding.square().sum(1).clamp_min(1e-8)
    embedding_to_the_end = bool(feature_steps) and settings.embedding_throughout and settings.embedding_weight > 0
    optimiser = torch.optim.Adam([z], lr=settings.lr)
    best_z, best_loss = z.detach().clone(), torch.full((len(z),), math.inf, device=z.device)

    def losses(with_features: bool) -> torch.Tensor:
        x = G(z)
        loss = settings.pixel_weight * (x - target).square().flatten(1).mean(1)
        if with_features or embedding_to_the_end:
            stages, embedding, _ = _activations(classifier, x)
            if with_features:
                loss = loss + settings.perceptual_weight * _perceptual(stages, target_stages)
            loss = loss + settings.embedding_weight * (embedding - target_embedding).square().sum(1) / embedding_scale
        return loss + settings.prior_weight * (z.square().sum(1) / z_dim - 1).square()

    try:
        for step in range(settings.steps + 1):
            with_features = step < feature_steps or (step == settings.steps and 0 < feature_steps == settings.steps)
            if step == feature_steps and step < settings.steps:  # the pixel phase starts: its own best
                best_loss.fill_(math.inf)
            loss = losses(with_features)
            with torch.no_grad():
                better = loss < best_loss
                best_loss = torch.where(better, loss, best_loss)
                best_z[better] = z[better]
            if step == settings.steps:
                break
            for group in optimiser.param_groups:
                group["lr"] = settings.lr_at(step)
            optimiser.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimiser.step()
            if progress is not None:
                progress(step + 1, settings.steps)
    finally:
        for q, flag in zip(G.parameters(), requires_grad):
            q.requires_grad_(flag)
        if feature_steps:
            for q, flag in zip(classifier.parameters(), requires_grad_c):
                q.requires_grad_(flag)
    return best_z.float().cpu(), best_loss.float().cpu()


def project(G: nn.Module, images: Any, *, z_dim: int, dataset: str | None = None, classifier: Any = None,
            settings: ProjectionSettings | str = "full", encoder: nn.Module | None = None, progress: Any = None) -> Projection:
    """Project images (uint8 [N, H, W, C] of any size, PIL images, or a list) into G's latent space.

    ``dataset`` picks the preparation (celeba face crop, mnist/fashion-mnist grey on black); ``classifier`` defaults
    to the shipped one for ``dataset`` (none: pixel loss only). ``settings``: a PRESETS name ("fast", "full",
    "sharp") or ProjectionSettings.
    ``encoder``: G's dcgan.encoder.Encoder (``encoder_for(checkpoint, G)`` finds the shipped one), the first start.
    """
    if isinstance(settings, str):
        if settings not in PRESETS:
            raise LatentError(f"settings {settings!r}: choose one of {sorted(PRESETS)} or pass ProjectionSettings")
        settings = PRESETS[settings]
    if classifier is None and dataset:
        from .directions import shipped_classifier

        classifier = shipped_classifier(dataset)
    projector = Projector(G, z_dim=z_dim, classifier=classifier, dataset=dataset, candidates=settings.candidates, encoder=encoder)
    return projector.project(images, settings=settings, progress=progress)


# ----------------------------------------------------------------------------------------------------------------
# latent names and files

def latent_name(z: torch.Tensor) -> str:
    """``img-`` and the first 12 hex digits of the SHA-256 of z's float32 bytes: the same vector, the same name."""
    data = np.ascontiguousarray(z.detach().float().cpu().numpy().astype("<f4")).tobytes()
    return LATENT_NAME_PREFIX + hashlib.sha256(data).hexdigest()[:LATENT_NAME_HEX]


def is_latent_name(text: Any) -> bool:
    return (isinstance(text, str) and len(text) == len(LATENT_NAME_PREFIX) + LATENT_NAME_HEX and text.startswith(LATENT_NAME_PREFIX)
            and all(c in "0123456789abcdef" for c in text[len(LATENT_NAME_PREFIX):]))


def check_latents(array: Any, z_dim: int, *, what: str = "latents") -> torch.Tensor:
    """A float array of shape [z_dim] or [N, z_dim], finite and bounded -> float32 [N, z_dim]; LatentError otherwise."""
    arr = np.asarray(array)
    if arr.dtype.kind != "f":
        raise LatentError(f"{what}: dtype {arr.dtype}; latents are float arrays")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != z_dim or not 1 <= arr.shape[0] <= 1024:
        raise LatentError(f"{what}: shape {tuple(np.asarray(array).shape)}; expected [{z_dim}] or [N, {z_dim}] with N from 1 to 1024")
    if not np.isfinite(arr).all():
        raise LatentError(f"{what}: contains NaN or infinite values")
    z = torch.from_numpy(arr.astype(np.float32))
    if float(z.abs().max()) > MAX_LATENT_ABS or float(z.norm(dim=1).max()) > MAX_LATENT_NORM_RATIO * math.sqrt(z_dim):
        raise LatentError(f"{what}: entries must be within ±{MAX_LATENT_ABS:g} and |z| within "
                          f"{MAX_LATENT_NORM_RATIO:g} x sqrt(z_dim) = {MAX_LATENT_NORM_RATIO * math.sqrt(z_dim):.1f}")
    return z


def load_latents(data: bytes | str | Any, z_dim: int) -> torch.Tensor:
    """A .npy file (path or bytes; never pickled objects) of latents -> float32 [N, z_dim], checked by check_latents."""
    try:
        if isinstance(data, (bytes, bytearray)):
            if len(data) > 16 * 2**20:
                raise LatentError("latent file over 16 MB")
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            arr = np.load(data, allow_pickle=False)
    except LatentError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise LatentError(f"not a .npy array of latents ({exc})") from exc
    if not isinstance(arr, np.ndarray):
        raise LatentError("a latent file holds one .npy array, not an .npz archive")
    return check_latents(arr, z_dim)


def save_latents(z: torch.Tensor) -> bytes:
    """float32 [N, z_dim] -> .npy bytes."""
    buffer = io.BytesIO()
    np.save(buffer, z.detach().float().cpu().numpy(), allow_pickle=False)
    return buffer.getvalue()
