"""Every public endpoint through gradio_client against the app on a free port; bad input; bursts; `python app.py`."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from dcgan import cli
from explorer import service
from tests.conftest import SLOW_TIMEOUT, wait_for

from .conftest import api_client, free_port, read_png

ENDPOINTS = {"/models", "/directions", "/generate", "/edit", "/arithmetic", "/arithmetic_preset", "/concept", "/interpolate", "/nearest"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app_catalog(checkpoints_dir):
    from explorer.derived import Catalog
    from explorer.registry import CheckpointRegistry

    return Catalog(CheckpointRegistry([checkpoints_dir]))


@pytest.fixture(scope="module")
def connect(app_catalog, tmp_path_factory, gradio_env):
    """The app on a free port and a gradio_client.Client of it."""
    with api_client(app_catalog, tmp_path_factory, "api", max_size=64) as client:
        yield client


def test_named_endpoints_are_the_public_api(connect):
    named = set(connect.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert ENDPOINTS <= named
    ui_handlers = {"/run", "/setup", "/render", "/poll", "/pick", "/add", "/remove", "/show_current", "/show_candidates",
                   "/show_group", "/find_nearest", "/run_preset", "/save_concept", "/apply_concept", "/rescan", "/lambda"}
    assert not named & ui_handlers  # UI events are private: they return display values, not the API's native files


def test_models(connect):
    rows = connect.predict(api_name="/models")
    assert [r["name"] for r in rows] == ["tiny", "tiny-grey"]
    assert rows[0]["image_size"] == 16 and rows[0]["z_dim"] == 8 and rows[1]["channels"] == 1


def test_directions(connect, app_catalog):
    names = connect.predict("tiny", api_name="/directions")
    assert names == service.directions(app_catalog, "tiny") and "sefa-0" in names and "pca-0" in names


def test_generate_native_tiles(connect, app_catalog):
    path, meta = connect.predict("tiny", "3,7,42", 1.0, api_name="/generate")
    assert meta == {"seeds": [3, 7, 42], "columns": 2, "rows": 2, "tile_size": [16, 16]}
    grid = read_png(path)
    assert grid.shape == (32, 32, 3)
    np.testing.assert_array_equal(grid[:16, 16:], service.generate(app_catalog, "tiny", "7").images[0])
    _, meta = connect.predict("tiny", "random", api_name="/generate")
    assert len(meta["seeds"]) == service.RANDOM_COUNT


def test_same_seed_same_image_api_and_cli(connect, checkpoints_dir, tmp_path):
    out = tmp_path / "s.npy"
    assert cli.main(["sample", str(checkpoints_dir / "tiny"), "--seeds", "42", "--out", str(out)]) == 0
    img = read_png(connect.predict("tiny", 42, {}, 1.0, api_name="/edit"))
    assert img.shape == (16, 16, 3)
    np.testing.assert_array_equal(img, np.load(out)[0])
    path, _ = connect.predict("tiny", "40-43", 1.0, api_name="/generate")
    np.testing.assert_array_equal(read_png(path)[16:, :16], np.load(out)[0])  # seed 42 is tile 2: row 1, column 0


def test_edit(connect, app_catalog):
    img = read_png(connect.predict("tiny", 5, {"sefa-0": 2.0, "pca-1": -1.0}, 0.9, ["sefa-2"], api_name="/edit"))
    np.testing.assert_array_equal(img, service.edit(app_catalog, "tiny", 5, {"sefa-0": 2.0, "pca-1": -1.0}, 0.9, ["sefa-2"]))
    grey = read_png(connect.predict("tiny-grey", 5, {"sefa-0": 1.0}, api_name="/edit"))
    assert grey.shape == (16, 16)


def test_arithmetic(connect, app_catalog):
    centre, grid, pixel = connect.predict("tiny", "1,2", "3", "4,5,6", 0.25, 7, api_name="/arithmetic")
    expected = service.arithmetic(app_catalog, "tiny", "1,2", "3", "4,5,6", 0.25, 7)
    np.testing.assert_array_equal(read_png(centre), expected.centre)
    np.testing.assert_array_equal(read_png(grid), expected.grid)
    np.testing.assert_array_equal(read_png(pixel), expected.pixel)
    assert read_png(grid).shape == (52, 52, 3)


def test_concept(connect, app_catalog):
    img = read_png(connect.predict("tiny", 9, "1,2", "3", 2.0, api_name="/concept"))
    np.testing.assert_array_equal(img, service.concept(app_catalog, "tiny", 9, "1,2", "3", 2.0))


def test_interpolate_gif_and_mp4(connect):
    gif, mp4 = connect.predict("tiny", "0,1", 32, "slerp", 12.0, "loop", api_name="/interpolate")
    with Image.open(gif) as img:
        assert (img.n_frames, img.info["loop"], img.size) == (64, 0, (16, 16))
    assert imageio_ffmpeg.count_frames_and_secs(mp4)[0] == 64
    gif, _ = connect.predict("tiny", "0,1,2", 4, "linear", 8.0, "pingpong", api_name="/interpolate")
    with Image.open(gif) as img:
        assert img.n_frames == 2 * 9 - 2


def test_nearest(connect):
    row, hits = connect.predict("tiny", 3, 1.0, 4, api_name="/nearest")
    assert read_png(row).shape == (16, 5 * 18 - 2, 3) and len(hits) == 4
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)


def test_preset_without_classifier_is_a_clear_error(connect):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no attribute classifier"):
        connect.predict("tiny", "smiling woman - neutral woman + neutral man", 3, api_name="/arithmetic_preset")


@pytest.mark.parametrize("args, api_name, match", [
    (("celeba-64", "0-3", 1.0), "/generate", "unknown; available models"),
    (("../tiny", "0-3", 1.0), "/generate", "unknown"),
    (("tiny", "0-x", 1.0), "/generate", "cannot read"),
    (("tiny", "0-64", 1.0), "/generate", "more than 64"),
    (("tiny", "0-3", 2.0), "/generate", "truncation"),
    (("tiny", 1, {"nope": 1.0}), "/edit", "unknown direction"),
    (("tiny", 1, {"sefa-0": 99.0}), "/edit", "from -10"),
    (("tiny", 1, {"sefa-0": "nan"}), "/edit", "finite"),
    (("tiny", 1, "sefa-0=1"), "/edit", "mapping"),
    (("tiny", -5, {}), "/edit", "seed"),
    (("tiny", "1", "2", "0-8"), "/arithmetic", "group C"),
    (("tiny", "1", "2", "3", "0.25"), "/arithmetic", "noise"),
    (("tiny", "0,1", 500), "/interpolate", "frames"),
    (("tiny", "0-9", 60), "/interpolate", "at most 512"),
    (("tiny", "0,1", 8, "cubic"), "/interpolate", "method"),
    (("tiny", "0,1", 8, "slerp", 0), "/interpolate", "fps"),
    (("tiny", 3, 1.0, 100), "/nearest", "k"),
])
def test_bad_input_is_a_clear_error_and_the_app_stays_up(connect, args, api_name, match):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=match):
        connect.predict(*args, api_name=api_name)
    assert connect.predict(api_name="/models")[0]["name"] == "tiny"


@pytest.mark.parametrize("body, match", [
    ('["tiny", 1, {"sefa-0": NaN}, 1.0, null]', "finite"), ('["tiny", 1, {"sefa-0": -Infinity}, 1.0, null]', "finite"),
    ('["tiny", 1, {}, NaN, null]', "truncation"), ('["tiny", 1e400, {}, 1.0, null]', "seed"),
])
def test_non_finite_numbers_over_raw_http(connect, body, match):
    """gradio_client refuses to send NaN/Infinity, but a raw JSON request can; the endpoint still answers an error."""
    import json

    base = connect.src.rstrip("/")
    request = urllib.request.Request(f"{base}/gradio_api/call/edit", data=('{"data": %s}' % body).encode(),
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=SLOW_TIMEOUT).read())["event_id"]
    stream = urllib.request.urlopen(f"{base}/gradio_api/call/edit/{event_id}", timeout=SLOW_TIMEOUT).read().decode()
    assert "event: error" in stream and match in stream
    assert connect.predict(api_name="/models")[0]["name"] == "tiny"


def test_a_burst_waits_instead_of_failing(connect, tmp_path):
    """12 visitors at once, each with a client (a session) of its own, 2 requests each, on a queue that runs 2 at a time.

    One gradio_client.Client shared by threads is not used: its sse_v3 reader can close between one thread's
    submission and its first message, and that thread then reports CancelledError though the server answered.
    """
    from gradio_client import Client

    def visitor(i):
        client = Client(connect.src, verbose=False, download_files=str(tmp_path / f"visitor-{i}"))
        try:
            return [read_png(client.predict("tiny", 100 + 2 * i + k, {"sefa-0": 1.0}, api_name="/edit")).shape for k in range(2)]
        finally:
            client.close()

    with ThreadPoolExecutor(12) as pool:
        shapes = [shape for pair in pool.map(visitor, range(12)) for shape in pair]
    assert shapes == [(16, 16, 3)] * 24


@pytest.mark.slow
def test_python_app_py_serves_the_checkpoints_folder(checkpoints_dir, tmp_path):
    """`python app.py --checkpoints DIR`, with the port from GRADIO_SERVER_PORT, answers and serves the models."""
    from gradio_client import Client

    port = free_port()
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoints", str(checkpoints_dir),
                             "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    def answers() -> bool:
        assert proc.poll() is None, proc.stdout.read()
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).status == 200
        except OSError:
            return False

    try:
        wait_for(answers, f"`python app.py` answering on port {port}")
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path))
        shipped = {p.name for p in (ROOT / "checkpoints").glob("*") if (p / "generator.safetensors").is_file()}
        assert {m["name"] for m in client.predict(api_name="/models")} == shipped | {"tiny", "tiny-grey"}
        client.close()
    finally:
        proc.terminate()
        proc.wait(SLOW_TIMEOUT)
    assert proc.returncode == 0  # SIGTERM (how a Space stops) is a clean exit...
    assert not list((tmp_path / "tmp").glob("dcgan-*"))  # ...that removes the app's output and upload folders


def test_app_options():
    sys.path.insert(0, str(ROOT))
    try:
        import app
    finally:
        sys.path.remove(str(ROOT))
    args = app.build_parser().parse_args(["--checkpoints", "a", "--checkpoints", "b", "--port", "9000"])
    assert args.checkpoints == ["a", "b"] and args.port == 9000 and args.host is None
    assert app.server_address(args, {}) == ("127.0.0.1", 9000)
    assert app.server_address(app.build_parser().parse_args([]), {"GRADIO_SERVER_PORT": "8123"}) == ("127.0.0.1", 8123)
    assert app.server_address(app.build_parser().parse_args([]), {"SPACE_ID": "me/space"}) == ("0.0.0.0", 7860)
    assert app.server_address(app.build_parser().parse_args(["--host", "10.0.0.2"]), {"SPACE_ID": "x"})[0] == "10.0.0.2"
