"""explorer.url_state: a shared link's query <-> ShareState, exact round trips, and bad links that never crash."""
from __future__ import annotations

import base64
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
import torch

from dcgan.errors import DCGANError
from dcgan.latent import latent_from_seed
from dcgan.project import latent_name
from explorer import service
from explorer.url_state import MAX_NOTES, MAX_PARAMS, MAX_VALUE_CHARS, PARAMS, ShareState, decode, encode, to_query

TABS = ("generate", "sliders", "arithmetic", "interpolation")
LATENT = tuple(float(v) for v in latent_from_seed(5, 100).numpy())  # float32 values, as a latent name's are


def query_of(link: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(link).query, keep_blank_values=True))


def everything_changed() -> ShareState:
    return ShareState(model="fashion-mnist", seed=4_000_000_000, latent=LATENT, truncation=0.15000000000000002, tab="interpolation",
                      seeds="3,7,42", amounts={"sefa-0": 2.0, "T-shirt/top": -1.35, "Blond Hair": 0.05}, shown=["T-shirt/top"],
                      keep_fixed=True, a="1,2,3", b="4", c="5-7", noise=0.5, noise_seed=9, keyframes="1,2,9", frames=120,
                      method="linear", loop="pingpong", fps=29.97)


def test_every_field_has_a_parameter_and_round_trips_exactly():
    state = everything_changed()
    link = encode(state)
    assert set(query_of(link)) == set(PARAMS.values())
    back, notes = decode(query_of(link), tabs=TABS)
    assert notes == []
    assert back == state  # floats too: 0.15000000000000002 is not 0.15


def test_the_default_state_is_an_empty_query_and_a_link_is_readable():
    assert encode(ShareState()) == ""
    link = encode(ShareState(model="mnist", seed=123, truncation=0.8, amounts={"sefa-0": 2.0, "digit-3": -1.5}))
    assert link == "?model=mnist&seed=123&psi=0.8&amounts=sefa-0:2,digit-3:-1.5"
    assert decode({}, tabs=TABS) == (ShareState(), [])


def test_missing_parameters_keep_their_defaults():
    state, notes = decode({"seed": "5", "tab": "sliders"}, tabs=TABS)
    assert (state, notes) == (ShareState(seed=5, tab="sliders"), [])


def test_an_empty_shown_list_differs_from_the_featured_default():
    state, notes = decode({"shown": ""}, tabs=TABS)
    assert state.shown == [] and notes == []
    assert query_of(encode(state)) == {"shown": ""}


def test_zero_amounts_are_left_out():
    assert decode({"amounts": "sefa-0:0,sefa-1:0.5"}, tabs=TABS)[0].amounts == {"sefa-1": 0.5}
    assert "amounts" not in to_query(ShareState(amounts={}))


@pytest.mark.parametrize("param, text, says", [
    ("seed", "abc", "seed: 'abc' must be an integer from 0 to 4294967295"),
    ("seed", "-1", "seed: -1 must be an integer"),
    ("seed", "1" * 400, "seed:"),
    ("psi", "nan", "psi: nan must be a finite number from 0.0 to 1.0"),
    ("psi", "1.5", "psi: 1.5 must be a finite number"),
    ("tab", "train", "tab: 'train' is not one of generate, sliders, arithmetic, interpolation"),
    ("seeds", "0-99", "seeds:"),
    ("seeds", "random", "seeds:"),
    ("amounts", "sefa-0=2", "amounts: 'sefa-0=2' is not 'direction:amount'"),
    ("amounts", "sefa-0:11", "amount of direction 'sefa-0': 11 must be a finite number from -10.0 to 10.0"),
    ("amounts", "sefa-0:inf", "must be a finite number"),
    ("amounts", ",".join(f"d{i}:1" for i in range(65)), "amounts: 65 directions; at most 64"),
    ("fixed", "yes", "fixed: 'yes' is not one of 0, 1"),
    ("a", "1-9", "group A:"),
    ("keys", "5", "keys: needs at least 2 seeds, got 1"),
    ("frames", "0", "frames: 0 must be an integer from 1 to 120"),
    ("frames", "2.5", "frames: 2.5 must be an integer"),
    ("method", "cubic", "method: 'cubic' is not one of slerp, linear"),
    ("loop", "forever", "loop: 'forever' is not one of loop, pingpong, once"),
    ("fps", "0", "fps: 0 must be a finite number from 1.0 to 60.0"),
    ("noise", "2", "noise: 2 must be a finite number from 0.0 to 1.0"),
    ("nseed", "x", "nseed: 'x' must be an integer"),
    ("model", "a,b", "model: 'a,b' is not a name"),
    ("colour", "red", "unknown parameter 'colour'"),
])
def test_a_bad_parameter_is_dropped_with_a_note_and_the_rest_kept(param, text, says):
    good = {"seed": "7", "keys": "1,2"}
    state, notes = decode({**good, param: text}, tabs=TABS)
    assert len(notes) == 1 and says in notes[0], notes
    field = {v: k for k, v in PARAMS.items()}.get(param)
    if field:
        assert getattr(state, field) == getattr(ShareState(), field)  # the default, not half of the bad value
    kept = {k: v for k, v in good.items() if k != param}
    assert {k: query_of(encode(state)).get(k) for k in kept} == kept


