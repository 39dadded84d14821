"""Load test: N concurrent gradio_client users against one `python app.py`, for a bounded time.

Each user loops over /generate (16 new seeds), /edit (a new seed, two directions), /arithmetic (1-3 exemplars per
group) and /interpolate (2 keyframes, 8 frames, GIF + MP4) in its own random order, downloading every result as a
browser would. Reported: failed requests (the goal is 0), p50/p95/p99 latency per endpoint and overall, throughput,
and the server's resident memory (VmRSS from /proc) after warm-up, during and at the end: it must stay bounded,
not grow with the request count. Not a unit test: run it by hand on an otherwise idle machine when you can.

With --attacker the app runs in public mode (`app.py --public`, as on a Hugging Face Space) and the same users run
twice against that one server process: first alone, then with one attacking client alongside, which floods Gradio's
upload route and /upload and sends the most expensive legal requests and garbage (ATTACK_PARTS; --attack-parts picks
some). Reported: the users' p95 in both phases and its ratio (the target is --max-ratio, 2x), what each of the
attacker's requests got (accepted, refused with which message, failed), and the server's memory, threads and temp
disk after each phase. The attacker runs in a process of its own, as a remote client would: in the users' process its
threads would hold the users' interpreter lock, and its time would count as the server's slowness.

Examples:
  python bench/load_test.py                                   # 32 users, 60 s, a model from ./checkpoints
  python bench/load_test.py --checkpoints /tmp/ckpts --model mnist-32 --seconds 120 --json load.json
  python bench/load_test.py --users 8 --seconds 20            # a quick look
  python bench/load_test.py --attacker --users 16 --seconds 30 --json attack.json   # 16 users without, then with an attacker
  python bench/load_test.py --attacker --users 16 --seconds 30 --attack-parts raw-upload,celeba-upload,huge-config,garbage
"""

import argparse
import http.client
import json
import math
import multiprocessing
import os
import random
import select
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from dcgan.machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = ("generate", "edit", "arithmetic", "interpolate")
RAW_UPLOAD_MB = 4
ATTACK_PARTS = {  # what the attacker sends, each through the app's real routes
    "raw-upload": f"random bytes ({RAW_UPLOAD_MB} MB each, so Gradio's content dedup cannot help) POSTed to Gradio's upload "
                  "route; every other one with a made-up X-Forwarded-For",
    "celeba-upload": "/upload of distinct valid generators (a shipped one with one weight changed) whose metadata claims "
                     "dataset celeba",
    "model-churn": "/generate (64 seeds) on each generator celeba-upload got registered: cycles the model cache",
    "huge-config": "/upload of a ~100-byte safetensors file with the form config dcgan, 64 px, 3 channels, z_dim 1024, ngf 1024",
    "interpolate": "/interpolate with the most frames allowed (MAX_TOTAL_FRAMES rendered) on the largest model",
    "generate": "/generate with MAX_GENERATE_SEEDS new seeds on the largest model",
    "arithmetic": "/arithmetic with MAX_GROUP_SEEDS new seeds in each group on the largest model",
    "garbage": "raw REST calls (gradio_api/call/<api>) with NaN, Infinity and 5000-digit numbers",
}
EXPENSIVE = ("interpolate", "generate", "arithmetic")  # shared by --attack-threads threads; the other parts get one each
MAX_ATTACK_REQUESTS = 400  # per attacker thread, on top of the time limit
GARBAGE = {  # name -> (api, body): raw JSON text, as a script would send it (json.dumps writes NaN / Infinity)
    "generate truncation NaN": ("generate", lambda m: json.dumps({"data": [m, "0-15", float("nan")]})),
    "generate 5000-digit seeds": ("generate", lambda m: json.dumps({"data": [m, "9" * 5000, 1.0]})),
    "edit 5000-digit seed (JSON number)": ("edit", lambda m: '{"data": [%s, %s, {}, 1.0, null]}' % (json.dumps(m), "9" * 5000)),
    "edit amount Infinity": ("edit", lambda m: json.dumps({"data": [m, 1, {"sefa-0": float("inf")}, 1.0, None]})),
    "interpolate frames NaN": ("interpolate", lambda m: json.dumps({"data": [m, "1,2", float("nan"), "slerp", 12.0, "once", 1.0]})),
    "arithmetic noise NaN": ("arithmetic", lambda m: json.dumps({"data": [m, "1", "2", "3", float("nan"), 0, 1.0]})),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int, key: str) -> int:
    """An integer field of /proc/PID/status (VmRSS in KiB, Threads), no psutil needed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB, from /proc."""
    return proc_status(pid, "VmRSS") / 1024


