import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save as st_save

from dcgan.checkpoints import FORMAT_VERSION, load_generator, load_state, save_generator
from dcgan.config import ModelConfig
from dcgan.errors import CheckpointError
from dcgan.io import atomic_write_bytes
from dcgan.models import build_generator

CFG = ModelConfig(image_size=16, channels=1, z_dim=8, ngf=4, ndf=4)


def _saved(tmp_path, dtype=torch.float32):
    G = build_generator(CFG).eval()
    path = tmp_path / "g.safetensors"
    save_generator(G, path, model=CFG, info={"dataset": "fake", "step": 3}, dtype=dtype)
    return G, path


def test_round_trip(tmp_path):
    G, path = _saved(tmp_path)
    loaded, meta = load_generator(path)
    assert meta.model == CFG and meta.info["step"] == 3 and meta.info["dataset"] == "fake" and "date" in meta.info
    assert not loaded.training
    z = torch.randn(4, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(z), G(z))


def test_fp16_storage_round_trip(tmp_path):
    G, path = _saved(tmp_path, torch.float16)
    loaded, _ = load_generator(path)
    assert next(loaded.parameters()).dtype == torch.float32
    with torch.no_grad():
        z = torch.randn(4, 8)
        assert (loaded(z) - G(z)).abs().max() < 1e-2


def test_run_directory_resolves_to_generator(tiny_ckpt):
    G, meta = load_generator(tiny_ckpt)
    assert meta.model.image_size == 16 and meta.info["step"] == 2 and meta.info["images_seen"] == 32


def test_plain_state_dict_needs_and_accepts_a_config(tmp_path):
    G = build_generator(CFG)
    path = tmp_path / "plain.safetensors"
    path.write_bytes(st_save({k: v.contiguous() for k, v in G.state_dict().items()}))
    with pytest.raises(CheckpointError, match="no dcgan-explorer metadata"):
        load_generator(path)
    loaded, meta = load_generator(path, model=CFG)
    assert meta.info == {}


def _expect_refused(path, match):
    with pytest.raises(CheckpointError, match=match):
        load_generator(path)


def test_pickles_are_refused_without_loading(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    raw = tmp_path / "evil.safetensors"
    raw.write_bytes(pickle.dumps(Evil()))
    _expect_refused(raw, "pickle")
    zipped = tmp_path / "model.safetensors"
    torch.save(build_generator(CFG).state_dict(), zipped)
    _expect_refused(zipped, "pickle")
    assert not marker.exists()


def test_truncated_and_garbage_files(tmp_path):
    _, path = _saved(tmp_path)
    data = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(data[: len(data) // 2])
    _expect_refused(tmp_path / "short.safetensors", "not a valid safetensors|truncated")
    (tmp_path / "tiny.safetensors").write_bytes(b"abc")
    _expect_refused(tmp_path / "tiny.safetensors", "truncated")
    (tmp_path / "junk.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"x" * 100)
    _expect_refused(tmp_path / "junk.safetensors", "not JSON")
    _expect_refused(tmp_path / "missing.safetensors", "no such")


def test_huge_header_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    _expect_refused(path, "header claims")


def test_header_that_lies_about_shapes(tmp_path):
    _, path = _saved(tmp_path)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    name = "main.0.weight"
    header[name]["shape"] = [s * 2 for s in header[name]["shape"]]
    blob = json.dumps(header).encode()
    (tmp_path / "lie.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n :])
    _expect_refused(tmp_path / "lie.safetensors", "not a valid safetensors")


def test_wrong_metadata_and_mismatched_tensors(tmp_path):
    G = build_generator(CFG)
    tensors = {k: v.contiguous() for k, v in G.state_dict().items()}
    meta = {"format_version": "99", "model": json.dumps(CFG.__dict__)}
    (tmp_path / "v99.safetensors").write_bytes(st_save(tensors, metadata=meta))
    _expect_refused(tmp_path / "v99.safetensors", "format_version 99")
    bad_cfg = {**CFG.__dict__, "image_size": 48}
    (tmp_path / "cfg.safetensors").write_bytes(st_save(tensors, metadata={"format_version": str(FORMAT_VERSION),
                                                                          "model": json.dumps(bad_cfg)}))
    _expect_refused(tmp_path / "cfg.safetensors", "invalid model config")
    bigger = {**CFG.__dict__, "ngf": 8}
    (tmp_path / "shape.safetensors").write_bytes(st_save(tensors, metadata={"format_version": str(FORMAT_VERSION),
                                                                            "model": json.dumps(bigger)}))
    _expect_refused(tmp_path / "shape.safetensors", "shape")
    tensors["main.0.weight"][0, 0, 0, 0] = float("nan")
    (tmp_path / "nan.safetensors").write_bytes(st_save(tensors, metadata={"format_version": str(FORMAT_VERSION),
                                                                          "model": json.dumps(CFG.__dict__)}))
    _expect_refused(tmp_path / "nan.safetensors", "NaN")


def test_atomic_write_keeps_old_file_when_folder_is_unwritable(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(b"old", target)
    with pytest.raises(CheckpointError):
        atomic_write_bytes(b"new", tmp_path / "no-such-dir" / "f.bin")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_state_is_loaded_weights_only(tiny_ckpt, tmp_path):
    state = load_state(tiny_ckpt)
    assert state["step"] == 2 and set(state) >= {"G", "D", "G_ema", "opt_G", "opt_D", "rng", "config"}
    evil = tmp_path / "state.pt"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format_version": FORMAT_VERSION, "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state(evil)


def test_header_length_starting_with_pickle_byte_is_still_safetensors(tmp_path):
    """A header of 128 + 256k bytes makes the file start with 0x80, a pickle's first byte: it must still load."""
    G = build_generator(CFG)
    tensors = {k: v.contiguous() for k, v in G.state_dict().items()}
    for pad in range(300):
        meta = {"format_version": str(FORMAT_VERSION), "model": json.dumps(CFG.__dict__), "pad": "x" * pad}
        blob = st_save(tensors, metadata=meta)
        if blob[0] == 0x80:
            break
    path = tmp_path / "g.safetensors"
    path.write_bytes(blob)
    assert path.read_bytes()[0] == 0x80
    loaded, _ = load_generator(path)
    assert loaded is not None
