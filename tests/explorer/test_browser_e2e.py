"""A user's path through every tab in a real browser (Playwright driving Debian's chromium): generate a grid, pick a
sample, move sliders, run an arithmetic preset, make and download a GIF, upload a generator, train a tiny MNIST run
and watch its preview update. One page, in order, as a person would click."""
from __future__ import annotations

import re
import shutil

import pytest

from dcgan.checkpoints import GENERATOR_FILE
from tests.conftest import SHARED_DATA, SLOW_TIMEOUT, shared_data_or_skip

from .conftest import UI_TIMEOUT_MS, StubClassifier, new_page, served_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TRAIN_TIMEOUT_MS = int(SLOW_TIMEOUT * 1000)  # a training step, a preview grid or a checkpoint on a slow CPU


@pytest.fixture(scope="module")
def app(checkpoints_dir, tmp_path_factory, gradio_env):
    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.training import TrainingLimits, TrainingManager

    runs = tmp_path_factory.mktemp("e2e-runs")
    models = tmp_path_factory.mktemp("e2e-checkpoints") / "checkpoints"
    shutil.copytree(checkpoints_dir, models)  # the stub classifier's directions files stay out of the shared fixture
    catalog = Catalog(CheckpointRegistry([models, runs]))
    catalog.classifier = lambda state: StubClassifier()  # "Smiling"/"Male" attributes, so the first preset works
    manager = TrainingManager(runs, SHARED_DATA, TrainingLimits(max_minutes=10))  # test 6 stops its run itself
    out = OutputDir(tmp_path_factory.mktemp("e2e-out"))
    with served_app(catalog, out, training=manager) as url:
        yield url, manager


@pytest.fixture(scope="module")
def page(app, browser):
    url, _ = app
    page = new_page(browser, accept_downloads=True)
    page.goto(url)
    yield page
    page.close()


def test_1_generate_a_grid_and_pick_a_sample(page):
    from playwright.sync_api import expect

    expect(page.locator("#samples img").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.get_by_role("textbox", name=re.compile(r"^Seeds")).fill("10-17")
    page.get_by_role("button", name="Generate", exact=True).click()
    thumbs = page.locator("#samples button.thumbnail-item")
    expect(thumbs).to_have_count(8, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("seed 17")).to_be_attached(timeout=UI_TIMEOUT_MS)
    thumbs.nth(3).click()
    expect(page.get_by_label("Current seed")).to_have_value("13", timeout=UI_TIMEOUT_MS)


def test_2_move_sliders(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Latent sliders").click()
    edited = page.locator("#edited img")
    expect(edited).to_be_visible(timeout=UI_TIMEOUT_MS)
    sliders = page.locator(".dir-slider input[type=range]")
    expect(sliders.first).to_be_visible(timeout=UI_TIMEOUT_MS)
    for i, fraction in ((0, 0.9), (1, 0.15)):
        before = edited.get_attribute("src")
        box = sliders.nth(i).bounding_box()
        page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        expect(edited).not_to_have_attribute("src", before, timeout=UI_TIMEOUT_MS)
    assert float(sliders.nth(0).input_value()) > 3.0 and float(sliders.nth(1).input_value()) < -3.0
    expect(page.get_by_text("api_name=\"/edit\"")).to_be_visible(timeout=UI_TIMEOUT_MS)


def test_3_arithmetic_preset(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Vector arithmetic").click()
    expect(page.locator("#candidates img").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.get_by_role("button", name="Pick exemplars").click()
    expect(page.get_by_label("Group A seeds")).not_to_have_value("", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_label("Group C seeds")).not_to_have_value("", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#arithmetic-centre img")).to_be_visible(timeout=UI_TIMEOUT_MS)


def test_4_make_and_download_a_gif(page, tmp_path):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Interpolation").click()
    page.get_by_label("Keyframe seeds").fill("13,14")
    page.get_by_role("button", name="Make animation").click()
    expect(page.locator("#gif img")).to_be_visible(timeout=UI_TIMEOUT_MS)
    link = page.get_by_role("row", name=re.compile(r"\.gif ")).get_by_role("link").first  # the Downloads list
    expect(link).to_be_visible(timeout=UI_TIMEOUT_MS)
    with page.expect_download(timeout=UI_TIMEOUT_MS) as download:
        link.click()
    path = tmp_path / "walk.gif"
    download.value.save_as(path)
    assert path.read_bytes()[:6] == b"GIF89a"


def test_5_bring_your_own_generator(page, checkpoints_dir):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Generate").click()
    page.get_by_text("Bring your own generator (.safetensors)").click()
    page.locator("#upload-file input[type=file]").set_input_files(str(checkpoints_dir / "tiny-grey" / GENERATOR_FILE))
    page.locator("#upload-load").click()
    expect(page.locator("#upload-note")).to_contain_text("as model upload-", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_label("Model").first).to_have_value(re.compile(r"^upload-[0-9a-f]{12}$"), timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text(re.compile(r"^upload-[0-9a-f]{12}-grid")).first).to_be_visible(timeout=UI_TIMEOUT_MS)  # its grid
    page.get_by_role("textbox", name=re.compile(r"^Seeds")).fill("0-2")
    page.get_by_role("button", name="Generate", exact=True).click()  # the picker's new value is valid in this session
    expect(page.locator("#samples button.thumbnail-item")).to_have_count(3, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("not in the list of choices")).to_have_count(0, timeout=UI_TIMEOUT_MS)


def test_6_train_and_watch_the_preview_update(page, app):
    from playwright.sync_api import expect

    shared_data_or_skip("MNIST")
    _, manager = app
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-size input").click()
    page.get_by_role("option", name="16", exact=True).click()
    for elem_id, value in (("train-width", "8"), ("train-batch", "32"), ("train-minutes", "10"), ("train-every", "5")):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(value)
        box.press("Tab")
    page.locator("#train-start").click()  # a 10 minute budget: the run is still going when the test stops it
    expect(page.locator("#train-status"), "the Train tab naming the started run").to_contain_text("mnist-16", timeout=UI_TIMEOUT_MS)
    latest = page.locator("#train-latest img")
    expect(latest, "a first preview grid").to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    first = latest.get_attribute("src")
    expect(latest, "a later preview replacing the first").not_to_have_attribute("src", first, timeout=TRAIN_TIMEOUT_MS)
    page.locator("#train-stop").click()
    expect(page.locator("#train-status"), "the run reported stopped").to_contain_text("stopped", timeout=TRAIN_TIMEOUT_MS)
    assert not manager.running()
