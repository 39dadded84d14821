"""Real-browser check of the Inside tab: drop a seed's strongest maps and see the image change; show D's top units
and pick one for its guided-backprop map."""
from __future__ import annotations

import pytest

from .conftest import UI_TIMEOUT_MS, free_port, new_page
from .test_inside import inside_dir  # noqa: F401 (checkpoints with a D beside the generator)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def inside_url(inside_dir, tmp_path_factory, gradio_env):  # noqa: F811
    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.ui.app import build_app, launch_options

    demo = build_app(Catalog(CheckpointRegistry([inside_dir])), out=OutputDir(tmp_path_factory.mktemp("browser-inside-out")))
    demo.queue(default_concurrency_limit=2, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, **launch_options())
    yield url
    demo.close()


def test_inside_tab_drops_maps_and_shows_d_units(inside_url, browser):
    from playwright.sync_api import expect

    page = new_page(browser)
    page.goto(inside_url)
    page.get_by_role("tab", name="Inside").click()
    image, maps = page.locator("#inside-image img"), page.locator("#inside-maps img")
    expect(image).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(maps).to_be_visible(timeout=UI_TIMEOUT_MS)
    before = image.get_attribute("src")
    page.get_by_role("button", name="Drop this seed's 8 strongest").click()
    expect(image).not_to_have_attribute("src", before, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("Dropped: layer 0: 8 maps")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#inside-drops textarea")).not_to_have_value("", timeout=UI_TIMEOUT_MS)

    page.get_by_text("D's units (section 6.2) and the probe (section 5)").click()
    expect(page.get_by_text("Test accuracy (%) of a linear classifier")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.locator("#inside-units").click()
    expect(page.locator("#inside-units-grid img")).to_be_visible(timeout=UI_TIMEOUT_MS)
    first = page.locator("#inside-unit label").first
    expect(first).to_be_visible(timeout=UI_TIMEOUT_MS)
    first.click()
    expect(page.locator("#inside-guided img")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.close()
