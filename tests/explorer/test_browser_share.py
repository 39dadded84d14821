"""Shared links in a real browser (Playwright driving Debian's chromium): a link restores the model, seed, ψ, tab and
each tab's settings, and the images it shows are the API's for the same arguments; the page writes its state into
the address bar; the grid and latent downloads are the seed contract's files."""
from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan.latent import latent_from_seed, truncate
from tests.conftest import wait_for

from .conftest import UI_TIMEOUT_MS, free_port, new_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "mnist"


@pytest.fixture(scope="module")
def app(checkpoints_dir, tmp_path_factory, gradio_env):
    from gradio_client import Client

    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.ui.app import build_app, launch_options, security_options

    models = tmp_path_factory.mktemp("share-checkpoints")
    shutil.copytree(SHIPPED, models / "mnist")            # the shipped generator with its directions (digit classes)
    shutil.copytree(checkpoints_dir / "tiny", models / "tiny")
    out = OutputDir(tmp_path_factory.mktemp("share-out"))
    demo = build_app(Catalog(CheckpointRegistry([models])), out=out)
    demo.queue(default_concurrency_limit=2, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            **security_options(out), **launch_options())
    try:
        yield url, Client(url, verbose=False)
    finally:
        demo.close()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))  # the models here are grey; the page may send RGB


def shown_pixels(page, selector: str) -> np.ndarray | None:
    """The pixels of the image the page shows in ``selector`` (fetched as the browser fetched it), or None yet (no
    image, or the file was replaced by a newer one while it was being fetched)."""
    from playwright.sync_api import Error

    img = page.locator(f"{selector} img")
    src = img.first.get_attribute("src") if img.count() else None
    if not src:
        return None
    try:
        response = page.request.get(src)
        return pixels(response.body()) if response.ok else None
    except (Error, OSError):  # OSError: PIL's UnidentifiedImageError on a cut-off body
        return None


def shows(page, selector: str, expected: np.ndarray, what: str) -> None:
    wait_for(lambda: (p := shown_pixels(page, selector)) is not None and np.array_equal(p, expected), what)


def link_box(page):
    return page.locator("#share-link textarea, #share-link input").first