def test_the_notes_are_the_endpoints_own_messages():
    """The same validators as the API: a too-long seed list reads as /generate would refuse it."""
    with pytest.raises(DCGANError) as refused:
        service.seed_list("0-99", what="seeds", max_count=service.MAX_GENERATE_SEEDS)
    assert decode({"seeds": "0-99"}, tabs=TABS)[1] == [str(refused.value)]


def test_lengths_are_bounded():
    _, notes = decode({"seeds": "1," * MAX_VALUE_CHARS}, tabs=TABS)
    assert notes == [f"seeds: not a text of at most {MAX_VALUE_CHARS} characters"]
    _, notes = decode({f"p{i}": "x" for i in range(1000)}, tabs=TABS)
    assert len(notes) == MAX_NOTES + 1 and notes[-1] == f"and {MAX_PARAMS + 1 - MAX_NOTES} more"


@pytest.mark.parametrize("text", ["", " ", "\x00", "é", "💥", "1e309", "-0", "0x10", "1_000", "٣", "True", "None", "[]", "{}", "%00",
                                  "9" * 5000, ",,,", ":", "a:b:c", "\n", "0-4294967296"])
def test_no_value_of_any_parameter_crashes_decode(text):
    for param in [*PARAMS.values(), "other"]:
        state, notes = decode({param: text}, tabs=TABS)
        assert isinstance(state, ShareState) and all(isinstance(n, str) and len(n) < 400 for n in notes)


def test_encode_leaves_out_what_a_link_could_not_carry():
    """A half-typed seed list in the UI never makes a link that would be refused when opened."""
    link = encode(ShareState(seed=3, seeds="3,", keyframes="1", model="a:b"))
    assert query_of(link) == {"seed": "3"}
    assert decode(query_of(link), tabs=TABS)[1] == []


def test_seed_lists_come_back_as_they_were_written():
    state, _ = decode({"seeds": "0,1,2,3,4,5,6,7", "a": " 3 , 7 ", "b": "0-3"}, tabs=TABS)
    assert (state.seeds, state.a, state.b) == ("0,1,2,3,4,5,6,7", "3 , 7", "0-3")


def test_seed_lists_may_name_latents_but_the_header_seed_stays_an_integer():
    state, notes = decode({"seeds": "3,img-0123456789ab", "keys": "img-0123456789ab,7"}, tabs=TABS)
    assert (state.seeds, state.keyframes, notes) == ("3,img-0123456789ab", "img-0123456789ab,7", [])
    state, notes = decode({"a": "img-XYZ", "seed": "img-0123456789ab"}, tabs=TABS)
    assert (state.a, state.seed) == ("", 0) and len(notes) == 2 and "latent name" in notes[0]
    assert "only the session that made it knows; a link carries the latent itself (z=...)" in notes[1]


def test_a_latent_travels_as_its_exact_values():
    """A latent name means nothing to another session: the link carries the float32 values, and they come back
    bit for bit, so the name made from them on the other side is the same."""
    query = query_of(encode(ShareState(latent=LATENT)))
    assert list(query) == ["z"] and len(query["z"]) == 534  # 100 float32 values in base64 without padding
    back, notes = decode(query, tabs=TABS)
    assert notes == [] and back.latent == LATENT
    assert latent_name(torch.tensor(back.latent)) == latent_name(latent_from_seed(5, 100))


@pytest.mark.parametrize("values, says", [
    (np.array([0.5, np.nan], "<f4"), "NaN or infinite"),
    (np.array([0.5, 1e6], "<f4"), "within ±"),
    (np.array([0.5], "<f8"), None),  # 8 bytes read as two float32 values: a valid (meaningless) latent, not a crash
])
def test_bad_latent_values_are_dropped_with_a_note(values, says):
    text = base64.urlsafe_b64encode(values.tobytes()).decode().rstrip("=")
    state, notes = decode({"z": text, "seed": "7"}, tabs=TABS)
    assert state.seed == 7
    if says:
        assert state.latent is None and len(notes) == 1 and says in notes[0], notes
    else:
        assert notes == [] and len(state.latent) == 2


@pytest.mark.parametrize("text, says", [("AAA", "not a whole number of float32"), ("A", "not URL-safe base64"),
                                        ("AA+A", "not URL-safe base64"), ("AAAA=", "not URL-safe base64")])
def test_a_latent_that_is_not_base64_floats_is_dropped(text, says):
    state, notes = decode({"z": text}, tabs=TABS)
    assert state.latent is None and len(notes) == 1 and says in notes[0], notes
