"""Load test: N concurrent gradio_client users against one `python app.py`, for a bounded time.

Each user loops over /generate (16 new seeds), /edit (a new seed, two directions), /arithmetic (1-3 exemplars per
group) and /interpolate (2 keyframes, 8 frames, GIF + MP4) in its own random order, downloading every result as a
browser would. Reported: failed requests (the goal is 0), p50/p95/p99 latency per endpoint and overall, throughput,
and the server's resident memory (VmRSS from /proc) after warm-up, during and at the end: it must stay bounded,
not grow with the request count. Not a unit test: run it by hand on an otherwise idle machine when you can.

Examples:
  python bench/load_test.py                                   # 32 users, 60 s, a model from ./checkpoints
  python bench/load_test.py --checkpoints /tmp/ckpts --model mnist-32 --seconds 120 --json load.json
  python bench/load_test.py --users 8 --seconds 20            # a quick look
"""

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = ("generate", "edit", "arithmetic", "interpolate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB, from /proc (no psutil needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile q in [0, 1]."""
    return float(np.percentile(values, q * 100))


def default_checkpoints(tmp: Path) -> Path:
    """./checkpoints when it holds a generator, else a copy of runs/mnist-32's generator (runs/ is never written)."""
    shipped = ROOT / "checkpoints"
    if any(shipped.glob("*/generator.safetensors")):
        return shipped
    source = ROOT / "runs" / "mnist-32" / "generator.safetensors"
    if not source.is_file():
        raise SystemExit("no generator found: pass --checkpoints DIR --model NAME")
    (tmp / "mnist-32").mkdir(parents=True)
    shutil.copy2(source, tmp / "mnist-32" / "generator.safetensors")
    return tmp


def start_server(checkpoints: Path, port: int, cwd: Path, concurrency: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_SERVER_PORT": str(port), "GRADIO_TEMP_DIR": str(cwd / "gradio-tmp")}
    env.pop("SPACE_ID", None)
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoints", str(checkpoints), "--no-train",
                             "--concurrency", str(concurrency), "--runs-dir", str(cwd / "runs")],
                            cwd=cwd, env=env, stdout=open(cwd / "server.log", "wb"), stderr=subprocess.STDOUT)


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def request(client, endpoint: str, model: str, rng: random.Random) -> None:
    """One user action with fresh seeds (so the app's seed cache does not answer for it)."""
    seed = rng.randrange(2**31 - 1)
    if endpoint == "generate":
        client.predict(model, f"{seed}-{seed + 15}", 1.0, api_name="/generate")
    elif endpoint == "edit":
        client.predict(model, seed, {"sefa-0": rng.uniform(-3, 3), "pca-1": rng.uniform(-3, 3)}, 1.0, api_name="/edit")
    elif endpoint == "arithmetic":
        groups = [",".join(str(rng.randrange(10**6)) for _ in range(rng.randint(1, 3))) for _ in range(3)]
        client.predict(model, *groups, 0.25, seed % 1000, api_name="/arithmetic")
    else:
        client.predict(model, f"{seed},{seed + 1}", 8, "slerp", 12.0, "once", api_name="/interpolate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=32, help="concurrent gradio_client users [default: 32]")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the users keep calling [default: 60]")
    p.add_argument("--checkpoints", metavar="DIR", default=None,
                   help="generators to serve [default: ./checkpoints, else a temp copy of runs/mnist-32]")
    p.add_argument("--model", default=None, help="model to call [default: the first the app lists]")
    p.add_argument("--concurrency", type=int, default=2, help="the app's --concurrency [default: 2, as app.py]")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    from gradio_client import Client

    tmp = Path(tempfile.mkdtemp(prefix="load-test-"))
    checkpoints = Path(args.checkpoints) if args.checkpoints else default_checkpoints(tmp / "checkpoints")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_server(checkpoints, port, tmp, args.concurrency)
    try:
        wait_http(url, proc)
        first = Client(url, verbose=False, download_files=str(tmp / "warm"))
        model = args.model or first.predict(api_name="/models")[0]["name"]
        first.predict(model, api_name="/directions")  # waits for labelled directions (background work, once per model)
        warm_rng = random.Random(0)
        for _ in range(3):  # load the model, its directions and ffmpeg once before measuring
            for endpoint in ENDPOINTS:
                request(first, endpoint, model, warm_rng)
        first.close()
        rss = [(0.0, rss_mb(proc.pid))]
        latencies: dict[str, list[float]] = defaultdict(list)
        failures: list[str] = []
        lock = threading.Lock()
        start = time.monotonic()
        stop_at = start + args.seconds

        def user(i: int) -> None:
            rng = random.Random(1000 + i)
            folder = tmp / f"user-{i}"
            client = Client(url, verbose=False, download_files=str(folder))
            try:
                while time.monotonic() < stop_at:
                    endpoint = rng.choice(ENDPOINTS)
                    t0 = time.perf_counter()
                    try:
                        request(client, endpoint, model, rng)
                    except Exception as exc:  # every failure is counted and reported, whatever its type
                        with lock:
                            failures.append(f"{endpoint}: {type(exc).__name__}: {exc}"[:300])
                        continue
                    with lock:
                        latencies[endpoint].append(time.perf_counter() - t0)
                    shutil.rmtree(folder, ignore_errors=True)  # the client's downloads, not the server's files
            finally:
                client.close()

        threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(args.users)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(1.0)
            rss.append((time.monotonic() - start, rss_mb(proc.pid)))
        elapsed = time.monotonic() - start
        rss.append((elapsed, rss_mb(proc.pid)))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

    everything = [v for values in latencies.values() for v in values]
    done = len(everything)
    half = [m for t, m in rss if t >= elapsed / 2]
    result = {
        "users": args.users, "seconds": round(elapsed, 1), "model": model, "requests": done, "failed": len(failures),
        "throughput_rps": round(done / elapsed, 2),
        "latency_s": {name: {"n": len(v), "p50": round(percentile(v, .5), 3), "p95": round(percentile(v, .95), 3),
                             "p99": round(percentile(v, .99), 3)} for name, v in sorted(latencies.items()) if v},
        "rss_mb": {"after_warmup": round(rss[0][1], 1), "max": round(max(m for _, m in rss), 1), "end": round(rss[-1][1], 1),
                   "second_half_range": round(max(half) - min(half), 1),
                   "timeline": [[round(t), round(m, 1)] for t, m in rss[:: max(1, len(rss) // 12)]]},
        "failures_sample": failures[:10],
    }
    if everything:
        result["latency_s"]["all"] = {"n": done, "p50": round(percentile(everything, .5), 3),
                                      "p95": round(percentile(everything, .95), 3), "p99": round(percentile(everything, .99), 3)}
    print(f"{args.users} users, {elapsed:.0f} s, model {model}: {done} requests, {len(failures)} failed, "
          f"{result['throughput_rps']} req/s")
    print(f"{'endpoint':<12} {'n':>6} {'p50 s':>8} {'p95 s':>8} {'p99 s':>8}")
    for name, row in result["latency_s"].items():
        print(f"{name:<12} {row['n']:>6} {row['p50']:>8.3f} {row['p95']:>8.3f} {row['p99']:>8.3f}")
    r = result["rss_mb"]
    print(f"server RSS MiB: {r['after_warmup']} after warm-up, max {r['max']}, end {r['end']}; "
          f"range over the second half {r['second_half_range']}")
    print("RSS timeline (s, MiB):", " ".join(f"{t}:{m}" for t, m in r["timeline"]))
    for line in failures[:10]:
        print("FAILED", line)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures or not done else 0


if __name__ == "__main__":
    sys.exit(main())
