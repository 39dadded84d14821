"""The layout in a real browser: a phone's width (390x844) keeps tiles readable and every tab reachable; on a desktop
slider number boxes stay in line and image labels are not clipped; the upload form follows the chosen file, and a
new model refreshes what the other tabs show."""
from __future__ import annotations

import pytest
from safetensors.torch import save_file

from dcgan.config import ModelConfig
from dcgan.models import build_generator

from .conftest import UI_TIMEOUT_MS, new_page
from .test_browser import app_url  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PHONE = {"width": 390, "height": 844}
TABS = ("Generate", "Latent sliders", "Vector arithmetic", "Interpolation")
MIN_PHONE_TILE = 64  # px: 3-4 columns at 390 px; 8 columns would be ~30 px with captions cut to "s…"


def test_phone_width_reflows_the_gallery_and_keeps_every_tab_reachable(app_url, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = new_page(browser)
    page.set_viewport_size(PHONE)
    page.goto(app_url)
    tiles = page.locator("#samples button.thumbnail-item")
    expect(tiles.nth(15)).to_be_visible(timeout=UI_TIMEOUT_MS)
    boxes = [tiles.nth(i).bounding_box() for i in range(16)]
    assert min(b["width"] for b in boxes) >= MIN_PHONE_TILE, boxes[0]
    columns = len({round(b["x"]) for b in boxes})
    assert 3 <= columns <= 4, columns
    assert max(b["x"] + b["width"] for b in boxes) <= PHONE["width"]  # nothing sticks out sideways
    cut = page.locator("#samples .caption-label").evaluate_all("els => els.filter(e => e.scrollWidth > e.clientWidth).length")
    assert cut == 0  # "seed 12" whole, not "s…"
    for name in TABS:  # each tab is on screen (wrapped, not behind a menu) and opens its panel
        tab = page.get_by_role("tab", name=name, exact=True)
        expect(tab).to_be_visible(timeout=UI_TIMEOUT_MS)
        box = tab.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
        tab.click()
        expect(tab).to_have_attribute("aria-selected", "true", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Make animation")).to_be_visible(timeout=UI_TIMEOUT_MS)  # the main action, in view
    page.close()


def test_slider_number_boxes_stay_in_line_and_labels_are_whole(app_url, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = new_page(browser)
    page.goto(app_url)
    page.get_by_role("tab", name="Latent sliders").click()
    sliders = page.locator(".dir-slider:visible")
    expect(sliders.first).to_be_visible(timeout=UI_TIMEOUT_MS)
    # the tiny model's labels are short; the longest shipped ones ("Arched_Eyebrows (acc 81%)") must not push the number
    # box below the label either: give every slider such a label (the text a relabel would set) and measure
    sliders.evaluate_all("els => els.forEach(e => e.querySelector('label span').firstChild.textContent = 'Arched_Eyebrows (acc 81%)')")
    offsets = sliders.evaluate_all("""els => els.map(e => {
        const head = e.querySelector('.head').getBoundingClientRect(), box = e.querySelector('.head > div').getBoundingClientRect();
        return [box.top - head.top, head.right - box.right]; })""")
    assert offsets and all(top < 4 and right < 4 for top, right in offsets), offsets  # at the top right of its head, each one
    labels = page.locator("#edited, .pixelated.big").locator("[data-testid=block-label]")
    clipped = labels.evaluate_all("els => els.filter(e => e.offsetParent && e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)")
    assert clipped == []
    page.close()


def test_upload_fills_the_form_and_refreshes_the_other_tabs(app_url, browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    cfg = ModelConfig(image_size=32, channels=1, z_dim=20, ngf=8)
    save_file(build_generator(cfg).state_dict(), tmp_path / "plain.safetensors")  # no metadata: the form must say 32 px, 1 channel
    page = new_page(browser)
    page.goto(app_url)
    expect(page.locator("#samples img").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.get_by_role("tab", name="Vector arithmetic").click()
    for group, seeds in zip("ABC", ("1", "2", "3")):
        page.get_by_label(f"Group {group} seeds").fill(seeds)
    page.get_by_role("button", name="Compute A − B + C").click()
    centre = page.locator("#arithmetic-centre img")
    expect(centre).to_be_visible(timeout=UI_TIMEOUT_MS)
    before = centre.get_attribute("src")

    page.get_by_text("Bring your own generator (.safetensors)").click()
    page.locator("#upload-file input[type=file]").set_input_files(str(tmp_path / "plain.safetensors"))
    expect(page.locator("#upload-note")).to_contain_text("32 px, 1 channel, z_dim 20, ngf 8", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_label("Image size")).to_have_value("32", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_role("radio", name="1", exact=True)).to_be_checked(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_label("z_dim")).to_have_value("20", timeout=UI_TIMEOUT_MS)
    page.locator("#upload-load").click()
    expect(page.locator("#upload-note")).to_contain_text("as model upload-", timeout=UI_TIMEOUT_MS)
    expect(centre).not_to_have_attribute("src", before, timeout=UI_TIMEOUT_MS)  # the arithmetic result is the new model's
    size = centre.evaluate("img => new Promise(r => img.complete ? r(img.naturalWidth) : img.onload = () => r(img.naturalWidth))")
    assert size == 32
    page.close()
