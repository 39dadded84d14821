"""The explorer's shareable state as URL query parameters: ``ShareState`` <-> ``{"model": "mnist", "seed": "123", ...}``.

Every value is checked with the endpoints' own validators (explorer.validation, explorer.service limits). A link is
written by anyone, so ``decode`` never raises: a bad or unknown parameter is dropped with a note saying why, and
lengths are bounded before anything is parsed. ``encode`` writes only what differs from the defaults (the app's
initial values), so a fresh page has a short link. A latent name (img-<sha12>) means nothing to another visitor's
session, so a current seed that is one travels as its values (``z``: float32 in URL-safe base64, exact).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

import numpy as np

from dcgan.actions import LOOP_MODES
from dcgan.directions import MAX_AMOUNT
from dcgan.errors import DCGANError, brief
from dcgan.project import LATENT_NAME_PREFIX, check_latents

from .service import (
    FPS_RANGE,
    MAX_AMOUNT_ENTRIES,
    MAX_FRAMES_PER_SEGMENT,
    MAX_GENERATE_SEEDS,
    MAX_GROUP_SEEDS,
    MAX_KEYFRAMES,
    MAX_NOISE,
    METHODS,
)
from .validation import check_choice, check_float, check_int, check_seed, ref_list

MAX_VALUE_CHARS = 2000   # one parameter's text; longer ones are refused unread
MAX_PARAMS = 64          # parameters looked at in one link; the rest are ignored
MAX_NOTES = 12           # notes returned about one link
MAX_NAME_CHARS = 100     # a model or direction name
_NAME = re.compile(r"[^,:\x00-\x1f\x7f]{1,%d}" % MAX_NAME_CHARS)  # ',' and ':' separate the amounts' entries


@dataclass
class ShareState:
    """What a link restores. Defaults are the app's initial values (tests/explorer/test_share.py checks they agree)."""
    model: str | None = None          # a name from the model picker; None: the picker's first
    seed: int = 0                     # the header's current seed
    latent: tuple[float, ...] | None = None  # ...or, in its place, a latent's values (float32), when it is a latent name
    truncation: float = 1.0           # ψ
    tab: str = "generate"             # the selected tab's id
    seeds: str = "0-15"               # Generate: the seed list
    amounts: dict[str, float] = field(default_factory=dict)  # Latent sliders: direction name -> amount (non-zero only)
    shown: list[str] | None = None    # Latent sliders: the labelled directions shown; None: the tab's featured ones
    keep_fixed: bool = False          # Latent sliders: hold the other shown attributes still
    a: str = ""                       # Vector arithmetic: group seed lists
    b: str = ""
    c: str = ""
    noise: float = 0.25
    noise_seed: int = 0
    keyframes: str = "0,1,2,3"        # Interpolation
    frames: int = 16
    method: str = "slerp"
    loop: str = "loop"
    fps: float = 12.0


# field -> query parameter; the order of a written link
PARAMS = {"model": "model", "seed": "seed", "latent": "z", "truncation": "psi", "tab": "tab", "seeds": "seeds", "amounts": "amounts",
          "shown": "shown", "keep_fixed": "fixed", "a": "a", "b": "b", "c": "c", "noise": "noise", "noise_seed": "nseed",
          "keyframes": "keys", "frames": "frames", "method": "method", "loop": "loop", "fps": "fps"}
FIELDS = {param: name for name, param in PARAMS.items()}


# ----------------------------------------------------------------------------------------------------------------
# text -> values (each raises a DCGANError naming the value; decode turns it into a note)

def _number(text: str) -> float | int:
    """A query value as a number for the validators: an integer if written as one, else a float (NaN stays NaN)."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text  # the validator names it


def _name(what: str, text: str) -> str:
    if not _NAME.fullmatch(text):
        raise DCGANError(f"{what}: {brief(text)} is not a name (1-{MAX_NAME_CHARS} characters, no ',' or ':')")
    return text


def _seed(text: str) -> int:
    if text.strip().startswith(LATENT_NAME_PREFIX):
        raise DCGANError(f"seed: {brief(text)} is a latent name, which only the session that made it knows; a link carries "
                         "the latent itself (z=...)")
    return check_seed(_number(text))


def _latent(text: str) -> tuple[float, ...]:
    """z=: little-endian float32 values in URL-safe base64 without padding, checked as /latent_upload checks a .npy
    (finite, bounded); its length is checked against the model's z_dim when the link is opened."""
    try:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
            raise ValueError
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raise DCGANError("z: not URL-safe base64 (the values of a latent, as a shared link writes them)") from None
    if len(data) % 4:
        raise DCGANError(f"z: {len(data)} bytes is not a whole number of float32 values")
    values = np.frombuffer(data, "<f4")
    check_latents(values, len(values), what="z")
    return tuple(float(v) for v in values)


def _latent_text(values: tuple[float, ...]) -> str:
    return base64.urlsafe_b64encode(np.asarray(values, "<f4").tobytes()).decode().rstrip("=")


