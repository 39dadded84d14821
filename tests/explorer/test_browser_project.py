"""Real-browser check of the Your image tab: upload a picture, see its crop, project it, get a latent name, slide it."""
from __future__ import annotations

import re

import pytest
from PIL import Image

from .conftest import UI_TIMEOUT_MS, new_page
from .test_browser import app_url  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_upload_project_and_slide(app_url, browser, tmp_path):  # noqa: F811
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
    edited = page.locator("#project-edited img")
    expect(edited).to_be_visible(timeout=UI_TIMEOUT_MS)  # the latent itself, at amount 0
    expect(page.locator("#project-direction input")).not_to_have_value("", timeout=UI_TIMEOUT_MS)
    before = edited.get_attribute("src")
    slider = page.locator("#project-amount input[type=range]")
    slider.scroll_into_view_if_needed()  # page.mouse works in viewport coordinates: a slider below the fold is never hit
    expect(edited).to_be_in_viewport(ratio=1)  # the whole image sits beside its slider, in view while it is dragged
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.95, y, steps=12)  # a drag: many input events, the last one wins
    expect(edited).not_to_have_attribute("src", before, timeout=UI_TIMEOUT_MS)  # updated while the button is still down
    expect(page.locator("#project-edited .wrap.full")).to_have_count(0)  # no progress overlay ever covers the image being slid
    page.mouse.up()
    assert float(slider.input_value()) > 3.0
    page.close()
