"""The `dcgan probe` and `dcgan forget` verbs (the paper's sections 5 and 6.3.1; dcgan.probe, dcgan.forget): thin
wrappers, listed in dcgan.cli.VERBS. Torch and the libraries load inside the verbs, so `dcgan --help` stays instant.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import DCGANError


def discriminator_of(path_text: str):
    """(D, info) from a discriminator .safetensors file, a folder holding discriminator.safetensors, or a run directory
    whose state.pt holds the D (read with weights_only=True)."""
    from . import checkpoints
    from .trainer import discriminator_from_state

    path = Path(path_text)
    if path.is_dir() and not (path / checkpoints.DISCRIMINATOR_FILE).is_file() and (path / checkpoints.STATE_FILE).is_file():
        state = checkpoints.load_state(path)
        D, cfg = discriminator_from_state(state)
        info = {"dataset": cfg.data.dataset, "step": state["step"]}
        return D, checkpoints.GeneratorInfo(cfg.model, info, str(path / checkpoints.STATE_FILE))
    return checkpoints.load_discriminator(path)


def cmd_probe(args) -> int:
    import torch

    from .metrics import load_split
    from .probe import parse_label_counts, run_probe

    counts = parse_label_counts(args.labels)
    D, meta = discriminator_of(args.checkpoint)
    dataset = args.dataset or meta.info.get("dataset")
    if not dataset:
        raise DCGANError(f"{meta.path}: its metadata names no data set; pass --dataset")
    torch.manual_seed(args.seed)
    size, channels = meta.model.image_size, meta.model.channels
    train = load_split(dataset, "train", root=args.data_root or "", image_size=size, channels=channels)
    test = load_split(dataset, "test", root=args.data_root or "", image_size=size, channels=channels)
    result = run_probe(D, meta.model, train, test, counts, draws=args.draws, seed=args.seed, max_iter=args.max_iter)
    result = {"checkpoint": meta.path, "dataset": dataset, "step": meta.info.get("step"), **result}
    print(f"{meta.path}: {dataset} test accuracy of a linear probe ({result['test_images']} test images; mean ± std over "
          f"{args.draws} class-balanced draws; {result['seconds']:.0f} s)")
    print(f"{'labels':>7}  " + "  ".join(f"{kind:>15}" for kind in result['labels'][next(iter(result['labels']))]))
    for n, row in result["labels"].items():
        print(f"{n:>7}  " + "  ".join(f"{100 * r['mean']:8.2f} ± {100 * r['std']:4.2f}" for r in row.values()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"{args.json}: written")
    return 0


def add_probe_arguments(p: argparse.ArgumentParser) -> None:
    from .probe import DRAWS, MAX_ITER

    p.description = ("D as a feature extractor (the paper's section 5): every conv layer of D max-pooled to 4x4, concatenated, "
                     "under an L2-regularised logistic regression trained on N labelled images (class-balanced draws); test "
                     "accuracy beside two controls measured in the same run: the same D architecture with random weights, and raw pixels.")
    p.add_argument("checkpoint",
                   help="discriminator .safetensors, a folder holding discriminator.safetensors, or a run directory (state.pt)")
    p.add_argument("--data-root", metavar="DIR", default=None, help="folder holding the data set [default: the user cache data folder]")
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist", "cifar10"), default=None, help="[default: the checkpoint's]")
    p.add_argument("--labels", default="100,1000", help="labelled training images per run, comma-separated; 'all' uses every one "
                   "(one draw; on 60k MNIST images: 6.5 CPU-minutes and 8.3 GB of memory)")
    p.add_argument("--draws", type=int, default=DRAWS, help="class-balanced draws per label count (mean ± std over them)")
    p.add_argument("--max-iter", type=int, default=MAX_ITER, help="L-BFGS iterations per fit")
    p.add_argument("--seed", type=int, default=0, help="first draw's seed (draw d uses SEED + d); also the random D's")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON here")
    p.set_defaults(func=cmd_probe)


def _stored_dtype(path: Path):
    """torch.float16 when every float tensor of the safetensors file at ``path`` is stored as F16, else torch.float32."""
    import torch

    from .io import read_header

    dtypes = {spec.get("dtype") for name, spec in read_header(path).items() if name != "__metadata__" and isinstance(spec, dict)}
    return torch.float16 if dtypes & {"F16", "F32", "BF16"} == {"F16"} else torch.float32


def cmd_forget(args) -> int:
    from . import checkpoints
    from .directions import shipped_classifier
    from .forget import forget_attribute
    from .images import save_png

    G, meta = checkpoints.load_generator(args.checkpoint)
    dataset = meta.info.get("dataset")
    classifier = shipped_classifier(dataset)
    if classifier is None:
        raise DCGANError(f"{meta.path}: no shipped classifier for data set {dataset!r}; forgetting needs one to find the attribute")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = forget_attribute(G, classifier, args.attribute, z_dim=meta.model.z_dim, layer=args.layer, count=args.maps,
                              target=args.target, rank=args.rank, renormalise=not args.no_renormalise, n_fit=args.n_fit, n_eval=args.n_eval,
                              fid_n=0 if args.no_fid else args.fid_n, dataset=dataset, root=args.data_root or "")
    plan, report = result.plan, result.report
    info = {**meta.info, "ablated": {"attribute": plan.attribute, "layer": plan.layer, "maps": plan.maps, "rank": plan.rank,
                                     "renormalised": not args.no_renormalise, "source": meta.path}}
    checkpoints.save_generator(result.generator, out / checkpoints.GENERATOR_FILE, model=meta.model, info=info,
                               dtype=_stored_dtype(Path(meta.path)))
    save_png(result.grid, out / "before_after.png")
    report = {"checkpoint": meta.path, "generator": str(out / checkpoints.GENERATOR_FILE), "grid": str(out / "before_after.png"), **report}
    (out / "forget.json").write_text(json.dumps(report, indent=2) + "\n")
    e = report["eval"]
    print(f"{meta.path}: forgot {plan.attribute} by dropping {len(plan.maps)} of layer {plan.layer}'s maps {plan.maps} ({plan.rank})")
    print(f"  {plan.attribute} vanished from {100 * e['vanished']:.0f}% of the {e['had']} held-out seeds that had it "
          f"(seeds {e['seeds'][0]}-{e['seeds'][1]})")
    for name in report["watch"]:
        r = e["rates"][name]
        print(f"  {name}: {100 * r['before']:.1f}% -> {100 * r['after']:.1f}% of all {e['seeds'][1] - e['seeds'][0] + 1} seeds")
    if "fid" in report:
        f = report["fid"]
        print(f"  classifier FID ({f['n']} samples): {f['before']:.3g} -> {f['after']:.3g} ({100 * f['rise']:+.0f}%)")
    print(f"{out}: generator.safetensors, forget.json, before_after.png")
    return 0


def add_forget_arguments(p: argparse.ArgumentParser) -> None:
    from .forget import RANKINGS, VANISH_TARGET

    p.description = ("Forgetting to draw (the paper's section 6.3.1): find the feature maps of one G layer that draw the attribute "
                     "where the shipped classifier's input gradient says it is, zero them everywhere, and write the ablated generator "
                     "(a normal generator file; the dropped maps in its metadata), forget.json and before_after.png.")
    p.add_argument("checkpoint", help="generator .safetensors file or folder")
    p.add_argument("--attribute", required=True, help="label of the data set's classifier, e.g. Eyeglasses or Smiling (celeba)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for generator.safetensors, forget.json and before_after.png")
    p.add_argument("--layer", type=int, default=None, help="G feature layer (0: 4x4) [default: the second-highest, as the paper]")
    p.add_argument("--maps", type=int, default=None,
                   help="drop this many maps (largest regression weights) [default: the fewest that make the attribute vanish "
                        "from --target of the fitting samples that have it]")
    p.add_argument("--target", type=float, default=VANISH_TARGET, help="share of fitting samples that must lose it (without --maps)")
    p.add_argument("--rank", choices=RANKINGS, default="attribution",
                   help="regression: the paper's logistic regression of map activations inside vs outside the attribute's region; "
                        "attribution: each map's contribution to the classifier's logit there, recomputed as maps are dropped")
    p.add_argument("--no-renormalise", action="store_true",
                   help="keep G's BatchNorm statistics after dropping maps (by default they are re-estimated, so the layers above "
                        "the missing maps see normalised inputs; the dropped maps stay exactly zero either way)")
    p.add_argument("--n-fit", type=int, default=4000, help="seeds 0..N-1 fit the regression and choose the maps")
    p.add_argument("--n-eval", type=int, default=4000, help="held-out seeds 1000000.. on which the report is measured")
    p.add_argument("--fid-n", type=int, default=4000, help="samples for classifier FID before and after")
    p.add_argument("--no-fid", action="store_true", help="skip FID (no real data needed)")
    p.add_argument("--data-root", metavar="DIR", default=None, help="folder holding the data set, for FID's real images")
    p.set_defaults(func=cmd_forget)