def folder_mb(folder: Path) -> float:
    """MiB of the files under folder (files vanishing meanwhile are skipped)."""
    total = 0
    for path in Path(folder).rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            continue
    return round(total / 2**20, 1)


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


def start_server(checkpoints: Path, port: int, cwd: Path, concurrency: int, public: bool = False) -> subprocess.Popen:
    """app.py with its upload folder (gradio-tmp) and temp folders (server-tmp: outputs, uploads) under cwd."""
    (cwd / "server-tmp").mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_SERVER_PORT": str(port), "GRADIO_TEMP_DIR": str(cwd / "gradio-tmp"),
           "TMPDIR": str(cwd / "server-tmp")}
    env.pop("SPACE_ID", None)
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoints", str(checkpoints), "--no-train",
                             "--concurrency", str(concurrency), "--runs-dir", str(cwd / "runs"), *(["--public"] if public else [])],
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


def run_users(url: str, model: str, users: int, seconds: float, tmp: Path, pid: int, phase: int = 0) -> dict:
    """``users`` normal users for ``seconds`` (each finishes its last request); their latencies, failures and the
    server's RSS (and thread count) sampled every second. Each phase draws other seeds (the app caches seeds)."""
    from gradio_client import Client

    rss = [(0.0, rss_mb(pid))]
    threads_seen = [proc_status(pid, "Threads")]
    latencies: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + seconds

    def user(i: int) -> None:
        rng = random.Random(1000 + i + 1000 * phase)
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

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        rss.append((time.monotonic() - start, rss_mb(pid)))
        threads_seen.append(proc_status(pid, "Threads"))
    elapsed = time.monotonic() - start
    rss.append((elapsed, rss_mb(pid)))
    return {"latencies": latencies, "failures": failures, "rss": rss, "elapsed": elapsed, "threads": threads_seen}


