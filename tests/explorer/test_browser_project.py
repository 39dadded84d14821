"""Real-browser check of the Your image tab: upload a picture, see its crop, project it, get a latent name, slide it."""
from __future__ import annotations

import re

import pytest
from PIL import Image

from tests.conftest import shared_data_or_skip

from .conftest import UI_TIMEOUT_MS, new_page, start_drag
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
    start_drag(page, slider)  # many input events while the button is down
    expect(edited).not_to_have_attribute("src", before, timeout=UI_TIMEOUT_MS)  # updated while the button is still down
    expect(page.locator("#project-edited .wrap.full")).to_have_count(0)  # no progress overlay ever covers the image being slid
    page.mouse.up()
    assert float(slider.input_value()) > 3.0
    page.close()


def test_a_projected_face_becomes_the_current_seed_and_slides(app_url, browser):  # noqa: F811
    """A real CelebA face (held out from training: 9001) projected, put in the header by "Use as current seed"; the
    Latent sliders tab then edits that latent (its snippet names it) and a drag changes the image. A latent the app
    does not know, typed in the box, is refused and changes nothing. The page's link carries the latent's values, so
    another visitor opening it gets the same latent."""
    from playwright.sync_api import expect

    face = shared_data_or_skip("celeba10k") / "celeba10k" / "img_align_celeba" / "009001.jpg"
    page = new_page(browser)
    page.goto(app_url)
    page.get_by_role("tab", name="Your image").click()
    page.locator("#project-image input[type=file]").set_input_files(str(face))
    expect(page.locator("#project-crop img")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.locator("#project-go").click()
    name_box = page.locator("#project-name textarea, #project-name input").first
    expect(name_box).to_have_value(re.compile(r"^img-[0-9a-f]{12}$"), timeout=UI_TIMEOUT_MS)
    name = name_box.input_value()
    page.locator("#project-use").click()
    seed_box = page.locator("#seed-box textarea, #seed-box input").first
    expect(seed_box).to_have_value(name, timeout=UI_TIMEOUT_MS)

    page.get_by_role("tab", name="Latent sliders").click()
    expect(page.get_by_text(f"# latent {name} of")).to_be_visible(timeout=UI_TIMEOUT_MS)  # the edit is of the latent
    edited = page.locator("#edited img")
    expect(edited).to_be_visible(timeout=UI_TIMEOUT_MS)
    before = edited.get_attribute("src")
    slider = page.locator(".dir-slider input[type=range]").first
    slider.scroll_into_view_if_needed()
    start_drag(page, slider)  # many input events while the button is down
    page.mouse.up()
    expect(edited).not_to_have_attribute("src", before, timeout=UI_TIMEOUT_MS)
    assert float(slider.input_value()) > 3.0

    seed_box.fill("img-0123456789ab")
    seed_box.press("Enter")
    expect(page.get_by_text("latent img-0123456789ab is unknown here").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(seed_box).to_have_value(name, timeout=UI_TIMEOUT_MS)  # the box shows the current seed again
    expect(page.get_by_text(f"# latent {name} of")).to_be_visible()

    link = page.locator("#share-link textarea, #share-link input").first
    expect(link).to_have_value(re.compile(r"[?&]z=[A-Za-z0-9_-]{43}(&|$)"), timeout=UI_TIMEOUT_MS)  # 8 float32 values, not the name
    assert name not in link.input_value()
    other = new_page(browser)  # another visitor: a fresh session that never saw the name
    other.goto(link.input_value())
    expect(other.locator("#seed-box textarea, #seed-box input").first).to_have_value(name, timeout=UI_TIMEOUT_MS)  # same bits, same name
    expect(other.locator("#share-note")).not_to_contain_text("ignored")
    other.close()
    page.close()
