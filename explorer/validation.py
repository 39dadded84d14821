"""Input checks for the explorer's actions: numbers, seeds and names arrive from browsers and API clients as anything
(strings, NaN, booleans, huge lists), and each check answers with a DCGANError that says what is allowed."""
from __future__ import annotations

import math
import numbers
import re
import secrets
from typing import Any

from dcgan.errors import ConfigError, LatentError, brief
from dcgan.latent import MAX_SEED, parse_seeds
from dcgan.project import LATENT_NAME_PREFIX, is_latent_name

RANDOM_COUNT = 16              # seeds drawn for "random"
RANDOM_SEED_MAX = 2**31 - 1    # random seeds stay readable (the seed contract accepts up to 2**32 - 1)


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (floats with integral values are accepted); ConfigError otherwise."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise ConfigError(f"{name}: {brief(value)} must be an integer from {lo} to {hi}")
    return int(value)


def check_float(name: str, value: Any, lo: float, hi: float) -> float:
    """A finite number in [lo, hi]; ConfigError otherwise (NaN and infinities are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f"{name}: {brief(value)} must be a finite number from {lo} to {hi}")
    return float(value)


def check_seed(value: Any, name: str = "seed") -> int:
    try:
        return check_int(name, value, 0, MAX_SEED)
    except ConfigError as exc:
        raise LatentError(str(exc)) from None


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name}: {brief(value)} is not one of {', '.join(choices)}")
    return value


def seed_list(value: Any, *, what: str, max_count: int, min_count: int = 1, allow_random: bool = False) -> list[int]:
    """Seeds from text ("0-15", "3,7,42", "random" if allowed) or a list of ints, with count limits."""
    if allow_random and isinstance(value, str) and value.strip().lower() == "random":
        return [secrets.randbelow(RANDOM_SEED_MAX) for _ in range(min(RANDOM_COUNT, max_count))]
    if isinstance(value, (list, tuple)):
        if len(value) > max_count:
            raise LatentError(f"{what}: {len(value)} seeds; at most {max_count}")
        seeds = [check_seed(v, what) for v in value]
    elif isinstance(value, str):
        try:
            seeds = parse_seeds(value, max_count=max_count)
        except LatentError as exc:
            raise LatentError(f"{what}: {exc}") from None
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        seeds = [check_seed(value, what)]
    else:
        raise LatentError(f"{what}: {brief(value)} is not a seed list; write seeds like '0-15' or '3,7,42'")
    if len(seeds) < min_count:
        raise LatentError(f"{what}: needs at least {min_count} seed{'s' if min_count > 1 else ''}, got {len(seeds)}")
    return seeds


def _latent_ref(value: str, what: str) -> str:
    if not is_latent_name(value):
        raise LatentError(f"{what}: {brief(value)} is not a latent name; they look like img-0123456789ab (lower-case hex)")
    return value


def check_ref(value: Any, name: str = "seed") -> int | str:
    """A seed, or a latent name (``img-<12 hex>``) standing in for one."""
    if isinstance(value, str) and value.strip().startswith(LATENT_NAME_PREFIX):
        return _latent_ref(value.strip(), name)
    return check_seed(value, name)


def seed_text(value: Any) -> int | str:
    """The header's current-seed box: an integer 0..MAX_SEED or a latent name, typed as text (or given as an int)."""
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        return check_seed(int(value), "current seed")
    if isinstance(value, str) and value.strip().startswith(LATENT_NAME_PREFIX):
        return _latent_ref(value.strip(), "current seed")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return check_seed(value, "current seed")
    raise LatentError(f"current seed: {brief(value)} is neither a seed (an integer from 0 to {MAX_SEED}) nor a latent name "
                      "(img-0123456789ab, from the Your image tab)")


def ref_list(value: Any, *, what: str, max_count: int, min_count: int = 1, allow_random: bool = False) -> list[int | str]:
    """``seed_list`` where latent names may stand in for seeds: "3, img-0123456789ab, 40-42" or a list of both."""
    if isinstance(value, str) and LATENT_NAME_PREFIX in value:
        parts: list[Any] = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        return seed_list(value, what=what, max_count=max_count, min_count=min_count, allow_random=allow_random)
    refs: list[int | str] = []
    for part in parts:
        if isinstance(part, str) and part.startswith(LATENT_NAME_PREFIX):
            refs.append(_latent_ref(part, what))
        else:
            refs.extend(seed_list(part, what=what, max_count=max_count, min_count=1))
        if len(refs) > max_count:
            raise LatentError(f"{what}: more than {max_count} seeds or latents")
    if len(refs) < min_count:
        raise LatentError(f"{what}: needs at least {min_count} seed{'s' if min_count > 1 else ''}, got {len(refs)}")
    return refs


def concept_name(text: Any) -> str:
    """A concept's name: 1-40 letters, digits, spaces, '_' or '-'."""
    name = text.strip() if isinstance(text, str) else ""
    if not re.fullmatch(r"[A-Za-z0-9_ -]{1,40}", name):
        raise ConfigError(f"concept name {brief(text)}: use 1-40 letters, digits, spaces, '_' or '-' (e.g. 'smile')")
    return name
