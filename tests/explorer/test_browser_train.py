"""The Train tab in a real browser (Playwright driving Debian's chromium): a tiny MNIST run started (with two of the
small-data options, which reach its config), its first grid,
plots drawn as lines on numeric axes, a page reload that finds the run again, Stop shown at once, and the stopped
run in the model picker without "Rescan folders"."""
from __future__ import annotations

import re
import unicodedata

import pytest

from dcgan import rundir
from tests.conftest import SHARED_DATA, SLOW_TIMEOUT, shared_data_or_skip, wait_for

from .conftest import UI_TIMEOUT_MS, new_page, served_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TRAIN_TIMEOUT_MS = int(SLOW_TIMEOUT * 1000)  # a training step, a preview grid or a checkpoint on a slow CPU
PLOTS = {"#train-losses": "loss D, loss G", "#train-d-outputs": "D(x), D(G(z))"}  # plot: its legend


@pytest.fixture(scope="module")
def train_app(checkpoints_dir, tmp_path_factory, gradio_env):
    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.training import TrainingLimits, TrainingManager

    shared_data_or_skip("MNIST")
    runs = tmp_path_factory.mktemp("browser-runs")
    manager = TrainingManager(runs, SHARED_DATA, TrainingLimits(max_minutes=10))  # the test stops its run itself
    out = OutputDir(tmp_path_factory.mktemp("browser-train-out"))
    with served_app(Catalog(CheckpointRegistry([checkpoints_dir, runs])), out, training=manager) as url:
        yield url, manager


@pytest.fixture
def page(train_app, browser):
    page = new_page(browser)
    yield page
    page.close()


def _start_tiny_run(page) -> None:
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-size input").click()
    page.get_by_role("option", name="16", exact=True).click()
    for elem_id, value in (("train-width", "8"), ("train-batch", "32"), ("train-minutes", "10"), ("train-every", "5")):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(value)
        box.press("Tab")
    page.get_by_text("Small data sets").click()  # the closed panel of departures from the paper
    page.locator("#train-augment").get_by_label("translation").check()
    page.locator("#train-d-norm").get_by_label("spectral").check()
    page.locator("#train-start").click()  # a 10 minute budget: the run is still going when the test stops it


def _shown_step(status) -> int:
    return int(re.search(r"step (\d+)", status.inner_text()).group(1))


def _no_symbols(text: str) -> bool:
    """No emoji or other pictographs (Unicode category So), which render as boxes without an emoji font."""
    return not any(unicodedata.category(ch) == "So" for ch in text)


def test_train_watch_reload_stop_and_explore(train_app, page):
    from playwright.sync_api import expect

    url, manager = train_app
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-epochs textarea, #train-epochs input").first, "a blank epochs box").to_have_value("")
    _start_tiny_run(page)
    status = page.locator("#train-status")
    expect(status, "the started run named and running").to_contain_text("mnist-16: running", timeout=UI_TIMEOUT_MS)
    (name,) = manager.running()
    config = rundir.read_config(manager.run_dir(name) / rundir.CONFIG_FILE)
    assert (config.train.augment, config.model.d_norm, config.train.r1_gamma) == ("translation", "spectral", 0.0)
    expect(page.locator("#train-latest img"), "the step-0 grid").to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    assert rundir.list_samples(manager.run_dir(name))[0][0] == 0

    for plot, series in PLOTS.items():  # numbers as numbers: both axes linear, one drawn line per series, a legend naming them
        expect(page.locator(f"{plot} [aria-label^='Symbol legend']"), f"{plot}'s legend").to_have_attribute(
            "aria-label", re.compile(f"2 values: {re.escape(series)}$"), timeout=TRAIN_TIMEOUT_MS)
        block, entry = page.locator(plot).bounding_box(), page.locator(f"{plot} .role-legend-entry text").last.bounding_box()
        assert entry["y"] + entry["height"] <= block["y"] + block["height"], (plot, entry, block)  # the legend is not clipped
        for axis in ("X", "Y"):
            expect(page.locator(f"{plot} [aria-label^='{axis}-axis']"), f"{plot}'s {axis} axis").to_have_attribute(
                "aria-label", re.compile("linear scale"), timeout=TRAIN_TIMEOUT_MS)
        lines = page.locator(f"{plot} path[aria-roledescription='line mark']")
        expect(lines, f"{plot}: two series").to_have_count(2, timeout=TRAIN_TIMEOUT_MS)
        for i in range(2):
            expect(lines.nth(i), f"{plot}: a line through two or more steps").to_have_attribute(
                "d", re.compile(r"^M[-\d.,]+L[-\d.,]+"), timeout=TRAIN_TIMEOUT_MS)
    assert not [m for m in console if "point scale" in m], console
    assert _no_symbols(status.inner_text())

    position = page.get_by_label("number input for Time-lapse: preview number")  # look back at the first grid...
    position.fill("0")
    position.press("Tab")
    shown = _shown_step(status)
    wait_for(lambda: _shown_step(status) > shown + 10, "the status moving on by two more preview grids")
    expect(position, "...and stay there while new grids arrive").to_have_value("0")

    page.reload()  # the Run dropdown is filled again and the run being trained is picked, so the watch resumes
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-run input"), "the run picked after a reload").to_have_value(name, timeout=UI_TIMEOUT_MS)
    expect(status, "its status shown again").to_contain_text(f"{name}: running", timeout=UI_TIMEOUT_MS)
    page.locator("#train-run input").click()
    expect(page.get_by_role("option", name=name), "the run listed in the dropdown").to_be_visible(timeout=UI_TIMEOUT_MS)
    page.keyboard.press("Escape")

    page.locator("#train-stop").click()
    expect(status, "the stop shown before the checkpoint is written").to_contain_text(re.compile("stopping|stopped"), timeout=UI_TIMEOUT_MS)
    expect(status, "the run reported stopped").to_contain_text("stopped", timeout=TRAIN_TIMEOUT_MS)
    assert not manager.running() and _no_symbols(status.inner_text())

    page.get_by_role("tab", name="Generate").click()  # no "Rescan folders": the picker already lists the stopped run
    page.get_by_label("Model").first.click()
    expect(page.get_by_role("option", name=name), "the stopped run in the model picker").to_be_visible(timeout=UI_TIMEOUT_MS)