def _seed_text(what: str, max_count: int, min_count: int = 1, empty: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if empty and not text.strip():
            return ""
        ref_list(text, what=what, max_count=max_count, min_count=min_count)  # latent names (img-<12 hex>) too, as the tabs take
        return text.strip()  # as the box showed it ("3,7,42" or "0-15"), once it is known to be valid
    return parse


def _amounts(text: str) -> dict[str, float]:
    entries = [e for e in text.split(",") if e.strip()]
    if len(entries) > MAX_AMOUNT_ENTRIES:
        raise DCGANError(f"amounts: {len(entries)} directions; at most {MAX_AMOUNT_ENTRIES}")
    out = {}
    for entry in entries:
        name, sep, value = entry.rpartition(":")
        if not sep:
            raise DCGANError(f"amounts: {brief(entry)} is not 'direction:amount' (e.g. 'sefa-0:2,Smiling:-1.5')")
        amount = check_float(f"amount of direction {brief(name)}", _number(value), -MAX_AMOUNT, MAX_AMOUNT)
        if amount:
            out[_name("amounts", name)] = amount
    return out


def _shown(text: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    if len(names) > MAX_AMOUNT_ENTRIES:
        raise DCGANError(f"shown: {len(names)} directions; at most {MAX_AMOUNT_ENTRIES}")
    return list(dict.fromkeys(_name("shown", n) for n in names))


def _flag(text: str) -> bool:
    return check_choice("fixed", text, ("0", "1")) == "1"


PARSERS: dict[str, Callable[[str], Any]] = {
    "model": lambda t: _name("model", t),
    "seed": _seed,
    "latent": _latent,
    "truncation": lambda t: check_float("psi", _number(t), 0.0, 1.0),
    "seeds": _seed_text("seeds", MAX_GENERATE_SEEDS),
    "amounts": _amounts,
    "shown": _shown,
    "keep_fixed": _flag,
    "a": _seed_text("group A", MAX_GROUP_SEEDS, empty=True),
    "b": _seed_text("group B", MAX_GROUP_SEEDS, empty=True),
    "c": _seed_text("group C", MAX_GROUP_SEEDS, empty=True),
    "noise": lambda t: check_float("noise", _number(t), 0.0, MAX_NOISE),
    "noise_seed": lambda t: check_seed(_number(t), "nseed"),
    "keyframes": _seed_text("keys", MAX_KEYFRAMES, min_count=2),
    "frames": lambda t: check_int("frames", _number(t), 1, MAX_FRAMES_PER_SEGMENT),
    "method": lambda t: check_choice("method", t, METHODS),
    "loop": lambda t: check_choice("loop", t, LOOP_MODES),
    "fps": lambda t: check_float("fps", _number(t), *FPS_RANGE),
}


# ----------------------------------------------------------------------------------------------------------------
# values -> text

def _text(value: Any) -> str:
    """The shortest text that reads back as the same value (floats through repr, so they round-trip exactly)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{_text(float(v))}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def to_query(state: ShareState) -> dict[str, str]:
    """The parameters of ``state`` that differ from the defaults, in link order."""
    default = ShareState()
    return {PARAMS[f.name]: (_latent_text if f.name == "latent" else _text)(getattr(state, f.name)) for f in dataclasses.fields(state)
            if getattr(state, f.name) != getattr(default, f.name) and getattr(state, f.name) is not None}


def encode(state: ShareState) -> str:
    """``?model=mnist&seed=123&psi=0.8...`` ('' for the default state); ',' and ':' stay readable. Values that a
    link could not carry (a half-typed seed list) are left out, as ``decode`` would drop them."""
    valid, _ = decode(to_query(state), tabs=(str(state.tab),))
    query = to_query(valid)
    return "?" + urlencode(query, safe=",:") if query else ""


def decode(params: Mapping[str, Any], *, tabs: tuple[str, ...] = ("generate",)) -> tuple[ShareState, list[str]]:
    """A ShareState from query parameters (a dict of strings, e.g. ``dict(request.query_params)``) and notes on what
    was ignored. ``tabs``: the tab ids the app has. Never raises on bad input; missing parameters keep their default."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    for i, (param, text) in enumerate(params.items()):
        if i >= MAX_PARAMS:
            notes.append(f"only the first {MAX_PARAMS} parameters were read")
            break
        name = FIELDS.get(param)
        if name is None:
            notes.append(f"unknown parameter {brief(param)}")
        elif not isinstance(text, str) or len(text) > MAX_VALUE_CHARS:
            notes.append(f"{param}: not a text of at most {MAX_VALUE_CHARS} characters")
        else:
            try:
                values[name] = check_choice("tab", text, tabs) if name == "tab" else PARSERS[name](text)
            except DCGANError as exc:
                notes.append(str(exc))
    if len(notes) > MAX_NOTES:
        notes = notes[:MAX_NOTES] + [f"and {len(notes) - MAX_NOTES} more"]
    return ShareState(**values), notes
