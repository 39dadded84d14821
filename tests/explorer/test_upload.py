"""Bring your own generator (/upload) and what the app refuses: bad checkpoint files, server paths, oversized uploads,
path-like model names, and files it did not produce (raw HTTP)."""
from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dcgan.checkpoints import GENERATOR_FILE
from dcgan.config import ModelConfig
from dcgan.models import build_generator
from tests.conftest import SLOW_TIMEOUT

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PLAIN = ModelConfig(arch="dcgan", image_size=16, channels=1, z_dim=8, ngf=8, ndf=8)


@pytest.fixture(scope="module")
def upload_app(checkpoints_dir, tmp_path_factory, gradio_env):
    """The app launched as app.py launches it (security_options), with an UploadStore in its own folder."""
    from gradio_client import Client

    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.ui.app import build_app, launch_options, security_options
    from explorer.uploads import UploadStore

    registry = CheckpointRegistry([checkpoints_dir])
    out = OutputDir(tmp_path_factory.mktemp("upload-out"))
    store = UploadStore(registry, tmp_path_factory.mktemp("uploads"), max_uploads=4)
    demo = build_app(Catalog(registry), out=out, uploads=store)
    demo.queue(default_concurrency_limit=2, max_size=64)
    blocked = [store.root, checkpoints_dir, ROOT / "dcgan", ROOT / "explorer", ROOT / "app.py"]
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            **security_options(out, blocked=blocked), **launch_options())
    client = Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
    try:
        yield client, store, url
    finally:
        client.close()
        demo.close()


def _plain_state_dict(path: Path) -> Path:
    torch.manual_seed(1)
    save_file({k: v.contiguous() for k, v in build_generator(PLAIN).state_dict().items()}, str(path))
    return path


