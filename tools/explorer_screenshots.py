"""Screenshots of each explorer tab for docs/img/, taken with Playwright driving Debian's chromium.

Examples:
  python tools/explorer_screenshots.py --checkpoints checkpoints --model celeba-64
  python tools/explorer_screenshots.py --checkpoints /tmp/copy-of-runs --model mnist-32 --out /tmp/shots
  python tools/explorer_screenshots.py --checkpoints checkpoints --model celeba-64 --only train --train-data ../shared/data
  python tools/explorer_screenshots.py --checkpoints checkpoints --model celeba-64 --only phone   # 390x844, as on a phone
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ("generate", "sliders", "arithmetic", "interpolation", "phone", "train")
PHONE = {"width": 390, "height": 844}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", metavar="DIR", action="append", required=True, help="folders to scan (repeatable)")
    p.add_argument("--model", required=True, help="model to show")
    p.add_argument("--data-root", metavar="DIR", action="append", default=[], help="training data, for the nearest-image check")
    p.add_argument("--out", metavar="DIR", default=str(ROOT / "docs" / "img"), help="where the PNGs go [default: docs/img]")
    p.add_argument("--preset", default=None, help="arithmetic preset to show (face models) instead of clicked exemplars")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="browser executable [default: /usr/bin/chromium]")
    p.add_argument("--train-data", metavar="DIR", default=None,
                   help="data root with MNIST for the Train tab shot (a short run in a temp folder) [default: no Train shot]")
    p.add_argument("--only", nargs="+", choices=SHOTS, default=None, metavar="TAB",
                   help=f"retake only these: {', '.join(SHOTS)} [default: all; train needs --train-data]")
    args = p.parse_args(argv)
    shots = args.only or [s for s in SHOTS if s != "train" or args.train_data]
    if "train" in shots and not args.train_data:
        p.error("the train shot needs --train-data DIR")
    sys.path.insert(0, str(ROOT))

    from playwright.sync_api import expect, sync_playwright

    from explorer.derived import Catalog
    from explorer.registry import CheckpointRegistry
    from explorer.ui.app import build_app, launch_options

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(CheckpointRegistry(args.checkpoints), data_roots=args.data_root)
    catalog.directions(args.model, wait=True)  # so the sliders are all there when the page opens
    training = None
    if "train" in shots:
        from explorer.training import TrainingLimits, TrainingManager

        training = TrainingManager(Path(tempfile.mkdtemp(prefix="screenshot-runs-")), Path(args.train_data), TrainingLimits(max_minutes=5))
    demo = build_app(catalog, training=training)
    demo.queue(default_concurrency_limit=2, max_size=64)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_label("Model").first.click()
            page.get_by_role("option", name=args.model, exact=True).click()
            expect(page.locator("#samples img").first).to_be_visible(timeout=60_000)
            page.locator("#samples button.thumbnail-item").nth(5).click()
            time.sleep(3)
            if "generate" in shots:
                page.screenshot(path=out / "explorer-generate.png", full_page=True)
            if "sliders" in shots:
                sliders_shot(page, out)
            if "arithmetic" in shots:
                arithmetic_shot(page, out, args.preset)
            if "interpolation" in shots:
                interpolation_shot(page, out)
            if "phone" in shots:
                phone_shot(browser, url, args.model, out)
            if "train" in shots:
                train_shot(page, out)
            browser.close()
    finally:
        demo.close()
        if training is not None:
            training.close()
    for name in shots:  # 256-colour PNGs: a third of the size, same look
        path = out / f"explorer-{name}.png"
        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    print(f"{out}: " + ", ".join(f"explorer-{name}.png" for name in shots))
    return 0


def sliders_shot(page, out: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Latent sliders").click()
    expect(page.locator("#edited img")).to_be_visible(timeout=60_000)
    smiling = page.get_by_label("range slider for Smiling", exact=False)
    second = smiling.first if smiling.count() else page.locator(".dir-slider input[type=range]").nth(1)
    for slider, fraction in ((page.locator(".dir-slider input[type=range]").first, 0.7), (second, 0.85)):
        slider.scroll_into_view_if_needed()
        box = slider.bounding_box()
        page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
    time.sleep(4)
    page.mouse.wheel(0, -5000)
    page.screenshot(path=out / "explorer-sliders.png", full_page=True)


def arithmetic_shot(page, out: Path, preset: str | None) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Vector arithmetic").click()
    expect(page.locator("#candidates img").first).to_be_visible(timeout=60_000)
    if preset:
        page.get_by_label("Preset (exemplars picked by the attribute classifier)").click()
        page.get_by_role("option", name=preset, exact=True).click()
        page.get_by_role("button", name="Pick exemplars").click()
        expect(page.locator("#arithmetic-centre img")).to_be_visible(timeout=300_000)
        time.sleep(3)
    else:
        thumbs = page.locator("#candidates button.thumbnail-item")
        for group, picks in (("A", (0, 1, 2)), ("B", (3, 4, 5)), ("C", (6, 7, 8))):
            page.get_by_label(group, exact=True).check()
            for i in picks:
                thumbs.nth(i).click()
                time.sleep(0.5)
        page.get_by_role("button", name="Compute A − B + C").click()
        time.sleep(6)
    page.screenshot(path=out / "explorer-arithmetic.png", full_page=True)


def interpolation_shot(page, out: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Interpolation").click()
    page.get_by_role("button", name="Paper: walk through").click()
    time.sleep(1)
    page.get_by_role("button", name="Make animation").click()
    expect(page.locator("#gif img")).to_be_visible(timeout=120_000)
    time.sleep(4)
    page.screenshot(path=out / "explorer-interpolation.png", full_page=True)


def phone_shot(browser, url: str, model: str, out: Path) -> None:
    """The Generate tab at a phone's width (390x844): the wrapped tabs and the grid reflowed to 3 columns."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport=PHONE, device_scale_factor=2)
    page.goto(url)
    page.get_by_label("Model").first.click()
    page.get_by_role("option", name=model, exact=True).click()
    expect(page.locator("#samples img").nth(8)).to_be_visible(timeout=60_000)
    time.sleep(3)
    page.get_by_role("tab", name="Generate").scroll_into_view_if_needed()
    page.mouse.wheel(0, 330)
    time.sleep(1)
    page.screenshot(path=out / "explorer-phone.png")
    page.close()


def train_shot(page, out: Path, *, seconds: float = 90.0) -> None:
    """A short MNIST 32 px run started from the tab, shown after ``seconds`` of training (grid, losses), then stopped."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Train").click()
    page.locator("#train-size input").click()
    page.get_by_role("option", name="32", exact=True).click()
    for elem_id, value in (("train-width", "32"), ("train-batch", "64"), ("train-minutes", "3"), ("train-every", "20")):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(value)
        box.press("Tab")
    page.locator("#train-start").click()
    expect(page.locator("#train-latest img")).to_be_visible(timeout=180_000)
    time.sleep(seconds)
    page.mouse.wheel(0, -5000)
    page.screenshot(path=out / "explorer-train.png", full_page=True)
    page.locator("#train-stop").click()
    expect(page.locator("#train-status")).to_contain_text("stopped", timeout=120_000)


if __name__ == "__main__":
    sys.exit(main())
