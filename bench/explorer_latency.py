"""Latency of the explorer's API through gradio_client, against a do-nothing Gradio app measured in the same run.

Gradio itself costs time (queue, SSE, file download), so the figures that matter are ours minus that floor.
Both servers run as subprocesses on this machine; the client calls them alternately so background load hits both.

Examples:
  python bench/explorer_latency.py --model celeba-64                  # a model in ./checkpoints
  python bench/explorer_latency.py --model runs/celeba-64 --iterations 100   # a run dir (copied to a temp folder first)
  python bench/explorer_latency.py --model checkpoints/mnist-32 --json bench.json
  python bench/explorer_latency.py --model celeba-64 --ui          # also the Generate tab in Chromium vs /generate, 32 seeds
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGETS_MS = {"edit": 25.0, "generate16": 60.0}  # allowed cost above the floor at p95
GIF_TARGET_S = 1.0
START_TARGET_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_trivial(port: int) -> None:
    """The floor: a Gradio app whose one endpoint returns a 64x64 PNG and does nothing else."""
    import gradio as gr
    from gradio.data_classes import FileData
    from PIL import Image

    out = Path(tempfile.mkdtemp(prefix="trivial-"))
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def noop(seed: int) -> FileData:
        path = out / f"{seed}-{time.monotonic_ns()}.png"
        Image.fromarray(img).save(path, format="PNG", compress_level=1)
        return FileData(path=str(path))

    with gr.Blocks() as demo:
        gr.api(noop, api_name="noop")
    demo.queue(default_concurrency_limit=2, max_size=256)
    demo.launch(server_name="127.0.0.1", server_port=port, quiet=True)


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until ``url`` answers 200 (raises if the process dies or time runs out)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile q in [0, 1]."""
    return float(np.percentile(values, q * 100))


UI_SEEDS = 32           # the Generate tab's grid, timed in a browser against /generate with the same seed count
UI_TARGET_S = 0.5       # allowed cost of the page (events, 32 image fetches, drawing) above the API call, at p50
CHROMIUM = "/usr/bin/chromium"


