"""Projection of held-out real images (dcgan.project): quality, identity under a slider edit, and speed.

Faces 9001-9100 of ../shared/data/celeba10k (the shipped celeba-64 trained on faces 1-10000 of which the metrics use
1-8000; these are never used for its directions or classifier picks) and the first MNIST test digits; faces against a naive
baseline: Adam on z with a pixel MSE only, from a random z. Prints a Markdown table for the README.

  OMP_NUM_THREADS=2 python bench/projection.py --json bench/projection.json --figure docs/projection.png
  OMP_NUM_THREADS=2 python bench/projection.py --timing-only --faces 5 --digits 0     # one face per call, 3 min
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dcgan.actions import edit_latent  # noqa: E402
from dcgan.checkpoints import load_generator  # noqa: E402
from dcgan.classifiers import load_classifier  # noqa: E402
from dcgan.directions import load_directions  # noqa: E402
from dcgan.images import make_grid, save_png  # noqa: E402
from dcgan.latent import latents_from_seeds  # noqa: E402
from dcgan.machine import cpu_name  # noqa: E402
from dcgan.project import MAX_IMAGES, PRESETS, ProjectionSettings, Projector, read_image  # noqa: E402
from dcgan.small_batch import TunedConv  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ATTRIBUTES = ("Smiling", "Male", "Eyeglasses")
EDIT = {"Smiling": 3.0}
BASELINE = ProjectionSettings(steps=300, candidates=1, perceptual_weight=0.0, embedding_weight=0.0, prior_weight=0.0)


def random_starts(n: int, z_dim: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(12345))


def prepare_all(projector: Projector, images: list) -> torch.Tensor:
    """``Projector.prepare`` for more images than one call takes (MAX_IMAGES), a call per chunk."""
    return torch.cat([projector.prepare(images[i : i + MAX_IMAGES]) for i in range(0, len(images), MAX_IMAGES)])


def project_in_batches(projector: Projector, target: torch.Tensor, settings: ProjectionSettings, *, batch: int,
                       z_start: torch.Tensor | None = None):
    """One Projection per batch (results do not depend on the batch), concatenated: (z, reconstruction, quality)."""
    zs, recs, quality = [], [], []
    for i in range(0, len(target), batch):
        start = None if z_start is None else z_start[i:i + batch]
        result = projector.project(target=target[i:i + batch], settings=settings, z_start=start)
        zs.append(result.z)
        recs.append(result.reconstruction)
        quality += result.quality
    return torch.cat(zs), torch.cat(recs), quality


def face_scores(classifier, G, directions, target, z, reconstruction, quality) -> dict:
    names = classifier.label_names
    columns = [names.index(a) for a in ATTRIBUTES]
    with torch.no_grad():
        p_orig = classifier.predict_proba(target) > 0.5
        p_rec = classifier.predict_proba(reconstruction) > 0.5
        edited = G(edit_latent(z, directions, EDIT))
        p_edit = classifier.predict_proba(edited) > 0.5
        held = edit_latent(z, directions, EDIT, ["Male"], G=G, classifier=classifier)  # the Sliders tab's "keep fixed: Male"
        kept = G(held)
        p_kept = classifier.predict_proba(kept) > 0.5
    male, smiling = names.index("Male"), names.index("Smiling")
    return {
        "psnr": statistics.fmean(q["psnr"] for q in quality),
        "feature_distance": statistics.fmean(q["feature_distance"] for q in quality),
        "agreement_all": float((p_orig == p_rec).float().mean()),
        **{f"agree_{a}": float((p_orig[:, c] == p_rec[:, c]).float().mean()) for a, c in zip(ATTRIBUTES, columns)},
        "edit_smiling": float(p_edit[:, smiling].float().mean()),
        "edit_male_kept": float((p_edit[:, male] == p_orig[:, male]).float().mean()),
        "edit_fixed_smiling": float(p_kept[:, smiling].float().mean()),
        "edit_fixed_male_kept": float((p_kept[:, male] == p_orig[:, male]).float().mean()),
    }, (edited, kept)


def bench_faces(args) -> dict:
    G, info = load_generator(ROOT / "checkpoints" / "celeba-64")
    classifier = load_classifier("celeba")
    directions = load_directions(ROOT / "checkpoints" / "celeba-64" / "directions.safetensors")
    folder = DATA / "celeba10k" / "img_align_celeba"
    paths = [folder / f"{i:06d}.jpg" for i in range(args.first_face, args.first_face + args.faces)]
    projector = Projector(G, z_dim=info.model.z_dim, classifier=classifier, dataset="celeba", candidates=PRESETS["full"].candidates)
    target = prepare_all(projector, [read_image(p) for p in paths])
    out: dict = {"images": f"celeba10k {paths[0].name}-{paths[-1].name}"}
    if not args.timing_only:
        out.update(face_quality(args, projector, classifier, directions, target, info.model.z_dim))
    out["timing"] = face_timing(args, projector, target)
    return out


def face_quality(args, projector: Projector, classifier, directions, target: torch.Tensor, z_dim: int) -> dict:
    out, figure = {}, {}
    G = projector.G
    for name, settings in (("baseline", BASELINE), *PRESETS.items()):
        start = random_starts(len(target), z_dim) if name == "baseline" else None
        t0 = time.perf_counter()
        z, rec, quality = project_in_batches(projector, target, settings, batch=args.batch, z_start=start)
        scores, edits = face_scores(classifier, G, directions, target, z, rec, quality)
        out[name] = {**scores, "seconds_per_image_batched": (time.perf_counter() - t0) / len(target)}
        figure[name] = (rec, edits)
        if name == "full" and args.figure:
            save_latents_figure(args, target, figure)
        print(f"faces {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in out[name].items()), flush=True)
    with torch.no_grad():  # the same edit on G's own samples: how much of any identity loss is the direction's
        z = latents_from_seeds(list(range(100)), z_dim)
        own = G(z)
    scores, _ = face_scores(classifier, G, directions, own, z, own, [{"psnr": 0.0, "feature_distance": 0.0}])
    out["seeds_0_99_edit"] = {k: v for k, v in scores.items() if k.startswith("edit_")}
    print(f"seeds 0-99 edited: {out['seeds_0_99_edit']}", flush=True)
    return out


@contextlib.contextmanager
def onednn_throughout(projector: Projector):
    """The projector's networks on PyTorch's default kernels for the duration: the baseline of the kernel choice."""
    layers = [m for net in (projector.G, projector.feature_net) for m in net.modules() if isinstance(m, TunedConv)]
    chosen = [set(m.native) for m in layers]
    for m in layers:
        m.native.clear()
    try:
        yield
    finally:
        for m, native in zip(layers, chosen):
            m.native.update(native)


def face_timing(args, projector: Projector, target: torch.Tensor) -> dict:
    """One face per call, as the app projects; fast also with oneDNN throughout, alternating faces, for the ratio
    (this machine's speed drifts by half within an hour, so only figures from the same run compare)."""
    timing = {}
    projector.tune(1)
    runs = [(name, PRESETS[name], contextlib.nullcontext) for name in PRESETS]
    runs.insert(1, ("fast_onednn_throughout", PRESETS["fast"], lambda: onednn_throughout(projector)))
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for i in range(args.timing_images):
        for name, settings, kernels in runs:
            if name == "sharp" and i >= args.timing_images_sharp:
                continue
            with kernels():
                t0 = time.perf_counter()
                projector.project(target=target[i:i + 1], settings=settings)
                times[name].append(time.perf_counter() - t0)
    for name, values in times.items():
        timing[name] = {"p50_s": statistics.median(values), "max_s": max(values), "n": len(values)}
        print(f"one face, {name}: p50 {statistics.median(values):.2f} s over {len(values)}", flush=True)
    print(f"the kernel choice: fast {timing['fast_onednn_throughout']['p50_s'] / timing['fast']['p50_s']:.2f}x "
          "faster than with oneDNN throughout", flush=True)
    return timing


def save_latents_figure(args, target: torch.Tensor, figure: dict) -> None:
    k = args.figure_faces
    rec, (edited, held) = figure["full"]
    save_png(make_grid(torch.cat([target[:k], figure["baseline"][0][:k], rec[:k], edited[:k], held[:k]]), nrow=k), Path(args.figure))
    print(f"{args.figure}: rows = originals, naive baseline, projections, +3 Smiling, +3 Smiling keeping Male", flush=True)


def bench_digits(args) -> dict:
    import torchvision

    G, info = load_generator(ROOT / "checkpoints" / "mnist")
    classifier = load_classifier("mnist")
    test = torchvision.datasets.MNIST(root=str(DATA), train=False, download=False)
    digits, labels = test.data[: args.digits].numpy(), test.targets[: args.digits]
    projector = Projector(G, z_dim=info.model.z_dim, classifier=classifier, dataset="mnist", candidates=PRESETS["full"].candidates)
    target = prepare_all(projector, list(digits))
    out: dict = {"images": f"MNIST test 0-{args.digits - 1}"}
    for name, settings in PRESETS.items():
        t0 = time.perf_counter()
        _, rec, quality = project_in_batches(projector, target, settings, batch=args.batch)
        with torch.no_grad():
            judged = classifier.predict_proba(rec).argmax(1)
        out[name] = {"psnr": statistics.fmean(q["psnr"] for q in quality),
                     "same_class": statistics.fmean(q["agreement"] for q in quality),
                     "true_label": float((judged == labels).float().mean()),
                     "seconds_per_image_batched": (time.perf_counter() - t0) / len(target)}
        print(f"digits {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in out[name].items()), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100, help="held-out faces, from --first-face")
    parser.add_argument("--first-face", type=int, default=9001)
    parser.add_argument("--digits", type=int, default=100, help="MNIST test digits 0..N-1")
    parser.add_argument("--batch", type=int, default=25, help="images per projection call in the quality runs")
    parser.add_argument("--timing-images", type=int, default=5, help="faces projected one at a time for the p50")
    parser.add_argument("--timing-images-sharp", type=int, default=2, help="the same for the sharp mode")
    parser.add_argument("--timing-only", action="store_true", help="faces: only the one-face-per-call timings (--faces "
                        "needs only --timing-images of them)")
    parser.add_argument("--figure", default=None, help="PNG: originals / baseline / projections / +3 Smiling / the same keeping Male")
    parser.add_argument("--figure-faces", type=int, default=8)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    header = {"cpu": cpu_name(), "platform": platform.platform(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "load_average_at_start": os.getloadavg()[0], "command": " ".join(["python", *sys.argv]),
              "presets": {name: dataclasses.asdict(settings) for name, settings in PRESETS.items()}}
    print(json.dumps(header), flush=True)
    result = {**header, "faces": bench_faces(args) if args.faces else None, "digits": bench_digits(args) if args.digits else None}
    result["load_average_at_end"] = os.getloadavg()[0]  # the machine is shared: the timings are worst-case-ish
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"{args.json}: written")


if __name__ == "__main__":
    main()
