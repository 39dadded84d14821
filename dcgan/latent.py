"""Latent math: one integer seed names one latent vector; lerp/slerp paths and the paper's vector arithmetic.

The seed contract: ``z = latent_from_seed(seed, z_dim)`` is ``torch.randn(z_dim)`` drawn on the CPU from a
``torch.Generator`` seeded with ``seed``, as float32. It does not depend on the device, the batch or the order of
other seeds, so seed 42 is the same face in the CLI, in Python, in the app and through its API.
"""
from __future__ import annotations

import re

import torch

from .errors import LatentError, brief

MAX_SEED = 2**32 - 1
MAX_SEEDS = 1024  # the most seeds one seed list may name


def latent_from_seed(seed: int, z_dim: int) -> torch.Tensor:
    """The latent vector named by ``seed``: float32 [z_dim] ~ N(0, I), identical on every machine."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise LatentError(f"seed {brief(seed)}: seeds are integers from 0 to {MAX_SEED}")
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(seed))


def latents_from_seeds(seeds: list[int], z_dim: int) -> torch.Tensor:
    """Stack of ``latent_from_seed`` for each seed: [len(seeds), z_dim]."""
    if not seeds:
        raise LatentError("no seeds given")
    return torch.stack([latent_from_seed(s, z_dim) for s in seeds])


def seed_ranges(text: str) -> list[range]:
    """The ranges a seed list such as ``"0-3, 9"`` names, in order (``[range(0, 4), range(9, 10)]``), of any length:
    for streaming, e.g. ``dcgan sample --seeds 0-49999``, without a list of every seed."""
    if not isinstance(text, str) or not text.strip():
        raise LatentError("empty seed list: write seeds like '0-15' or '3,7,42'")
    ranges: list[range] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", part)
        if not match:
            raise LatentError(f"seed list {brief(text)}: cannot read {brief(part)}; write seeds like '0-15' or '3,7,42'")
        if any(len(digits.lstrip("0")) > len(str(MAX_SEED)) for digits in match.groups() if digits):
            raise LatentError(f"seed list {brief(text)}: {brief(part)} is above the largest seed {MAX_SEED}")
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) is not None else start
        if stop < start:
            raise LatentError(f"seed range {brief(part)} goes backwards")
        if stop > MAX_SEED:
            raise LatentError(f"seed {stop} is above the largest seed {MAX_SEED}")
        ranges.append(range(start, stop + 1))
    return ranges


def parse_seeds(text: str, *, max_count: int = MAX_SEEDS) -> list[int]:
    """Parse a seed list such as ``"0-15"``, ``"3,7,42"`` or ``"0-3, 9"`` into at most ``max_count`` integers, in order."""
    ranges = seed_ranges(text)
    if sum(len(r) for r in ranges) > max_count:
        raise LatentError(f"seed list {brief(text)} names more than {max_count} seeds")
    return [s for r in ranges for s in r]


def format_seeds(seeds: list[int] | list[int | str]) -> str:
    """The shortest seed-list text for ``seeds`` ("0-15", "3,7,42"); ``parse_seeds`` reads it back (the explorer's
    ``ref_list`` when latent names, img-<12 hex>, stand among the seeds: then they are listed one by one)."""
    if not all(isinstance(s, int) for s in seeds):
        return ",".join(str(s) for s in seeds)
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(f"{seeds[i]}-{seeds[j]}" if j > i + 1 else ",".join(str(s) for s in seeds[i:j + 1]))
        i = j + 1
    return ",".join(parts)


def truncate(z: torch.Tensor, psi: float) -> torch.Tensor:
    """Truncation trick in z space: pull latents toward the mean (0) by ``psi`` in [0, 1] (1 = unchanged)."""
    if not 0.0 <= psi <= 1.0:
        raise LatentError(f"truncation {psi} must be between 0 and 1")
    return z * psi


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Linear interpolation; t=0 gives a, t=1 gives b."""
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation (White 2016) along the great circle, interpolating the norm linearly.

    Gaussian latents live near a sphere; lerp cuts through its low-density inside, slerp stays on it.
    a, b: [..., D]; t: scalar or [..., 1].
    """
    a_norm, b_norm = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    a_unit, b_unit = a / a_norm.clamp_min(1e-12), b / b_norm.clamp_min(1e-12)
    cos = (a_unit * b_unit).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    t = torch.as_tensor(t, dtype=a.dtype)
    close = sin.abs() < 1e-6  # (anti)parallel vectors: fall back to lerp of directions
    safe_sin = torch.where(close, torch.ones_like(sin), sin)
    direction = torch.where(
        close,
        lerp(a_unit, b_unit, t),
        (torch.sin((1 - t) * omega) * a_unit + torch.sin(t * omega) * b_unit) / safe_sin,
    )
    return direction * lerp(a_norm, b_norm, t)


INTERPOLATIONS = {"linear": lerp, "slerp": slerp}


def interpolate_path(keyframes: torch.Tensor, frames_per_segment: int, *, method: str = "slerp", loop: bool = False) -> torch.Tensor:
    """Latents along a path through keyframes [K, D]: [segments * frames_per_segment (+1 if open), D].

    An open path ends exactly on the last keyframe; a loop returns to the first (its last frame is omitted so a
    looping GIF does not show the first keyframe twice).
    """
    if method not in INTERPOLATIONS:
        raise LatentError(f"interpolation {brief(method)} is not one of {sorted(INTERPOLATIONS)}")
    if keyframes.ndim != 2 or keyframes.shape[0] < 2:
        raise LatentError("interpolation needs at least two keyframes")
    if frames_per_segment < 1:
        raise LatentError("frames per segment must be at least 1")
    points = torch.cat([keyframes, keyframes[:1]]) if loop else keyframes
    t = torch.arange(frames_per_segment, dtype=keyframes.dtype)[:, None] / frames_per_segment
    path = [INTERPOLATIONS[method](points[i], points[i + 1], t) for i in range(len(points) - 1)]
    if not loop:
        path.append(points[-1:])
    return torch.cat(path)


def arithmetic(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The paper's vector arithmetic (section 6.3.2): mean(A) - mean(B) + mean(C); each group [n_i, D] -> [D]."""
    for name, group in (("A", a), ("B", b), ("C", c)):
        if group.ndim != 2 or group.shape[0] < 1:
            raise LatentError(f"group {name} needs at least one latent vector, shaped [n, z_dim]")
    return a.mean(0) - b.mean(0) + c.mean(0)


def arithmetic_variants(y: torch.Tensor, *, count: int = 8, noise: float = 0.25, seed: int = 0) -> torch.Tensor:
    """The paper's 3x3 figure: ``y`` in the centre and ``count`` variants y + U(-noise, noise): [count + 1, D].

    The variants are reproducible by ``seed``; the centre is row ``count // 2``.
    """
    rng = torch.Generator().manual_seed(seed)
    jitter = (torch.rand(count, y.shape[-1], generator=rng) * 2 - 1) * noise
    variants = y + jitter
    middle = count // 2
    return torch.cat([variants[:middle], y[None], variants[middle:]])