def ui_generate_times(url: str, iterations: int, warmup: int) -> list[float]:
    """Milliseconds from clicking Generate to all UI_SEEDS tiles of fresh seeds decoded in Chromium (Playwright)."""
    from playwright.sync_api import expect, sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        expect(page.locator("#samples img").first).to_be_visible(timeout=120_000)
        seeds_box = page.get_by_role("textbox", name="Seeds")
        for i in range(warmup + iterations):
            last = 50_000 + UI_SEEDS * i + UI_SEEDS - 1  # seeds never rendered before: nothing comes from the image cache
            seeds_box.fill(f"{last - UI_SEEDS + 1}-{last}")
            t0 = time.perf_counter()
            page.get_by_role("button", name="Generate", exact=True).click()
            page.wait_for_function("""([n, last]) => {
                const imgs = [...document.querySelectorAll('#samples img')];
                return imgs.length === n && imgs.every(img => img.complete && img.naturalWidth > 0)
                    && imgs[n - 1].alt === `seed ${last}`; }""", arg=[UI_SEEDS, last], timeout=120_000, polling="raf")
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
        browser.close()
    return times


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def prepare_checkpoints(model: str) -> tuple[list[str], str, Path | None]:
    """(--checkpoints args, model name, temp dir to delete). A path is copied so the app never writes beside it."""
    path = Path(model)
    if not path.exists():
        return [], model, None
    tmp = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    src_dir = path if path.is_dir() else path.parent
    name = path.name if path.is_dir() else path.stem
    dst = tmp / name
    dst.mkdir()
    src = path / "generator.safetensors" if path.is_dir() else path
    shutil.copy2(src, dst / "generator.safetensors")
    for extra in ("README.md", "config.json", "directions.safetensors"):
        if (src_dir / extra).is_file():
            shutil.copy2(src_dir / extra, dst / extra)
    return ["--checkpoints", str(tmp)], name, tmp


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=False, help="model name in ./checkpoints, or a run dir / generator file (copied to a temp folder)")
    p.add_argument("--iterations", type=int, default=60, help="timed calls per endpoint [default: 60]")
    p.add_argument("--gif-iterations", type=int, default=8, help="timed 64-frame /interpolate calls [default: 8]")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls per endpoint first [default: 5]")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    p.add_argument("--ui", action="store_true", help=f"also time the Generate tab in Chromium ({CHROMIUM}, Playwright) against "
                                                    f"/generate, {UI_SEEDS} seeds each [default: off]")
    p.add_argument("--serve-trivial", type=int, metavar="PORT", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_trivial:
        serve_trivial(args.serve_trivial)
        return 0
    if not args.model:
        p.error("--model is required")

    from gradio_client import Client

    extra, name, tmp = prepare_checkpoints(args.model)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    trivial_port, app_port = free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    trivial = subprocess.Popen([sys.executable, __file__, "--serve-trivial", str(trivial_port)], env=env,
                               stdout=open(logs / "trivial.log", "w"), stderr=subprocess.STDOUT)
    app = None
    results: dict[str, object] = {"model": name, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        wait_http(f"http://127.0.0.1:{trivial_port}/", trivial, 60)
        app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(app_port), *extra], cwd=ROOT, env=env,
                               stdout=open(logs / "app.log", "w"), stderr=subprocess.STDOUT)
        results["app_start_s"] = round(wait_http(f"http://127.0.0.1:{app_port}/", app, 120), 2)
        floor = Client(f"http://127.0.0.1:{trivial_port}/", verbose=False)
        ours = Client(f"http://127.0.0.1:{app_port}/", verbose=False)
        models = [m["name"] for m in ours.predict(api_name="/models")]
        if name not in models:
            raise SystemExit(f"model {name!r} is not served; available: {models}")
        t0 = time.perf_counter()
        names = ours.predict(name, api_name="/directions")
        results["first_directions_s"] = round(time.perf_counter() - t0, 2)
        edit_names = names[:2]
        calls = {
            "floor": lambda i: floor.predict(i, api_name="/noop"),
            "edit": lambda i: ours.predict(name, 1000 + i, {n: 1.5 for n in edit_names}, 1.0, api_name="/edit"),
            "generate16": lambda i: ours.predict(name, f"{16 * i}-{16 * i + 15}", 1.0, api_name="/generate"),
        }
        for key, call in calls.items():
            for i in range(args.warmup):
                call(10_000 + i)
        times: dict[str, list[float]] = {k: [] for k in calls}
        for i in range(args.iterations):
            for key, call in calls.items():
                times[key].append(timed(lambda: call(i)))
        gif_times, gif_floor = [], []
        ours.predict(name, "0,1", 32, "slerp", 12.0, "loop", api_name="/interpolate")  # warm the encoders
        for i in range(args.gif_iterations):
            gif_floor.append(timed(lambda: floor.predict(i, api_name="/noop")))
            gif_times.append(timed(lambda: ours.predict(name, f"{2 * i},{2 * i + 1}", 32, "slerp", 12.0, "loop", api_name="/interpolate")))
        times["floor_gif_run"], times["interpolate64"] = gif_floor, gif_times
        if args.ui:
            api32 = [timed(lambda: ours.predict(name, f"{90_000 + UI_SEEDS * i}-{90_000 + UI_SEEDS * i + UI_SEEDS - 1}", 1.0,
                                                api_name="/generate")) for i in range(args.iterations)]
            times[f"generate{UI_SEEDS}"], times[f"ui_generate{UI_SEEDS}"] = api32, ui_generate_times(
                f"http://127.0.0.1:{app_port}/", args.iterations, args.warmup)
    finally:
        for proc in (app, trivial):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    stats = {k: {"n": len(v), "p50_ms": round(statistics.median(v), 1), "p95_ms": round(percentile(v, 0.95), 1),
                 "mean_ms": round(statistics.fmean(v), 1)} for k, v in times.items()}
    results["latency"] = stats
    f50, f95 = stats["floor"]["p50_ms"], stats["floor"]["p95_ms"]
    checks = []
    for key, budget in TARGETS_MS.items():
        over50, over95 = stats[key]["p50_ms"] - f50, stats[key]["p95_ms"] - f95
        checks.append((f"/{key.replace('16', '')}{' (16 seeds)' if '16' in key else ''} p95 <= floor + {budget:g} ms",
                       f"+{over50:.1f} ms at p50, +{over95:.1f} ms at p95", over95 <= budget))
    gif_s = stats["interpolate64"]["p95_ms"] / 1000
    checks.append((f"64-frame /interpolate (GIF + MP4) <= {GIF_TARGET_S:g} s", f"{gif_s:.2f} s at p95", gif_s <= GIF_TARGET_S))
    if args.ui:
        api_s, ui_s = stats[f"generate{UI_SEEDS}"]["p50_ms"] / 1000, stats[f"ui_generate{UI_SEEDS}"]["p50_ms"] / 1000
        checks.append((f"Generate tab ({UI_SEEDS} seeds) p50 <= /generate p50 + {UI_TARGET_S:g} s", f"{ui_s:.2f} s vs {api_s:.2f} s",
                       ui_s <= api_s + UI_TARGET_S))
    checks.append((f"app start <= {START_TARGET_S:g} s", f"{results['app_start_s']:.2f} s", results["app_start_s"] <= START_TARGET_S))
    results["checks"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in checks]

    print(f"\nmodel {name}; {args.iterations} calls each ({args.gif_iterations} for the GIF); cpus {os.cpu_count()}; "
          f"app start {results['app_start_s']} s; first /directions {results['first_directions_s']} s\n")
    print("| endpoint | n | p50 ms | p95 ms | mean ms |\n|---|---|---|---|---|")
    for key, s in stats.items():
        print(f"| {key} | {s['n']} | {s['p50_ms']} | {s['p95_ms']} | {s['mean_ms']} |")
    print("\n| target | measured | met |\n|---|---|---|")
    for t, m, ok in checks:
        print(f"| {t} | {m} | {'yes' if ok else 'NO'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
