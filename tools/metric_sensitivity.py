"""How close to its floor can a score get? Score held-out real images after changes nobody would notice by eye.

Prints a markdown table: the real floor (held-out real images as they are), then the same images shifted by one
pixel, with faint noise, at 90% contrast and faintly blurred, each scored like a generator against the training
images (`dcgan.metrics.perturbed_floors`). A generator within a few times its floor is as close to the data as those.

Example:
  python tools/metric_sensitivity.py --dataset mnist --image-size 32 --data-root ../shared/data --json mnist.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dcgan.metrics import perturbed_floors, real_floor

METRICS = ("fid", "kid", "precision", "recall")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist", "celeba"), required=True)
    p.add_argument("--data-root", default="", help="folder holding the data set (celeba: the celeba10k folder)")
    p.add_argument("--n", type=int, default=10000, help="reference and held-out images (capped by the splits)")
    p.add_argument("--image-size", type=int, default=None,
                   help="the generator's side (real images are resized to it) [default: the classifier's]")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None, help="[default: the classifier's]")
    p.add_argument("--json", type=Path, default=None, help="also write {row: {metric: value}} here")
    args = p.parse_args()

    where = dict(root=args.data_root, image_size=args.image_size, channels=args.channels)
    rows = {"real floor (held-out images as they are)": real_floor(args.dataset, args.n, **where),
            **perturbed_floors(args.dataset, args.n, metrics=["fid", "kid", "pr"], **where)}
    floor_fid = next(iter(rows.values()))["fid"]
    print(f"| {args.dataset}: held-out real images | " + " | ".join(METRICS) + " | FID / floor |")
    print("|---" * (len(METRICS) + 2) + "|")
    for name, scores in rows.items():
        print(f"| {name} | " + " | ".join(f"{scores[m]:.4g}" for m in METRICS) + f" | {scores['fid'] / floor_fid:.1f}x |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