def summarize(run: dict, users: int, model: str) -> dict:
    latencies, failures, rss, elapsed = run["latencies"], run["failures"], run["rss"], run["elapsed"]
    everything = [v for values in latencies.values() for v in values]
    done = len(everything)
    half = [m for t, m in rss if t >= elapsed / 2]
    result = {
        "users": users, "seconds": round(elapsed, 1), "model": model, "requests": done, "failed": len(failures),
        "throughput_rps": round(done / elapsed, 2),
        "latency_s": {name: {"n": len(v), "p50": round(percentile(v, .5), 3), "p95": round(percentile(v, .95), 3),
                             "p99": round(percentile(v, .99), 3)} for name, v in sorted(latencies.items()) if v},
        "rss_mb": {"after_warmup": round(rss[0][1], 1), "max": round(max(m for _, m in rss), 1), "end": round(rss[-1][1], 1),
                   "second_half_range": round(max(half) - min(half), 1),
                   "timeline": [[round(t), round(m, 1)] for t, m in rss[:: max(1, len(rss) // 12)]]},
        "server_threads_max": max(run["threads"]),
        "failures_sample": failures[:10],
    }
    if everything:
        result["latency_s"]["all"] = {"n": done, "p50": round(percentile(everything, .5), 3),
                                      "p95": round(percentile(everything, .95), 3), "p99": round(percentile(everything, .99), 3)}
    return result


def print_summary(result: dict, rss_label: str = "after warm-up") -> None:
    print(f"{result['users']} users, {result['seconds']:.0f} s, model {result['model']}: {result['requests']} requests, "
          f"{result['failed']} failed, {result['throughput_rps']} req/s")
    print(f"{'endpoint':<12} {'n':>6} {'p50 s':>8} {'p95 s':>8} {'p99 s':>8}")
    for name, row in result["latency_s"].items():
        print(f"{name:<12} {row['n']:>6} {row['p50']:>8.3f} {row['p95']:>8.3f} {row['p99']:>8.3f}")
    r = result["rss_mb"]
    print(f"server RSS MiB: {r['after_warmup']} {rss_label}, max {r['max']}, end {r['end']}; "
          f"range over the second half {r['second_half_range']}")
    print("RSS timeline (s, MiB):", " ".join(f"{t}:{m}" for t, m in r["timeline"]))
    for line in result["failures_sample"]:
        print("FAILED", line)


# ----------------------------------------------------------------------------------------------------------------
# the attacker (--attacker)

def short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify(exc: BaseException) -> tuple[str, str]:
    """("refused", message) when the app answered with an error of its own (a gr.Error, an HTTP 4xx), else
    ("failed", what happened): a 5xx, a dropped connection, a timeout, an error without a message."""
    from gradio_client.exceptions import AppError

    if isinstance(exc, AppError):
        message = str(exc)
        if not message or message == "None" or "verbose error reporting" in message:
            return "failed", "AppError without a message (an unhandled exception in the app)"
        return "refused", short(message)
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "code", None)
    if isinstance(status, int) and 400 <= status < 500:
        body = getattr(response, "text", None)
        if body is None and hasattr(exc, "read"):
            body = exc.read().decode("utf-8", "replace")
        return "refused", short(f"HTTP {status}: {body or ''}")
    return "failed", short(f"{type(exc).__name__}: {exc}")


class Tally:
    """Per attack part: requests sent, accepted, refused / failed by message, and their latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parts: dict[str, dict] = {}

    def add(self, part: str, outcome: str, message: str = "", seconds: float = 0.0) -> None:
        with self.lock:
            row = self.parts.setdefault(part, {"sent": 0, "accepted": 0, "refused": Counter(), "failed": Counter(), "s": []})
            row["sent"] += 1
            row["s"].append(seconds)
            if outcome == "accepted":
                row["accepted"] += 1
            else:
                row[outcome][message] += 1

    def report(self) -> dict:
        with self.lock:
            return {part: {"sent": r["sent"], "accepted": r["accepted"], "refused": sum(r["refused"].values()),
                           "failed": sum(r["failed"].values()), "p50_s": round(percentile(r["s"], .5), 3),
                           "max_s": round(max(r["s"]), 3), "refused_by_message": dict(r["refused"].most_common()),
                           "failed_by_message": dict(r["failed"].most_common())}
                    for part, r in sorted(self.parts.items())}


def widest_interpolation() -> tuple[int, int, str]:
    """(keyframes, frames per segment, loop) rendering the most frames the limits allow (then playing the most)."""
    from explorer.service import LOOP_MODES, MAX_FRAMES_PER_SEGMENT, MAX_KEYFRAMES, MAX_TOTAL_FRAMES, count_frames

    best, best_score = (2, 1, "once"), (0, 0)
    for loop in LOOP_MODES:
        for k in range(2, MAX_KEYFRAMES + 1):
            for f in range(1, MAX_FRAMES_PER_SEGMENT + 1):
                played = count_frames(k, f, loop)
                rendered = k * f if loop == "loop" else (k - 1) * f + 1
                if played <= MAX_TOTAL_FRAMES and (rendered, played) > best_score:
                    best, best_score = (k, f, loop), (rendered, played)
    return best


class Attacker:
    """One attacking client: a gradio_client session (shared by its threads, downloading nothing) plus raw HTTP.
    Every thread stops at ``stop_at`` or after MAX_ATTACK_REQUESTS requests, whichever comes first."""

    def __init__(self, url: str, model: str, parts: list[str], threads: int, tmp: Path, checkpoints: Path, uploads: int,
                 spoof: bool = True):
        self.url, self.model, self.parts, self.threads, self.spoof = url, model, parts, threads, spoof
        self.host, self.port = url.split("//")[1].rstrip("/").split(":")
        self.tmp = tmp
        self.tally = Tally()
        self.registered: list[str] = []  # names /upload gave the attacker (for model-churn)
        self.rng = random.Random(7)
        self.block = os.urandom(RAW_UPLOAD_MB * 2**20)
        self.fakes = self.make_celeba_fakes(checkpoints, uploads) if "celeba-upload" in parts else []
        self.interp = widest_interpolation()
        from explorer.service import MAX_GENERATE_SEEDS, MAX_GROUP_SEEDS
        self.max_seeds, self.group_seeds = MAX_GENERATE_SEEDS, MAX_GROUP_SEEDS
        self.workers: list[threading.Thread] = []

    def make_celeba_fakes(self, checkpoints: Path, count: int) -> list[Path]:
        """``count`` valid generators, each a different file: the smallest shipped generator with one weight
        changed, its metadata claiming dataset celeba (which once started a background classifier job per upload)."""
        import torch

        from dcgan.checkpoints import load_generator, save_generator

        source = min(checkpoints.glob("*/generator.safetensors"), key=lambda p: p.stat().st_size)
        G, info = load_generator(source)
        meta = {k: v for k, v in info.info.items() if k not in ("date", "version", "label_names", "commands")}
        first = next(G.parameters())
        paths = []
        for i in range(count):
            with torch.no_grad():
                first.view(-1)[0] = 1e-3 * (i + 1)
            path = self.tmp / "fakes" / str(i) / "celeba-64.safetensors"
            path.parent.mkdir(parents=True)
            save_generator(G, path, model=info.model, info={**meta, "dataset": "celeba"})
            paths.append(path)
        return paths

    # one loop per part ---------------------------------------------------------------------------------------
    def timed(self, part: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # the attacker keeps going whatever happens; the outcome is the measurement
            self.tally.add(part, *classify(exc), time.perf_counter() - t0)
        else:
            self.tally.add(part, "accepted", "", time.perf_counter() - t0)

    def raw_upload(self, i: int) -> None:
        """One multipart POST of RAW_UPLOAD_MB random bytes to Gradio's upload route, as a script would send it. The
        body goes out in chunks and sending stops once the server has answered, so that a refusal sent before the body
        was read (the quota's 413) is read as such rather than lost to a reset connection."""
        boundary = uuid.uuid4().hex
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="weights.safetensors"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        body = memoryview(head + os.urandom(64) + self.block + f"\r\n--{boundary}--\r\n".encode())
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body))}
        spoofed = self.spoof and i % 2
        if spoofed:
            headers["X-Forwarded-For"] = f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"
        part = "raw-upload (spoofed X-Forwarded-For)" if spoofed else "raw-upload"
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.putrequest("POST", f"/gradio_api/upload?upload_id={uuid.uuid4().hex[:11]}")
            for key, value in headers.items():
                conn.putheader(key, value)
            conn.endheaders()
            for at in range(0, len(body), 2**18):
                if select.select([conn.sock], [], [], 0)[0]:
                    break  # the server answered before taking the whole body
                try:
                    conn.sock.sendall(body[at: at + 2**18])
                except (BrokenPipeError, ConnectionResetError):
                    break
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except Exception as exc:
            self.tally.add(part, "failed", short(f"{type(exc).__name__}: {exc}"), time.perf_counter() - t0)
        else:
            outcome = ("accepted", "") if response.status == 200 else \
                ("refused" if response.status < 500 else "failed", short(f"HTTP {response.status}: {text}"))
            self.tally.add(part, *outcome, time.perf_counter() - t0)
        finally:
            conn.close()

    def garbage(self, i: int) -> None:
        """A raw REST call (POST gradio_api/call/<api>, then its event stream) with an invalid value in its JSON."""
        name = list(GARBAGE)[i % len(GARBAGE)]
        api, body = GARBAGE[name]
        t0 = time.perf_counter()
        try:
            req = urllib.request.Request(f"{self.url}gradio_api/call/{api}", data=body(self.model).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=60) as r:
                event_id = json.loads(r.read())["event_id"]
            with urllib.request.urlopen(f"{self.url}gradio_api/call/{api}/{event_id}", timeout=120) as r:
                stream = r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            text = short(f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')}")
            outcome = ("refused", text) if exc.code < 500 else ("failed", text)
        except Exception as exc:
            outcome = ("failed", short(f"{type(exc).__name__}: {exc}"))
        else:
            events = [line.split(":", 1)[1].strip() for line in stream.splitlines() if line.startswith("event:")]
            data = [line.split(":", 1)[1].strip() for line in stream.splitlines() if line.startswith("data:")]
            try:
                error = json.loads(data[-1]).get("error") if data else None
            except (ValueError, AttributeError):
                error = data[-1]
            if "complete" in events:
                outcome = ("accepted", "")  # the app took the garbage: a gap in its validation
            elif not error:
                outcome = ("failed", f"error event without a message: {short(data[-1] if data else events, 80)}")
            else:
                outcome = ("refused", short(f"error event: {error}"))
        self.tally.add(f"garbage: {name}", *outcome, time.perf_counter() - t0)

    def celeba_upload(self, client, i: int) -> None:
        from gradio_client import handle_file

        def send() -> None:
            self.registered.append(client.predict(handle_file(str(self.fakes[i % len(self.fakes)])), api_name="/upload"))
        self.timed("celeba-upload", send)

    def huge_config(self, client, i: int) -> None:
        import torch
        from gradio_client import handle_file
        from safetensors.torch import save_file

        path = self.tmp / "tiny" / str(i) / "tiny.safetensors"
        path.parent.mkdir(parents=True)
        save_file({"main.0.weight": torch.tensor([self.rng.random()])}, str(path))
        self.timed("huge-config", lambda: client.predict(handle_file(str(path)), "dcgan", 64, 3, 1024, 1024, api_name="/upload"))

    def model_churn(self, client, i: int) -> None:
        if not self.registered:
            time.sleep(0.5)
            return
        name = self.registered[i % len(self.registered)]
        seed = self.rng.randrange(2**31 - 100)
        self.timed("model-churn", lambda: client.predict(name, f"{seed}-{seed + self.max_seeds - 1}", 1.0, api_name="/generate"))

    def expensive(self, client, kind: str) -> None:
        rng, m = self.rng, self.model
        if kind == "interpolate":
            k, f, loop = self.interp
            keyframes = ",".join(str(rng.randrange(2**31 - 1)) for _ in range(k))
            self.timed(kind, lambda: client.predict(m, keyframes, f, "slerp", 60.0, loop, 1.0, api_name="/interpolate"))
        elif kind == "generate":
            seed = rng.randrange(2**31 - 100)
            self.timed(kind, lambda: client.predict(m, f"{seed}-{seed + self.max_seeds - 1}", 1.0, api_name="/generate"))
        else:
            groups = [",".join(str(rng.randrange(2**31 - 1)) for _ in range(self.group_seeds)) for _ in range(3)]
            self.timed(kind, lambda: client.predict(m, *groups, 1.0, rng.randrange(1000), 1.0, api_name="/arithmetic"))

    def start(self, stop_at: float) -> None:
        from gradio_client import Client

        client = Client(self.url, verbose=False, download_files=False)  # one session for the whole attacker

        def loop(step) -> None:
            for i in range(MAX_ATTACK_REQUESTS):
                if time.monotonic() >= stop_at:
                    return
                step(i)

        jobs = {"raw-upload": lambda: loop(self.raw_upload), "garbage": lambda: loop(self.garbage),
                "celeba-upload": lambda: loop(lambda i: self.celeba_upload(client, i)),
                "huge-config": lambda: loop(lambda i: self.huge_config(client, i)),
                "model-churn": lambda: loop(lambda i: self.model_churn(client, i))}
        targets = [job for part, job in jobs.items() if part in self.parts]
        kinds = [p for p in EXPENSIVE if p in self.parts]
        for t in range(self.threads if kinds else 0):
            targets.append(lambda t=t: loop(lambda i: self.expensive(client, kinds[(t + i) % len(kinds)])))
        self.workers = [threading.Thread(target=target, daemon=True) for target in targets]
        for w in self.workers:
            w.start()

    def join(self, timeout: float) -> int:
        """Wait for the attacker's last requests; returns how many threads are still going after ``timeout``."""
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
        return sum(w.is_alive() for w in self.workers)


def attack_process(settings: dict, commands, results) -> None:
    """The attacker in its own process: build it (its fake generators, its random bodies), say "ready", attack from
    the moment the parent sends the deadline, then send back the tally and how many threads were still going."""
    attacker = Attacker(**settings)
    results.put("ready")
    attacker.start(commands.get())
    left = attacker.join(300)
    results.put((attacker.tally.report(), left))


class AttackerProcess:
    """Starts ``attack_process`` (spawned: no threads or sockets inherited) and waits for it to be ready."""

    def __init__(self, **settings):
        context = multiprocessing.get_context("spawn")
        self.commands, self.results = context.Queue(), context.Queue()
        self.process = context.Process(target=attack_process, args=(settings, self.commands, self.results), daemon=True)
        self.process.start()
        if self.results.get(timeout=600) != "ready":
            raise RuntimeError("the attacker process did not start")

    def start(self, stop_at: float) -> None:
        self.commands.put(stop_at)  # time.monotonic() is the same clock in every process (CLOCK_MONOTONIC)

    def join(self, timeout: float) -> tuple[dict, int]:
        report, left = self.results.get(timeout=timeout + 60)
        self.process.join(30)
        return report, left


def server_state(proc: subprocess.Popen, tmp: Path) -> dict:
    alive = proc.poll() is None
    return {"alive": alive, "rss_mb": round(rss_mb(proc.pid), 1) if alive else None,
            "threads": proc_status(proc.pid, "Threads") if alive else None,
            "upload_folder_mb": folder_mb(tmp / "gradio-tmp"), "server_tmp_mb": folder_mb(tmp / "server-tmp")}


def log_tracebacks(log: Path) -> dict:
    """Tracebacks in the server's log and the last line of each (the exception); the upload quota's refusals."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    ends, quota = Counter(), Counter()
    for line in lines:
        if "upload refused (" in line:
            quota[short(line.split("): ", 1)[-1], 100)] += 1
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                j += 1
            ends[short(lines[j] if j < len(lines) else "?", 140)] += 1
    return {"tracebacks": sum(ends.values()), "by_exception": dict(ends.most_common(8)), "upload_quota_refusals": dict(quota)}


def ratio(after: float, before: float) -> float:
    return round(after / before, 2) if before > 0 else math.inf


def print_attack(result: dict) -> None:
    base, attack = result["baseline"], result["attack"]
    print(f"\nnormal users ({result['users']}, model {result['model']}): without vs with the attacker (model "
          f"{result['attack_model']}, parts {','.join(result['attack_parts'])}, {result['attack_threads']} threads on expensive requests)")
    print(f"{'endpoint':<12} {'n':>5} {'p50 s':>7} {'p95 s':>7}  | {'n':>5} {'p50 s':>7} {'p95 s':>7}  | {'p95 ratio':>9}")
    for name in [*ENDPOINTS, "all"]:
        a, b = base["latency_s"].get(name), attack["latency_s"].get(name)
        if a and b:
            print(f"{name:<12} {a['n']:>5} {a['p50']:>7.3f} {a['p95']:>7.3f}  | {b['n']:>5} {b['p50']:>7.3f} {b['p95']:>7.3f}  | "
                  f"{result['p95_ratio'][name]:>8.2f}x")
    print(f"failed: {base['failed']} without, {attack['failed']} with; throughput {base['throughput_rps']} vs "
          f"{attack['throughput_rps']} req/s")
    verdict = "met" if result["target_met"] else "NOT met"
    print(f"target: p95 (all) within {result['max_ratio']:g}x: {verdict} ({result['p95_ratio'].get('all')}x)")
    print("\nattacker's requests (sent / accepted / refused / failed, p50 and max latency):")
    for part, row in result["attacker"].items():
        print(f"  {part:<45} {row['sent']:>4} / {row['accepted']:>4} / {row['refused']:>4} / {row['failed']:>4}   "
              f"{row['p50_s']:.2f} s, max {row['max_s']:.2f} s")
        for message, n in row["refused_by_message"].items():
            print(f"      refused {n:>4}x  {message}")
        for message, n in row["failed_by_message"].items():
            print(f"      FAILED  {n:>4}x  {message}")
    print("\nserver (RSS MiB, threads, MiB in Gradio's upload folder / the app's temp folders):")
    for label, s in result["server"].items():
        print(f"  {label:<28} alive {s['alive']}, RSS {s['rss_mb']}, threads {s['threads']}, "
              f"uploads {s['upload_folder_mb']}, temp {s['server_tmp_mb']}"
              + (f"; a /generate (16 seeds) then took {s['generate_s']} s" if "generate_s" in s else ""))
    log = result["server_log"]
    print(f"server log: {log['tracebacks']} tracebacks", *(f"\n  {n}x {e}" for e, n in log["by_exception"].items()))
    for message, n in log["upload_quota_refusals"].items():
        print(f"  upload quota refused {n}x: {message}")
    if result["attacker_threads_left"]:
        print(f"WARNING: {result['attacker_threads_left']} attacker threads still running at the end")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=32, help="concurrent gradio_client users [default: 32]")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the users keep calling (per phase with --attacker) [default: 60]")
    p.add_argument("--checkpoints", metavar="DIR", default=None,
                   help="generators to serve [default: ./checkpoints, else a temp copy of runs/mnist-32]")
    p.add_argument("--model", default=None, help="model to call [default: the first the app lists]")
    p.add_argument("--concurrency", type=int, default=2, help="the app's --concurrency [default: 2, as app.py]")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    attack = p.add_argument_group("attacker mode (issue 18)")
    attack.add_argument("--attacker", action="store_true",
                        help="run the users twice against one `app.py --public`: alone, then with one attacking client alongside")
    attack.add_argument("--attack-parts", metavar="LIST", default=",".join(ATTACK_PARTS),
                        help="comma-separated parts of the attack, to find which one hurts: "
                             + "; ".join(f"{k}: {v}" for k, v in ATTACK_PARTS.items()) + " [default: all]")
    attack.add_argument("--attack-threads", type=int, default=4, metavar="N",
                        help="attacker threads sending the expensive image requests (the other parts get one thread each) [default: 4]")
    attack.add_argument("--attack-model", default=None, help="model the attacker calls [default: the one with the most pixels]")
    attack.add_argument("--attack-uploads", type=int, default=40, metavar="N",
                        help="distinct generators celeba-upload cycles through (the app keeps 32) [default: 40]")
    attack.add_argument("--no-spoof", action="store_true",
                        help="the attacker sends no made-up X-Forwarded-For: one client, as on a Space, whose proxy writes the header "
                             "(from 127.0.0.1 uvicorn believes the header, so spoofing here stands for an attacker with many addresses)")
    attack.add_argument("--max-ratio", type=float, default=2.0, help="target: the users' p95 with / without the attacker [default: 2]")
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.attack_parts.split(",") if s.strip()]
    unknown = sorted(set(parts) - set(ATTACK_PARTS))
    if unknown:
        p.error(f"--attack-parts: unknown {', '.join(unknown)}; known: {', '.join(ATTACK_PARTS)}")
    from gradio_client import Client

    tmp = Path(tempfile.mkdtemp(prefix="load-test-"))
    checkpoints = Path(args.checkpoints) if args.checkpoints else default_checkpoints(tmp / "checkpoints")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_server(checkpoints, port, tmp, args.concurrency, public=args.attacker)
    server: dict[str, dict] = {}
    try:
        wait_http(url, proc)
        first = Client(url, verbose=False, download_files=str(tmp / "warm"))
        listed = first.predict(api_name="/models")
        model = args.model or listed[0]["name"]
        first.predict(model, api_name="/directions")  # waits for labelled directions (background work, once per model)
        warm_rng = random.Random(0)
        for _ in range(3):  # load the model, its directions and ffmpeg once before measuring
            for endpoint in ENDPOINTS:
                request(first, endpoint, model, warm_rng)
        if not args.attacker:
            first.close()
            run = run_users(url, model, args.users, args.seconds, tmp, proc.pid)
        else:
            pixels = {row["name"]: row.get("image_size", 0) ** 2 * row.get("channels", 1) for row in listed if "error" not in row}
            attack_model = args.attack_model or max(pixels, key=pixels.get)
            if attack_model != model:
                first.predict(attack_model, api_name="/directions")
                request(first, "generate", attack_model, warm_rng)
            first.close()
            attacker = AttackerProcess(url=url, model=attack_model, parts=parts, threads=args.attack_threads, tmp=tmp / "attacker",
                                       checkpoints=checkpoints, uploads=args.attack_uploads, spoof=not args.no_spoof)
            server["after warm-up"] = server_state(proc, tmp)
            baseline = run_users(url, model, args.users, args.seconds, tmp, proc.pid)
            server["after the users alone"] = server_state(proc, tmp)
            attacker.start(time.monotonic() + args.seconds)
            attacked = run_users(url, model, args.users, args.seconds, tmp, proc.pid, phase=1)
            server["after the users, attacked"] = server_state(proc, tmp)
            attack_report, left = attacker.join(300)
            server["after the attacker's last"] = server_state(proc, tmp)
            check = Client(url, verbose=False, download_files=str(tmp / "check"))  # does it still answer?
            t0 = time.perf_counter()
            request(check, "generate", model, warm_rng)
            check.close()
            server["after the attacker's last"]["generate_s"] = round(time.perf_counter() - t0, 3)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

    if not args.attacker:
        result = summarize(run, args.users, model)
        print_summary(result)
        failed = result["failed"] or not result["requests"]
    else:
        base, hit = summarize(baseline, args.users, model), summarize(attacked, args.users, model)
        ratios = {name: ratio(hit["latency_s"][name]["p95"], row["p95"])
                  for name, row in base["latency_s"].items() if name in hit["latency_s"]}
        result = {"mode": "attacker", "command": shlex.join([Path(sys.executable).name, *sys.argv]), "cpu": cpu_name(),
                  "users": args.users, "model": model, "attack_model": attack_model, "attack_parts": parts,
                  "attack_threads": args.attack_threads,
                  "interpolation": dict(zip(("keyframes", "frames", "loop"), widest_interpolation())),
                  "max_ratio": args.max_ratio, "p95_ratio": ratios, "target_met": ratios.get("all", math.inf) <= args.max_ratio,
                  "baseline": base, "attack": hit, "attacker": attack_report, "attacker_threads_left": left,
                  "server": server, "server_log": log_tracebacks(tmp / "server.log")}
        print(f"CPU: {result['cpu']}\ncommand: {result['command']}")
        print("\n== without the attacker ==")
        print_summary(base, "at the start")
        print("\n== with the attacker ==")
        print_summary(hit, "at the start")
        print_attack(result)
        failed = base["failed"] or hit["failed"] or not base["requests"] or not hit["requests"] or not result["target_met"]
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
