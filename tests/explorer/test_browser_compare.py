"""The Train tab's "Compare runs" block in a real browser (Playwright driving Debian's chromium): two finished runs
picked, their curves overlaid on numeric axes with one line per run, the quality metric plot, the images-seen axis,
the limit of four picks, and a run still training redrawn as it logs."""
from __future__ import annotations

import json
import re

import pytest

from dcgan import rundir
from explorer.ui.tabs.train_compare import RUN_COLOURS

from .conftest import UI_TIMEOUT_MS, new_page, served_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
RUNS = [f"0000{i}-mnist-32" for i in range(5)]
PLOTS = ("#compare-lossD", "#compare-lossG", "#compare-D_x", "#compare-D_G_z")


def _record(step: int, scale: float) -> dict:
    return {"step": step, "lossD": scale / step, "lossG": scale * step / 100, "D_x": 0.9 - 0.1 * scale, "D_G_z": 0.1 * scale,
            "images_seen": 64 * step}


def _write_run(run_dir, scale: float, steps: range, *, state: str = "finished", fid: bool = False) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [_record(step, scale) for step in steps]
    evals = [{"step": step, "eval": {"n": 100, "metrics": {"fid": 100.0 / step}, "floor": {"fid": 1.0}}} for step in steps[::5]]
    lines += evals if fid else []
    (run_dir / rundir.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run_dir / rundir.STATUS_FILE).write_text(json.dumps({"state": state}))


@pytest.fixture(scope="module")
def compare_app(checkpoints_dir, tmp_path_factory, gradio_env):
    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.training import TrainingManager

    runs = tmp_path_factory.mktemp("compare-runs")
    for i, name in enumerate(RUNS):
        _write_run(runs / name, 1.0 + i, range(10, 210, 10), fid=i == 0)
    manager = TrainingManager(runs, tmp_path_factory.mktemp("no-data"))
    out = OutputDir(tmp_path_factory.mktemp("compare-out"))
    with served_app(Catalog(CheckpointRegistry([checkpoints_dir])), out, training=manager) as url:
        yield url, runs


@pytest.fixture
def page(compare_app, browser):
    page = new_page(browser)
    yield page
    page.close()


def _pick(page, name: str) -> None:
    page.locator("#compare-runs input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")  # leave the box: a click on a focused box does not open its list again


def _expect_lines(page, plot: str, names: list[str]) -> None:
    from playwright.sync_api import expect

    expect(page.locator(f"{plot} [aria-label^='Symbol legend']"), f"{plot}'s legend").to_have_attribute(
        "aria-label", re.compile(f"{len(names)} values?: {re.escape(', '.join(names))}$"), timeout=UI_TIMEOUT_MS)
    lines = page.locator(f"{plot} path[aria-roledescription='line mark']")
    expect(lines, f"{plot}: one line per run").to_have_count(len(names), timeout=UI_TIMEOUT_MS)
    for i in range(len(names)):
        expect(lines.nth(i), f"{plot}: a line through four or more steps").to_have_attribute(
            "d", re.compile(r"^M[-\d.,]+(L[-\d.,]+){3}"), timeout=UI_TIMEOUT_MS)
    strokes = {lines.nth(i).get_attribute("stroke").lower() for i in range(len(names))}
    assert strokes == set(RUN_COLOURS[: len(names)]), f"{plot}: one colour per run, {strokes}"


def test_two_runs_overlaid_then_four_at_most_and_a_live_one_redrawn(compare_app, page):
    from playwright.sync_api import expect

    url, runs = compare_app
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    for name in RUNS[:2]:
        _pick(page, name)
    for plot in PLOTS:
        _expect_lines(page, plot, RUNS[:2])
        expect(page.locator(f"{plot} [aria-label^='X-axis']"), f"{plot}: a numeric step axis").to_have_attribute(
            "aria-label", re.compile("titled 'step' for a linear scale"), timeout=UI_TIMEOUT_MS)
    expect(page.locator("#compare-quality input"), "fid, the one run with evaluations").to_have_value("fid", timeout=UI_TIMEOUT_MS)
    _expect_lines(page, "#compare-quality-plot", RUNS[:1])

    page.locator("#compare-x").get_by_text("images seen").click()
    expect(page.locator("#compare-lossD [aria-label^='X-axis']"), "the images-seen axis").to_have_attribute(
        "aria-label", re.compile("titled 'images seen' for a linear scale .* to 13,000$"), timeout=UI_TIMEOUT_MS)
    _expect_lines(page, "#compare-lossD", RUNS[:2])

    for name in RUNS[2:4]:
        _pick(page, name)
    _expect_lines(page, "#compare-lossG", RUNS[:4])
    _pick(page, RUNS[4])  # a fifth pick is not taken: four lines are as many as can be told apart
    expect(page.locator("#compare-runs .token"), "still four picks").to_have_count(4)
    _expect_lines(page, "#compare-lossG", RUNS[:4])

    _write_run(runs / RUNS[0], 1.0, range(10, 210, 10), state="running", fid=True)  # a run training again...
    page.locator("#compare-x").get_by_text("step", exact=True).click()
    axis = page.locator("#compare-lossD [aria-label^='X-axis']")
    expect(axis, "back to steps, 10 to 200").to_have_attribute("aria-label", re.compile("titled 'step' .* to 200$"), timeout=UI_TIMEOUT_MS)
    _write_run(runs / RUNS[0], 1.0, range(10, 610, 10), state="running", fid=True)  # ...logs on: the timer redraws it
    expect(axis, "the running run redrawn as it logs").to_have_attribute("aria-label", re.compile("to 600$"), timeout=UI_TIMEOUT_MS)
    _expect_lines(page, "#compare-lossD", RUNS[:4])
