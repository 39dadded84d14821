"""Train one of the small classifiers shipped in dcgan/assets/classifiers/ (the feature nets behind `dcgan eval`).

Writes DATASET.safetensors (fp16 weights; config, measured accuracies and this command in its metadata) and
rewrites the accuracy table in dcgan/assets/classifiers/README.md from every classifier file there.
Splits: mnist/fashion-mnist train on the 60k train split and report the 10k test split; celeba trains on faces
1-8000 and reports each attribute on faces 8001-10000. The learning rate follows a cosine over
max(step / total steps, elapsed / --max-minutes), so a time-limited run still ends annealed.

Examples:
  python tools/train_classifier.py --dataset mnist --max-minutes 5
  python tools/train_classifier.py --dataset fashion-mnist --max-minutes 5
  python tools/train_classifier.py --dataset celeba --data-root ../shared/data/celeba10k --max-minutes 10
  python tools/train_classifier.py --dataset celeba --dry-run
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcgan.classifiers import (  # noqa: E402
    ASSETS_DIR,
    ClassifierConfig,
    build_classifier,
    classifier_path,
    load_classifier,
    read_classifier_metadata,
    save_classifier,
)
from dcgan.datasets import DATASETS, batch_to_float  # noqa: E402
from dcgan.metrics import load_split  # noqa: E402

log = logging.getLogger("train_classifier")
SHARED_DATA = REPO.parent / "shared" / "data"
FOCUS_ATTRIBUTES = ("Smiling", "Male", "Eyeglasses", "Blond_Hair", "Young")  # reported first in the README

# Per-dataset defaults, each a measured trade-off on a 2-core CPU.
PRESETS = {
    # 28 px grey digits: three conv stages are enough for >99.3%; small rotations/shifts/zooms fight overfitting
    "mnist": dict(model=dict(image_size=28, channels=1, widths=[32, 64, 128], convs_per_stage=1),
                  epochs=8, batch_size=128, lr=3e-3, shift=2.0, rotate=10.0, zoom=0.10, flip=False),
    # garments underfit the digit net (train loss 0.30, 91.2% test), so two convs per stage; flips are free data
    # (clothes are left-right symmetric), rotations and zooms only made it underfit more
    "fashion-mnist": dict(model=dict(image_size=28, channels=1, widths=[32, 64, 128], convs_per_stage=2),
                          epochs=8, batch_size=128, lr=3e-3, shift=1.0, rotate=0.0, zoom=0.0, flip=True),
    # 64 px faces: a stride-2 stem keeps the cost low; only 8000 faces, so flips and small shifts matter most
    "celeba": dict(model=dict(image_size=64, channels=3, widths=[32, 64, 128, 256], convs_per_stage=2, stem_stride=2),
                   epochs=30, batch_size=64, lr=2e-3, shift=4.0, rotate=5.0, zoom=0.05, flip=True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # data
    p.add_argument("--dataset", required=True, choices=sorted(PRESETS), help="which classifier to train")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="folder holding the data set (default: ../shared/data, or ../shared/data/celeba10k for celeba)")
    # optimisation (defaults: the dataset's preset)
    p.add_argument("--epochs", type=float, metavar="N", default=None, help="passes over the train split (default: preset, 8 or 30)")
    p.add_argument("--max-minutes", type=float, metavar="MIN", default=None,
                   help="wall-clock budget for training; the LR schedule fits it (default: none)")
    p.add_argument("--batch-size", type=int, metavar="N", default=None, help="images per step (default: preset, 128 or 64)")
    p.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate (default: preset)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="AdamW weight decay (default: 5e-4)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, data order and augmentation (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice / OMP_NUM_THREADS)")
    # outputs
    p.add_argument("--out", metavar="FILE", default=None, help="weights file (default: dcgan/assets/classifiers/DATASET.safetensors)")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite dcgan/assets/classifiers/README.md")
    p.add_argument("--remeasure", action="store_true",
                   help="only re-measure the accuracy of the existing --out file and update its metadata")
    p.add_argument("--dry-run", action="store_true", help="print the resolved options as JSON and exit")
    args = p.parse_args(argv)
    preset = PRESETS[args.dataset]
    for name in ("epochs", "batch_size", "lr"):
        if getattr(args, name) is None:
            setattr(args, name, preset[name])
    if args.data_root is None:
        args.data_root = str(DATASETS[args.dataset].root_under(SHARED_DATA))
    args.out = args.out or str(classifier_path(args.dataset))
    return args


# ----------------------------------------------------------------------------------------------------------------
# augmentation and schedule

def augment(x: torch.Tensor, preset: dict, rng: torch.Generator) -> torch.Tensor:
    """Random shift (pixels), rotation (degrees), zoom and horizontal flip, one affine warp per image."""
    n, side = len(x), x.shape[-1]
    u = lambda: torch.rand(n, generator=rng) * 2 - 1  # noqa: E731
    angle = u() * math.radians(preset["rotate"])
    scale = 1 + u() * preset["zoom"]
    flip = torch.where(torch.rand(n, generator=rng) < 0.5, -1.0, 1.0) if preset["flip"] else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / scale * flip, -angle.sin() / scale
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / scale * flip, angle.cos() / scale
    theta[:, :, 2] = torch.stack([u(), u()], 1) * preset["shift"] * 2 / side
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def lr_at(progress: float, peak: float, warmup: float = 0.03) -> float:
    if progress < warmup:
        return peak * progress / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup))))


# ----------------------------------------------------------------------------------------------------------------
# train and measure

def loss_fn(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "classes":
        return F.cross_entropy(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels.float())


@torch.no_grad()
def measure(net, images: torch.Tensor, labels: torch.Tensor, kind: str, train_labels: torch.Tensor) -> dict:
    """Held-out accuracy; for attributes per attribute, with the majority-class rate (from the train split) beside it."""
    net.eval()
    probs = net.predict_proba(batch_to_float(images))
    if kind == "classes":
        return {"test_accuracy": round(float((probs.argmax(1) == labels).float().mean()), 5), "n_test": len(labels)}
    correct = ((probs > 0.5) == labels.bool()).float().mean(0)
    majority_label = train_labels.float().mean(0) > 0.5  # the best constant guess, chosen on the train split
    majority = (labels.bool() == majority_label).float().mean(0)
    names = net.label_names
    return {"mean_accuracy": round(float(correct.mean()), 5), "mean_majority": round(float(majority.mean()), 5), "n_test": len(labels),
            "accuracy": {n: round(float(a), 4) for n, a in zip(names, correct)},
            "majority": {n: round(float(m), 4) for n, m in zip(names, majority)}}


def remeasure(args: argparse.Namespace) -> None:
    """Measure the shipped file's weights as loaded (fp16) again and rewrite its results; its training record stays."""
    net = load_classifier(args.dataset, path=args.out)
    train_data = load_split(args.dataset, "train", root=args.data_root, image_size=net.image_size, channels=net.channels)
    test_data = load_split(args.dataset, "test", root=args.data_root, image_size=net.image_size, channels=net.channels)
    results = measure(net, test_data.images, test_data.labels, net.kind, train_data.labels)
    save_classifier(net, Path(args.out), results=results, training=read_classifier_metadata(Path(args.out))["training"])
    log.info("%s: %s; rewrote %s", args.dataset, json.dumps({k: v for k, v in results.items() if not isinstance(v, dict)}), args.out)