def _header_file(path: Path, header: dict, body: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def test_upload_our_generator_then_explore_it(upload_app, checkpoints_dir):
    from gradio_client import handle_file

    client, store, _ = upload_app
    name = client.predict(handle_file(str(checkpoints_dir / "tiny" / GENERATOR_FILE)), api_name="/upload")
    assert name.startswith("upload-") and (store.root / name / GENERATOR_FILE).is_file()
    _, meta = client.predict(name, "0-3", 1.0, api_name="/generate")
    assert meta["tile_size"] == [16, 16]
    directions = client.predict(name, api_name="/directions")
    assert "sefa-0" in directions
    assert client.predict(name, 3, {"sefa-0": 2.0}, api_name="/edit")
    assert name not in [m["name"] for m in client.predict(api_name="/models")]  # other users never see it listed
    assert client.predict(handle_file(str(checkpoints_dir / "tiny" / GENERATOR_FILE)), api_name="/upload") == name


def test_plain_state_dict_needs_its_config(upload_app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client, _, _ = upload_app
    path = _plain_state_dict(tmp_path / "netG.safetensors")
    with pytest.raises(AppError, match="no dcgan-explorer metadata; give its model config"):
        client.predict(handle_file(str(path)), api_name="/upload")
    with pytest.raises(AppError, match="expected"):  # the wrong config: shapes do not match
        client.predict(handle_file(str(path)), "dcgan", 32, 1, 8, 8, api_name="/upload")
    name = client.predict(handle_file(str(path)), "dcgan", 16, 1, 8, 8, api_name="/upload")
    _, meta = client.predict(name, "0-1", api_name="/generate")
    assert meta["tile_size"] == [16, 16]
    assert "pca-0" in client.predict(name, api_name="/directions")


def _bad_files(tmp_path: Path, tiny: Path) -> dict[str, tuple[Path, str]]:
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    pickled = tmp_path / "renamed.safetensors"
    torch.save(build_generator(PLAIN).state_dict(), pickled)
    raw_pickle = tmp_path / "raw.safetensors"
    raw_pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    data = tiny.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01\x02")
    metadata = {"format_version": "1", "model": json.dumps({"arch": "dcgan", "image_size": 16, "channels": 1, "z_dim": 8,
                                                            "ngf": 8, "ndf": 8})}
    lying = {"__metadata__": metadata, "main.0.weight": {"dtype": "F32", "shape": [4096, 4096, 4, 4], "data_offsets": [0, 16]}}
    _header_file(tmp_path / "lying.safetensors", lying, b"\x00" * 16)
    huge = tmp_path / "huge-header.safetensors"
    huge.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    _header_file(tmp_path / "version.safetensors", {"__metadata__": {**metadata, "format_version": "99"}})
    _header_file(tmp_path / "badmodel.safetensors", {"__metadata__": {**metadata, "model": '{"arch": "resnet"}'}})
    _header_file(tmp_path / "notjson.safetensors", {"__metadata__": metadata}).write_bytes(struct.pack("<Q", 4) + b"nope")
    return {
        "pickle .pt": (tmp_path / "model.pt", "only .safetensors"),
        "pickle renamed": (pickled, "pickle / torch.save file"),
        "raw pickle renamed": (raw_pickle, "pickle"),
        "truncated": (tmp_path / "truncated.safetensors", "truncated|not a valid safetensors"),
        "too short": (tmp_path / "tiny.safetensors", "truncated file"),
        "lying shapes": (tmp_path / "lying.safetensors", "not a valid safetensors|shape"),
        "huge header": (huge, "header claims"),
        "wrong version": (tmp_path / "version.safetensors", "format_version 99"),
        "wrong model metadata": (tmp_path / "badmodel.safetensors", "invalid model config"),
        "header not json": (tmp_path / "notjson.safetensors", "header is not JSON"),
    }


BAD_KINDS = ["pickle .pt", "pickle renamed", "raw pickle renamed", "truncated", "too short", "lying shapes", "huge header",
             "wrong version", "wrong model metadata", "header not json"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_checkpoints_are_refused_clearly(upload_app, checkpoints_dir, tmp_path, kind, monkeypatch):
    import pickle

    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    ran = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: ran.append(a))  # nothing may unpickle, in this process
    client, store, _ = upload_app
    path, match = _bad_files(tmp_path, checkpoints_dir / "tiny" / GENERATOR_FILE)[kind]
    before = sorted(p.name for p in store.root.iterdir())
    with pytest.raises(AppError, match=match) as info:
        client.predict(handle_file(str(path)), "dcgan", 16, 1, 8, 8, api_name="/upload")
    assert "/gradio" not in str(info.value) and str(path.parent) not in str(info.value)  # no server paths in messages
    assert not ran and sorted(p.name for p in store.root.iterdir()) == before
    assert client.predict(api_name="/models")[0]["name"] == "tiny"  # the app stays up


@pytest.mark.parametrize("fields, match", [
    (("dcgan", 16, 1, 8, 10**6), "ngf"), (("dcgan", 16, 2, 8, 8), "channels"), (("gan", 16, 1, 8, 8), "arch"),
    (("dcgan", 24, 1, 8, 8), "power of two"), (("dcgan", 16, 1, -1, 8), "z_dim"),
])
def test_upload_form_fields_are_bounded(upload_app, tmp_path, fields, match):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client, _, _ = upload_app
    with pytest.raises(AppError, match=match):
        client.predict(handle_file(str(_plain_state_dict(tmp_path / "g.safetensors"))), *fields, api_name="/upload")


@pytest.mark.parametrize("image_size, z_dim, ngf", [(64, 1024, 1024), (128, 1024, 1024)])
def test_a_tiny_file_with_a_huge_config_allocates_nothing(upload_app, tmp_path, image_size, z_dim, ngf):
    """The attack: 100 bytes and the form's largest config once cost +3.2 GiB (64 px) or ~11.6 GiB (128 px)."""
    import psutil
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client, _, _ = upload_app
    path = _header_file(tmp_path / "tiny-huge.safetensors", {"main.0.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                        b"\0" * 4)
    rss = psutil.Process().memory_info().rss
    with pytest.raises(AppError, match="parameters; the limit is"):
        client.predict(handle_file(str(path)), "dcgan", image_size, 3, z_dim, ngf, api_name="/upload")
    assert psutil.Process().memory_info().rss - rss < 200 * 2**20  # the app runs in this process
    assert client.predict(api_name="/models")[0]["name"] == "tiny"


def test_int8_weights_are_refused_before_loading(upload_app, tmp_path):
    """Quantised tensors would grow 4x on loading: the header's dtype is read and refused."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client, _, _ = upload_app
    tensors = {k: (v.to(torch.int8) if v.is_floating_point() else v).contiguous() for k, v in build_generator(PLAIN).state_dict().items()}
    save_file(tensors, str(tmp_path / "int8.safetensors"))
    with pytest.raises(AppError, match="stored as 'I8'"):
        client.predict(handle_file(str(tmp_path / "int8.safetensors")), "dcgan", 16, 1, 8, 8, api_name="/upload")


def _raw_call(url: str, api: str, data: list) -> str:
    request = urllib.request.Request(f"{url}gradio_api/call/{api}", data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=SLOW_TIMEOUT).read())["event_id"]
    return urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event_id}", timeout=SLOW_TIMEOUT).read().decode()


def test_upload_refuses_server_paths(upload_app, checkpoints_dir):
    client, _, url = upload_app
    target = str(checkpoints_dir / "tiny" / GENERATOR_FILE)
    assert "not a path string" in _raw_call(url, "upload", [target] + [None] * 5)
    stream = _raw_call(url, "upload", [{"path": target, "meta": {"_type": "gradio.FileData"}}] + [None] * 5)
    assert "event: error" in stream and "upload-" not in stream  # Gradio: "not uploaded by a user"
    assert client.predict(api_name="/models")[0]["name"] == "tiny"


def test_oversized_upload_is_refused(upload_app, tmp_path):
    import httpx

    from explorer.uploads import MAX_UPLOAD_BYTES

    client, _, url = upload_app
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with open(big, "rb") as f:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.safetensors", f)}, timeout=SLOW_TIMEOUT)
    assert response.status_code == 413, response.text
    assert client.predict(api_name="/models")[0]["name"] == "tiny"


def test_file_route_serves_only_what_the_app_produced(upload_app, checkpoints_dir):
    client, store, url = upload_app
    from gradio_client import handle_file

    name = client.predict(handle_file(str(checkpoints_dir / "tiny" / GENERATOR_FILE)), api_name="/upload")
    refused = ["/etc/passwd", str(checkpoints_dir / "tiny" / GENERATOR_FILE), str(ROOT / "app.py"),
               str(ROOT / "explorer" / "ui.py"), str(store.root / name / GENERATOR_FILE), "../../../../etc/passwd",
               "%2e%2e/%2e%2e/etc/passwd"]
    for path in refused:
        try:
            status = urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=SLOW_TIMEOUT).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status in (403, 404), (path, status)
    stream = _raw_call(url, "generate", ["tiny", "0-3", 1.0])
    served = json.loads(stream.split("data: ")[-1])[0]["url"]  # a file the app produced is served
    assert urllib.request.urlopen(served, timeout=SLOW_TIMEOUT).status == 200


@pytest.mark.parametrize("name", ["../../etc", "../tiny", "/etc/passwd", "tiny/../tiny-grey", "upload-../../x"])
def test_path_like_model_names_are_refused(upload_app, name):
    from gradio_client.exceptions import AppError

    client, _, _ = upload_app
    with pytest.raises(AppError, match="unknown"):
        client.predict(name, "0-3", 1.0, api_name="/generate")


def test_oldest_uploads_are_dropped(registry, tmp_path):
    from dcgan.errors import CheckpointError
    from explorer.uploads import UploadStore

    store = UploadStore(registry, tmp_path / "uploads", max_uploads=2)
    names = []
    for i in range(3):
        torch.manual_seed(i)
        path = tmp_path / f"g{i}.safetensors"
        save_file({k: v.contiguous() for k, v in build_generator(PLAIN).state_dict().items()}, str(path))
        names.append(store.add(path, PLAIN))
    assert not registry.is_registered(names[0]) and not (store.root / names[0]).exists()
    assert all(registry.is_registered(n) for n in names[1:]) and registry.names() == ["tiny", "tiny-grey"]
    assert registry.rescan() == ["tiny", "tiny-grey"] and registry.get(names[2]).info.model == PLAIN  # kept across rescans
    with pytest.raises(CheckpointError, match="unknown"):
        registry.entry(names[0])


@pytest.mark.parametrize("cfg", [ModelConfig(image_size=32, channels=1, z_dim=20, ngf=8),
                                 ModelConfig(image_size=16, channels=3, z_dim=8, ngf=4),
                                 ModelConfig(arch="keras", image_size=28, channels=1, z_dim=12, ngf=8)])
def test_the_form_is_read_from_a_plain_state_dict(tmp_path, cfg):
    from explorer.uploads import config_of_file

    save_file(build_generator(cfg).state_dict(), tmp_path / "g.safetensors")
    found, source = config_of_file(tmp_path / "g.safetensors")
    assert source == "tensors" and (found.arch, found.image_size, found.channels, found.z_dim, found.ngf) == \
        (cfg.arch, cfg.image_size, cfg.channels, cfg.z_dim, cfg.ngf)


def test_the_form_is_read_from_metadata_or_left_alone(checkpoints_dir, tmp_path):
    from explorer.uploads import config_of_file

    found, source = config_of_file(checkpoints_dir / "tiny-grey" / GENERATOR_FILE)
    assert source == "metadata" and (found.image_size, found.channels) == (16, 1)
    save_file({"main.0.weight": torch.zeros(3, 3)}, tmp_path / "odd.safetensors")  # no generator's shapes
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    assert config_of_file(tmp_path / "odd.safetensors") == (None, "") and config_of_file(tmp_path / "junk.safetensors") == (None, "")
