"""Real-browser check of the Your image tab: upload a picture, see its crop, project it, get a latent name and its edit."""
from __future__ import annotations

import re

import pytest
from PIL import Image

from .test_browser import UI_TIMEOUT_MS, app_url, browser, new_page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_upload_and_project(app_url, browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    picture = tmp_path / "me.png"
    Image.new("RGB", (90, 60), (220, 120, 40)).save(picture)
    page = new_page(browser)
    page.goto(app_url)
    page.get_by_role("tab", name="Your image").click()
    page.locator("#project-image input[type=file]").set_input_files(str(picture))
    expect(page.locator("#project-crop img")).to_be_visible(timeout=UI_TIMEOUT_MS)  # the crop the model will see
    page.locator("#project-go").click()
    expect(page.locator("#project-reconstruction img")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#project-name textarea, #project-name input").first).to_have_value(
        re.compile(r"^img-[0-9a-f]{12}$"), timeout=UI_TIMEOUT_MS)
    expect(page.locator("#project-quality")).to_contain_text("PSNR", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#project-edited img")).to_be_visible(timeout=UI_TIMEOUT_MS)  # the tab's slider shows it at once
    page.close()