def train(args: argparse.Namespace) -> None:
    preset = PRESETS[args.dataset]
    torch.manual_seed(args.seed)
    size, channels = preset["model"]["image_size"], preset["model"]["channels"]
    train_data = load_split(args.dataset, "train", root=args.data_root, image_size=size, channels=channels)
    test_data = load_split(args.dataset, "test", root=args.data_root, image_size=size, channels=channels)
    kind = DATASETS[args.dataset].labels
    cfg = ClassifierConfig(dataset=args.dataset, kind=kind, label_names=list(train_data.label_names), **preset["model"])
    net = build_classifier(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    n = len(train_data)
    steps_per_epoch = n // args.batch_size
    total_steps = max(1, round(args.epochs * steps_per_epoch))
    budget = args.max_minutes * 60 if args.max_minutes else math.inf
    rng = torch.Generator().manual_seed(args.seed)
    log.info("%s: %d train / %d test images, %d steps planned, budget %s min",
             args.dataset, n, len(test_data), total_steps, args.max_minutes)
    start, step, progress = time.monotonic(), 0, 0.0
    net.train()
    while progress < 1.0:
        perm = torch.randperm(n, generator=rng)
        for i in range(steps_per_epoch):
            progress = max(step / total_steps, (time.monotonic() - start) / budget)
            if progress >= 1.0:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(progress, args.lr)
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            x = augment(batch_to_float(train_data.images[idx]), preset, rng)
            loss = loss_fn(net(x), train_data.labels[idx], kind)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 100 == 0:
                log.info("step %d/%d (epoch %.2f) loss %.4f lr %.2e %.0fs", step, total_steps, step / steps_per_epoch, loss.item(),
                         opt.param_groups[0]["lr"], time.monotonic() - start)
    seconds = time.monotonic() - start
    with torch.no_grad():  # measure the weights as shipped (fp16), not the fp32 ones that are never saved
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    results = measure(net, test_data.images, test_data.labels, kind, train_data.labels)
    training = {"command": "python tools/train_classifier.py " + shlex.join(sys.argv[1:]), "seconds": round(seconds, 1),
                "steps": step, "epochs": round(step / steps_per_epoch, 2), "batch_size": args.batch_size, "lr": args.lr,
                "seed": args.seed, "threads": torch.get_num_threads(), "torch": torch.__version__,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "split": "faces 1-8000 train, 8001-10000 test" if kind == "attributes" else "official train / test"}
    save_classifier(net, Path(args.out), results=results, training=training)
    log.info("%s: %s after %.0f s (%d steps); wrote %s", args.dataset,
             json.dumps({k: v for k, v in results.items() if not isinstance(v, dict)}),
             seconds, step, args.out)


# ----------------------------------------------------------------------------------------------------------------
# README table

def write_readme(assets_dir: Path = ASSETS_DIR) -> None:
    """Rewrite assets_dir/README.md from the metadata of every classifier file in it."""
    lines = ["# Shipped classifiers", "",
             "Small CNNs behind `dcgan eval` and `dcgan.metrics` (classifier FID, KID, precision/recall, inception-style",
             "score, class/attribute histograms). Weights are fp16 safetensors with the architecture, the measured",
             "accuracies and the training command in their metadata. Generated by `tools/train_classifier.py`; rerun it",
             "to retrain (the numbers below are rewritten from the files). `celeba-judge` is the celeba recipe from another",
             "seed: the second opinion that scores the arithmetic presets, which check their results with `celeba`",
             "(`dcgan.classifiers.load_judge`).", "",
             "| classifier | size | held-out accuracy | split | training time | command |", "|---|---|---|---|---|---|"]
    files = sorted(assets_dir.glob("*.safetensors"))
    metas = {path.stem: read_classifier_metadata(path) for path in files}
    for path in files:
        meta = metas[path.stem]
        res, tr, cfg = meta["results"], meta["training"], meta["config"]
        acc = (f"{res['test_accuracy']:.2%}" if "test_accuracy" in res else
               f"{res['mean_accuracy']:.2%} mean of {len(cfg['label_names'])} attributes (majority {res['mean_majority']:.2%})")
        lines.append(f"| `{path.name}` ({cfg['image_size']} px, {cfg['channels']} ch, {path.stat().st_size / 2**20:.2f} MB) | "
                     f"{cfg['feature_dim']}-d features | {acc} on {res['n_test']} images | {tr['split']} | "
                     f"{tr['seconds'] / 60:.1f} min, {tr['epochs']} epochs, {tr['threads']} thread(s) | `{tr['command']}` |")
    for name, meta in metas.items():
        res = meta["results"]
        if "accuracy" not in res:
            continue
        lines += ["", f"## {name}: held-out accuracy per attribute", "",
                  "Majority = accuracy of always guessing the attribute's more common value on the train split.", "",
                  "| attribute | accuracy | majority | gain |", "|---|---|---|---|"]
        order = [a for a in FOCUS_ATTRIBUTES if a in res["accuracy"]] + [a for a in res["accuracy"] if a not in FOCUS_ATTRIBUTES]
        for attr in order:
            acc, maj = res["accuracy"][attr], res["majority"][attr]
            label = f"**{attr}**" if attr in FOCUS_ATTRIBUTES else attr
            lines.append(f"| {label} | {acc:.2%} | {maj:.2%} | {acc - maj:+.2%} |")
    (assets_dir / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.dry_run:
        print(json.dumps({**vars(args), "preset": PRESETS[args.dataset],
                          "config": asdict(ClassifierConfig(**PRESETS[args.dataset]["model"]))}, indent=2))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    remeasure(args) if args.remeasure else train(args)
    if not args.no_readme:
        write_readme(Path(args.out).parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
