"""What the Train tab's "Compare runs" costs the server: explorer.compare.compare_curves on four long runs.

Writes four metrics.jsonl files as dcgan.trainer does (one line every log_every steps) to a temp folder, then times
the first read, a redraw with nothing changed, and a redraw after one run logged a line.

Examples:
  python bench/compare_curves.py                  # four runs of 100,000 logged steps (1M steps at log_every=10)
  python bench/compare_curves.py --records 10000
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from dcgan import rundir
from explorer.compare import MAX_COMPARE_RUNS, compare_curves


def write_run(run_dir: Path, records: int) -> None:
    run_dir.mkdir()
    with open(run_dir / rundir.METRICS_FILE, "w") as log:
        for i in range(1, records + 1):
            step = 10 * i
            log.write(json.dumps({"step": step, "epoch": step / 900, "lossD": 1.2, "lossG": 0.8, "D_x": 0.6, "D_G_z": 0.4,
                                  "img_per_s": 800.0, "images_seen": 64 * step, "lr": 2e-4, "time": 1.7e9}) + "\n")


def timed(runs: dict[str, Path]) -> tuple[float, int]:
    start = time.perf_counter()
    rows = len(compare_curves(runs))
    return time.perf_counter() - start, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, metavar="N", help="logged steps per run (default 100000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {f"run-{i}": Path(tmp) / f"run-{i}" for i in range(MAX_COMPARE_RUNS)}
        for run_dir in runs.values():
            write_run(run_dir, args.records)
        size_mb = (runs["run-0"] / rundir.METRICS_FILE).stat().st_size / 1e6
        first, rows = timed(runs)
        print(f"{MAX_COMPARE_RUNS} runs x {args.records:,} records ({size_mb:.1f} MB each) -> {rows:,} rows: {first:.2f} s")
        print(f"redraw, files unchanged: {timed(runs)[0] * 1000:.0f} ms")
        with open(runs["run-0"] / rundir.METRICS_FILE, "a") as log:
            log.write(json.dumps({"step": 10 * args.records + 10, "lossD": 1.0, "images_seen": 640 * args.records + 640}) + "\n")
        print(f"redraw after one run logged a line: {timed(runs)[0]:.2f} s")


if __name__ == "__main__":
    main()
