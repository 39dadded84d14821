"""Real-browser check (Playwright driving Debian's chromium): open the explorer, drag a slider, see the image change."""
from __future__ import annotations

import pytest

from .conftest import UI_TIMEOUT_MS, free_port, new_page, start_drag

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url(checkpoints_dir, tmp_path_factory, gradio_env):
    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.ui.app import build_app, launch_options
    from explorer.ui.fairness import VisitorBudget

    demo = build_app(Catalog(CheckpointRegistry([checkpoints_dir])), out=OutputDir(tmp_path_factory.mktemp("browser-out")),
                     budget=VisitorBudget())  # as in public mode: every UI event goes through the metered wrapper
    demo.queue(default_concurrency_limit=2, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, **launch_options())
    yield url
    demo.close()


def test_explorer_slider_drag_updates_the_image(app_url, browser):
    from playwright.sync_api import expect

    page = new_page(browser)
    page.goto(app_url)
    expect(page.locator("#samples img").first).to_be_visible(timeout=UI_TIMEOUT_MS)  # the Generate tab's grid loaded
    page.get_by_role("tab", name="Latent sliders").click()
    edited = page.locator("#edited img")
    expect(edited).to_be_visible(timeout=UI_TIMEOUT_MS)
    before = edited.get_attribute("src")

    slider = page.locator(".dir-slider input[type=range]").first
    expect(slider).to_be_visible(timeout=UI_TIMEOUT_MS)
    start_drag(page, slider)  # many input events while the button is down
    expect(edited).not_to_have_attribute("src", before, timeout=UI_TIMEOUT_MS)  # updated while the button is still down
    page.mouse.up()
    assert float(slider.input_value()) > 3.0
    expect(page.get_by_text("api_name=\"/edit\"")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.close()


def test_clicking_a_sample_makes_it_the_current_seed(app_url, browser):
    from playwright.sync_api import expect

    page = new_page(browser)
    page.goto(app_url)
    thumbs = page.locator("#samples button.thumbnail-item")
    expect(thumbs.nth(5)).to_be_visible(timeout=UI_TIMEOUT_MS)
    thumbs.nth(5).click()
    expect(page.get_by_label("Current seed")).to_have_value("5", timeout=UI_TIMEOUT_MS)
    page.close()