def test_a_generate_link_restores_the_state_and_shows_the_apis_images(app, browser, tmp_path):
    from playwright.sync_api import expect

    url, client = app
    page = new_page(browser, accept_downloads=True)
    page.goto(url + "?model=mnist&seed=123&psi=0.8&tab=generate&seeds=3,7,42")
    expect(page.get_by_label("Current seed")).to_have_value("123", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("tab", name="Generate")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("textbox", name=re.compile(r"^Seeds"))).to_have_value("3,7,42")
    expect(page.locator("#model-row input[role=listbox], #model-row input").first).to_have_value("mnist")
    expect(page.locator("#model-row input[type=number]").last).to_have_value("0.8")
    expect(page.locator("#samples button.thumbnail-item")).to_have_count(3, timeout=UI_TIMEOUT_MS)

    api_seed = pixels(Path(client.predict("mnist", 123, {}, 0.8, [], api_name="/edit")).read_bytes())
    shows(page, "#current-seed", api_seed, "the current-seed image equal to /edit's for seed 123, psi 0.8")

    canonical = url + "?model=mnist&seed=123&psi=0.8&seeds=3,7,42"  # tab=generate is the default: left out
    expect(link_box(page)).to_have_value(canonical, timeout=UI_TIMEOUT_MS)
    assert page.evaluate("location.href") == canonical

    grid_path, meta = client.predict("mnist", "3,7,42", 0.8, api_name="/generate")
    grid, (h, w), columns = pixels(Path(grid_path).read_bytes()), meta["tile_size"], meta["columns"]
    expect(page.locator("#download-grid")).to_be_enabled(timeout=UI_TIMEOUT_MS)
    with page.expect_download() as download:
        page.locator("#download-grid").click()
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.namelist() == ["seed-000003.png", "seed-000007.png", "seed-000042.png"]
        for i, seed in enumerate(meta["seeds"]):
            tile = grid[i // columns * h:(i // columns + 1) * h, i % columns * w:(i % columns + 1) * w]
            assert np.array_equal(pixels(archive.read(f"seed-{seed:06d}.png")), tile), seed

    expect(page.locator("#download-latent")).to_be_enabled(timeout=UI_TIMEOUT_MS)
    with page.expect_download() as download:
        page.locator("#download-latent").click()
    z = np.load(download.value.path())
    assert np.array_equal(z, truncate(latent_from_seed(123, 100), 0.8).numpy())
    page.close()


def test_a_sliders_link_restores_the_amounts_and_the_edited_image(app, browser):
    from playwright.sync_api import expect

    url, client = app
    page = new_page(browser)
    page.goto(url + "?model=mnist&seed=5&tab=sliders&amounts=sefa-0:2,digit-3:-1.5&shown=digit-3")
    expect(page.get_by_role("tab", name="Latent sliders")).to_have_attribute("aria-selected", "true", timeout=UI_TIMEOUT_MS)
    edited = pixels(Path(client.predict("mnist", 5, {"sefa-0": 2.0, "digit-3": -1.5}, 1.0, [], api_name="/edit")).read_bytes())
    shows(page, "#edited", edited, "the edited image equal to /edit's for the link's amounts")
    numbers = page.locator(".dir-slider input[type=number]")
    shown = [n.input_value() for n in numbers.all() if n.is_visible()]
    assert shown[0] == "2" and shown[-1] == "-1.5" and set(shown[1:-1]) == {"0"}  # sefa-0 first; digit-3 the one labelled slot
    expect(link_box(page)).to_have_value(url + "?model=mnist&seed=5&tab=sliders&amounts=sefa-0:2,digit-3:-1.5&shown=digit-3",
                                         timeout=UI_TIMEOUT_MS)
    page.close()


def test_a_bad_link_is_ignored_with_a_note_and_the_page_works(app, browser):
    from playwright.sync_api import expect

    url, _ = app
    page = new_page(browser)
    page.goto(url + "?model=nope&seed=abc&psi=7&frames=16&bogus=1")
    note = page.locator("#share-note")
    expect(note).to_contain_text("model 'nope' is not on this server", timeout=UI_TIMEOUT_MS)
    expect(note).to_contain_text("seed: 'abc' must be an integer")
    expect(note).to_contain_text("psi: 7 must be a finite number from 0.0 to 1.0")
    expect(note).to_contain_text("unknown parameter 'bogus'")
    expect(page.get_by_label("Current seed")).to_have_value("0")
    expect(page.locator("#samples button.thumbnail-item")).to_have_count(16, timeout=UI_TIMEOUT_MS)
    page.close()


def test_the_address_bar_follows_the_page_and_reopening_it_restores_it(app, browser):
    from playwright.sync_api import expect

    url, _ = app
    page = new_page(browser)
    page.goto(url)
    model = page.locator("#model-row input").first
    expect(link_box(page)).to_have_value(re.compile(r"\?model=[\w-]+$"), timeout=UI_TIMEOUT_MS)  # the defaults are ShareState's
    fresh = link_box(page).input_value()
    assert fresh == url + f"?model={model.input_value()}"
    page.get_by_label("Current seed").fill("9")
    page.get_by_label("Current seed").press("Enter")
    page.get_by_role("tab", name="Interpolation").click()
    page.get_by_role("textbox", name=re.compile(r"^Keyframe seeds")).fill("4,5,6")
    expected = fresh + "&seed=9&tab=interpolation&keys=4,5,6"
    expect(link_box(page)).to_have_value(expected, timeout=UI_TIMEOUT_MS)
    assert page.evaluate("location.href") == expected

    page.goto(expected)
    expect(page.get_by_label("Current seed")).to_have_value("9", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("tab", name="Interpolation")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("textbox", name=re.compile(r"^Keyframe seeds"))).to_have_value("4,5,6")
    expect(page.locator("#share-note")).to_contain_text("Restored from the link.")
    page.close()
