"""Explorer fixtures: a checkpoints folder with tiny generators, a registry over it, the app behind a client, and a real
browser (Playwright driving Debian's chromium; never a downloaded one) for the browser tests."""
from __future__ import annotations

import contextlib
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.checkpoints import GENERATOR_FILE, save_generator
from dcgan.config import ModelConfig
from dcgan.models import build_generator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
UI_TIMEOUT_MS = 300_000  # what a click may take to show on a slow, busy CPU; the waits end as soon as it shows


def new_page(browser, **options):
    """A page whose actions and navigation wait as long as the retrying assertions do (Playwright's default is 30 s)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, **options)
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.set_default_navigation_timeout(UI_TIMEOUT_MS)
    return page


def start_drag(page, slider) -> None:
    """Press the mouse on the middle of a range input and drag it to 95% in many steps (many input events, the last
    one wins), the button still down: the caller checks what updates during the drag, then calls page.mouse.up()."""
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.95, y, steps=12)


@pytest.fixture(scope="module")
def browser():
    """One chromium per test module (each new_page is a fresh context); skipped where chromium or Playwright is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def api_client(catalog, tmp_path_factory, name: str, *, max_size: int = 16):
    """build_app(catalog).launch(prevent_thread_lock=True) on a free port; yields a gradio_client.Client that downloads
    into a temp folder of its own, then closes both."""
    from gradio_client import Client

    from explorer.outputs import OutputDir
    from explorer.ui.app import build_app, launch_options

    demo = build_app(catalog, out=OutputDir(tmp_path_factory.mktemp(f"{name}-out")), concurrency_limit=2)
    demo.queue(default_concurrency_limit=2, max_size=max_size)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, **launch_options())
    client = Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp(f"{name}-downloads")))
    try:
        yield client
    finally:
        client.close()
        demo.close()


@contextlib.contextmanager
def served_app(catalog, out, *, training=None):
    """build_app(catalog) launched on a free port with the app's own security options (as app.py serves it); yields
    its URL, then closes the training manager (if any) and the app."""
    from explorer.ui.app import build_app, launch_options, security_options

    demo = build_app(catalog, out=out, training=training)
    demo.queue(default_concurrency_limit=2, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            **security_options(out), **launch_options())
    try:
        yield url
    finally:
        if training is not None:
            training.close()
        demo.close()


def read_png(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


class StubClassifier:
    """Stand-in for dcgan.classifiers: two "attributes" read off the image's colour balance, so both sides occur."""
    kind = "attributes"
    label_names = ["Smiling", "Male"]

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        red_minus_blue = x[:, 0].mean((1, 2)) - x[:, -1].mean((1, 2))
        top_minus_bottom = x[..., : x.shape[-2] // 2, :].mean((1, 2, 3)) - x[..., x.shape[-2] // 2:, :].mean((1, 2, 3))
        return torch.stack([torch.sigmoid(200 * red_minus_blue), torch.sigmoid(200 * top_minus_bottom)], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


@pytest.fixture(scope="session")
def gradio_env(tmp_path_factory):
    """The root conftest's per-test GRADIO_TEMP_DIR / DCGAN_CACHE, set for the whole session: apps launched by
    module-scoped fixtures must cache files where their later requests look for them."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(base / "gradio-tmp"))
        mp.setenv("DCGAN_CACHE", str(base / "dcgan-cache"))
        yield


@pytest.fixture(scope="session")
def checkpoints_dir(tiny_ckpt, tmp_path_factory) -> Path:
    """checkpoints/tiny (the trained 16 px fixture, with its config.json and a model card) and checkpoints/tiny-grey
    (an untrained one-channel generator). Copies, so directions files written by the app never touch the fixture."""
    root = tmp_path_factory.mktemp("checkpoints")
    (root / "tiny").mkdir()
    shutil.copy2(tiny_ckpt / GENERATOR_FILE, root / "tiny" / GENERATOR_FILE)
    shutil.copy2(tiny_ckpt / "config.json", root / "tiny" / "config.json")
    (root / "tiny" / "README.md").write_text("# tiny\n\nA 16 px test generator trained for two steps on fake data.\n")
    grey = ModelConfig(arch="dcgan", image_size=16, channels=1, z_dim=8, ngf=8, ndf=8)
    torch.manual_seed(0)
    (root / "tiny-grey").mkdir()
    save_generator(build_generator(grey).eval(), root / "tiny-grey" / GENERATOR_FILE, model=grey, info={"dataset": "fake", "step": 0})
    return root


@pytest.fixture
def registry(checkpoints_dir):
    from explorer.registry import CheckpointRegistry

    return CheckpointRegistry([checkpoints_dir])


@pytest.fixture
def catalog(registry):
    from explorer.derived import Catalog

    return Catalog(registry)


@pytest.fixture
def out(tmp_path):
    from explorer.outputs import OutputDir

    return OutputDir(tmp_path / "out")
