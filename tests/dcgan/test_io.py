"""The one safetensors-with-metadata reader/writer: header checks, the header-only metadata read, atomic saves."""
import struct

import pytest
import torch
from safetensors.torch import save as st_save

from dcgan.errors import CheckpointError
from dcgan.io import MAX_HEADER_BYTES, load_safetensors, parse_header, read_header, read_metadata, save_safetensors


def _with_header(path, header: bytes):
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    path = tmp_path / "x.safetensors"
    save_safetensors({"w": torch.arange(6.0).view(2, 3)}, path, metadata={"format_version": "1", "note": "hi"})
    metadata, tensors = load_safetensors(path, max_bytes=2**20, what="test file")
    assert metadata == {"format_version": "1", "note": "hi"} and torch.equal(tensors["w"], torch.arange(6.0).view(2, 3))
    assert read_metadata(path) == metadata and read_header(path)["w"]["shape"] == [2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]  # no temp file left behind
    with pytest.raises(CheckpointError, match="limit for a test file"):
        load_safetensors(path, max_bytes=16, what="test file")


def test_deeply_nested_header_is_refused_not_a_recursion_error(tmp_path):
    depth = 100_000
    data = struct.pack("<Q", 2 * depth) + b"[" * depth + b"]" * depth
    assert 2 * depth <= MAX_HEADER_BYTES  # under the size limit: only the parser can refuse it
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        parse_header(data, tmp_path / "deep.safetensors")
    path = tmp_path / "deep.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_safetensors(path, max_bytes=2**20, what="test file")
    assert read_metadata(path) is None


def test_read_metadata_is_none_for_anything_but_a_safetensors_header(tmp_path):
    good = tmp_path / "good.safetensors"
    good.write_bytes(st_save({"x": torch.zeros(2)}, metadata={"a": "1"}))
    assert read_metadata(good) == {"a": "1"}
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(st_save({"x": torch.zeros(2)}))
    (tmp_path / "short").write_bytes(b"abc")
    (tmp_path / "huge").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    cases = {
        "missing": tmp_path / "missing.safetensors",
        "folder": tmp_path,
        "short": tmp_path / "short",
        "huge": tmp_path / "huge",
        "not-json": _with_header(tmp_path / "junk", b"not json"),
        "not-object": _with_header(tmp_path / "list", b"[1, 2]"),
        "bad-metadata": _with_header(tmp_path / "meta", b'{"__metadata__": {"a": 1}}'),
        "no-metadata": plain,
    }
    for name, path in cases.items():
        assert read_metadata(path) is None, name


def test_header_only_read_does_not_read_the_tensors(tmp_path):
    path = tmp_path / "cut.safetensors"
    data = st_save({"x": torch.zeros(1000)}, metadata={"a": "1"})
    (n,) = struct.unpack("<Q", data[:8])
    path.write_bytes(data[: 8 + n])  # tensors cut off: the header alone still reads
    assert read_metadata(path) == {"a": "1"}
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_safetensors(path, max_bytes=2**20, what="test file")
