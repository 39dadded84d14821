"""The `dcgan` command: one verb per action, each a thin wrapper over the library; `main(argv) -> exit code`.

Examples:
  dcgan train --dataset mnist --data-root ../shared/data --arch keras --max-minutes 30 --out runs/mnist
  dcgan train --dataset celeba --data-root ../shared/data/celeba10k --image-size 64 --epochs 25
  dcgan train --resume runs/mnist --max-steps 20000
  dcgan sample runs/mnist --seeds 0-63 --out grid.png
  dcgan sample checkpoints/celeba-64 --seeds 0-49999 --out faces.npy
  dcgan edit checkpoints/celeba-64 --seed 42 --amount Smiling=3 --keep-fixed Male --out smile.png
  dcgan arithmetic checkpoints/celeba-64 --preset "smiling woman" --out arithmetic/
  dcgan interpolate checkpoints/celeba-64 --keyframes 1,2,3 --frames 16 --out walk.mp4
  dcgan nearest checkpoints/mnist --seed 7 --data-root ../shared/data --out row.png
  dcgan project me.jpg --checkpoint checkpoints/celeba-64 --out me.npy --preview me.png
  dcgan sample checkpoints/celeba-64 --latents me.npy --out me-again.png
  dcgan encoder checkpoints/celeba-64 --steps 6000
  dcgan directions checkpoints/celeba-64 --list
  dcgan export runs/mnist --out mnist.safetensors --fp16
  dcgan export checkpoints/mnist --onnx mnist.onnx
  dcgan push checkpoints/mnist user/dcgan-mnist --dry-run --out hub-folder
  dcgan sample hf://user/dcgan-mnist --seeds 0-63 --out grid.png
  dcgan train --dataset mnist --max-steps 2000 --tensorboard --out runs/mnist-tb
  dcgan eval runs/mnist --n 10000 --json mnist-eval.json
  dcgan probe runs/mnist --data-root ../shared/data --labels 100,1000 --json probe.json
  dcgan forget checkpoints/celeba-64 --attribute Eyeglasses --layer 1 --out runs/no-glasses
  torchrun --nproc_per_node=2 -m dcgan train --dataset cifar10 --data-root data --image-size 32

`dcgan VERB --help` lists a verb's options with their defaults.
"""
from __future__ import annotations

# Only light modules at the top: torch and the data sets are imported inside the verbs, so `dcgan --help` is instant.
import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from . import cli_images, cli_inside
from .config import TrainConfig
from .errors import ConfigError, DCGANError

log = logging.getLogger("dcgan")


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .config import ARCHITECTURES, D_NORMS, R1_EVERY, SWITCHES, DataConfig, ModelConfig
    from .datasets import DATASETS, KERAS_IMAGE_SIZE, default_data_root

    m, d, t = ModelConfig(), DataConfig(), TrainConfig()
    p.description = "Train a DCGAN; writes a run directory (config.json, metrics.jsonl, samples/, state.pt, generator.safetensors)."
    # data
    p.add_argument("--dataset", choices=sorted(DATASETS), default=d.dataset, help="data set to train on")
    p.add_argument("--data-root", metavar="DIR", default=str(default_data_root()), help="folder holding the data set")
    p.add_argument("--download", action="store_true", help="let torchvision download mnist/fashion-mnist/cifar10 if missing")
    p.add_argument("--max-images", type=int, metavar="N", default=None, help="use only the first N images")
    # model
    p.add_argument("--arch", choices=ARCHITECTURES, default=m.arch, help="dcgan: the paper's nets; keras: the 28x28 Keras-GAN seed nets")
    sizes = ", ".join(f"{name} {spec.train_size}" for name, spec in DATASETS.items())
    p.add_argument("--image-size", type=int, metavar="PX", default=None,
                   help=f"image side (dcgan: power of two 16-256; keras: {KERAS_IMAGE_SIZE}) "
                        f"[default: {KERAS_IMAGE_SIZE} with keras; with dcgan {sizes}]")
    channels = ", ".join(f"{name} {spec.channels}" for name, spec in DATASETS.items())
    p.add_argument("--channels", type=int, choices=(1, 3), default=None, help=f"[default: the data set's own: {channels}]")
    p.add_argument("--z-dim", type=int, metavar="N", default=m.z_dim, help="latent size")
    p.add_argument("--ngf", type=int, metavar="N", default=m.ngf, help="generator width")
    p.add_argument("--ndf", type=int, metavar="N", default=m.ndf, help="discriminator width")
    p.add_argument("--d-norm", choices=D_NORMS, default=m.d_norm,
                   help="D's normalisation: batch (the paper) or spectral (spectral norm, no BatchNorm in D)")
    # optimisation and stopping
    p.add_argument("--batch-size", type=int, metavar="N", default=t.batch_size, help="images per step per process")
    p.add_argument("--lr", type=float, default=t.lr, help="Adam learning rate (G's, and D's unless --lr-d is given)")
    p.add_argument("--lr-d", type=float, default=None, help="D's own Adam learning rate (two time-scale updates) [default: --lr]")
    p.add_argument("--beta1", type=float, default=t.beta1, help="Adam beta1")
    p.add_argument("--epochs", type=float, default=None, help="stop after this many epochs")
    p.add_argument("--max-steps", type=int, metavar="N", default=None, help="stop after N generator updates")
    p.add_argument("--max-minutes", type=float, metavar="MIN", default=None, help="stop after this much wall-clock time")
    p.add_argument("--lr-decay-from", type=int, metavar="STEP", default=None,
                   help="from this step lr falls linearly to 0 at the last step "
                        "(needs --max-steps or --epochs; may be set on --resume)")
    p.add_argument("--ema-decay", type=float, default=t.ema_decay, help="EMA decay of G's weights (0: off)")
    p.add_argument("--label-smoothing", type=float, default=t.label_smoothing,
                   help="one-sided: D's target for real images is 1 - this (0: the paper)")
    p.add_argument("--r1-gamma", metavar="GAMMA", type=float, default=None,
                   help=f"R1 gradient penalty (Mescheder et al. 2018) on real images, gamma/2 |grad D(x)|^2, computed every "
                        f"{R1_EVERY} steps (lazy, as StyleGAN2); keeps D from memorising a small data set (may be set on "
                        "--resume) [default: 0, off, the paper]")
    p.add_argument("--augment", metavar="POLICY", default=None,
                   help="DiffAugment (Zhao et al. 2020) on every image D sees, real and fake: color, translation, cutout, "
                        "combined with commas; helps most on small data sets (may be set on --resume) [default: off, the paper]")
    p.add_argument("--flip", choices=SWITCHES, default=None,
                   help="random left-right flips of real images; auto: on for celeba, cifar10 and folders, off for mnist and "
                        "fashion-mnist, where a mirrored digit or garment is not one (may be set on --resume) [default: auto]")
    p.add_argument("--init-from", metavar="CHECKPOINT", default=None,
                   help="start from this checkpoint's generator (a .safetensors file, run or checkpoint folder, hf://...) and "
                        "from its discriminator.safetensors where it has one, instead of random weights: fine-tune a shipped "
                        "model; the model options must match it")
    p.add_argument("--freeze-generator", action="store_true", default=None,
                   help="with --init-from: train only D, against that fixed generator (in eval mode, as it ships), and "
                        "export the generator unchanged: gives a generator whose own D was lost a discriminator")
    p.add_argument("--seed", type=int, default=t.seed, help="seeds weights, data order and noise")
    # hardware
    p.add_argument("--device", default=t.device, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--bf16", choices=SWITCHES, default=t.bf16, help="bf16 autocast (auto: on CUDA and AVX512-BF16 CPUs)")
    p.add_argument("--channels-last", choices=SWITCHES, default=t.channels_last,
                   help="channels_last memory format (auto: on CPUs, and on CUDA with bf16)")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D")
    # outputs
    p.add_argument("--out", metavar="RUN_DIR", default=None, help="run directory [default: runs/NNNNN-<dataset>-<size>]")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue this run exactly (its saved options; stopping rules and --lr-decay-from may be changed)")
    p.add_argument("--log-every", type=int, metavar="N", default=t.log_every, help="steps between metrics.jsonl lines")
    p.add_argument("--sample-every", type=int, metavar="N", default=t.sample_every, help="steps between preview grids")
    p.add_argument("--checkpoint-every", type=int, metavar="N", default=t.checkpoint_every, help="steps between checkpoints")
    p.add_argument("--keep-generators", action="store_true", default=None,
                   help="also keep every checkpoint's generator as RUN_DIR/generators/step-NNNNNNN.safetensors (and its D "
                        "beside it), to score them with dcgan eval and ship the best (may be set on --resume)")
    p.add_argument("--eval-every", type=int, metavar="N", default=t.eval_every, help="steps between quality metrics (0: off)")
    p.add_argument("--tensorboard", metavar="DIR", nargs="?", const="", default=None,
                   help="also write TensorBoard events (the logged scalars, quality metrics, preview grids) to DIR "
                        "[default without DIR: RUN_DIR/tensorboard; needs the tensorboard extra]")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="take every model, data and training option from this RunConfig JSON (a run's config.json; unknown keys are "
                        "refused); only --out and --dry-run may be given beside it")
    p.add_argument("--dry-run", action="store_true", help="print the resolved options as JSON and exit")
    p.set_defaults(func=cmd_train)


def _train_config(args):
    import dataclasses

    from .config import DataConfig, ModelConfig, RunConfig
    from .datasets import DATASETS

    spec = DATASETS[args.dataset]
    image_size = args.image_size or spec.default_image_size(args.arch)
    channels = args.channels or spec.channels
    return RunConfig(
        model=ModelConfig.from_dict(dict(arch=args.arch, image_size=image_size, channels=channels, z_dim=args.z_dim, ngf=args.ngf,
                                         ndf=args.ndf, d_norm=args.d_norm)),
        data=DataConfig.from_dict(dict(dataset=args.dataset, root=args.data_root, download=args.download, max_images=args.max_images)),
        train=TrainConfig.from_dict({f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                                     if getattr(args, f.name, None) is not None}),
    )


RESUME_OVERRIDES = ("epochs", "max_steps", "max_minutes", "lr_decay_from",
                    "keep_generators", "augment", "flip", "r1_gamma")  # how long, how it ends, what it keeps and sees
BESIDE_CONFIG = ("config", "out", "dry_run", "verbose", "tensorboard")  # the flags --config leaves meaningful


def _config_file(args):
    """The RunConfig of --config FILE, refusing any other option given with it (the file holds them all)."""
    from . import rundir

    defaults = vars(build_parser(["train"]).parse_args(["train"]))
    given = sorted(k for k, v in vars(args).items() if k in defaults and k not in BESIDE_CONFIG and v != defaults[k])
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise DCGANError(f"--config {args.config} holds every option; drop {flags} or change the file")
    return rundir.read_config(Path(args.config))


def cmd_train(args) -> int:
    from . import checkpoints, rundir
    from .trainer import fit, resume_config

    if args.resume and args.config:
        raise DCGANError("--resume continues a run with its saved options; it cannot take --config too")
    if args.resume:
        run_dir = Path(args.resume)
        cfg = resume_config(run_dir, {k: getattr(args, k) for k in RESUME_OVERRIDES if getattr(args, k) is not None})
    else:
        cfg = _config_file(args) if args.config else _train_config(args)
        run_dir = Path(args.out) if args.out else rundir.next_run_dir(Path("runs"), f"{cfg.data.dataset}-{cfg.model.image_size}")
    if args.dry_run:
        print(json.dumps({"run_dir": str(run_dir), **cfg.to_dict()}, indent=2))
        return 0
    if not (cfg.train.epochs or cfg.train.max_steps or cfg.train.max_minutes):
        raise DCGANError("give a stopping rule: --epochs, --max-steps or --max-minutes")
    if not args.resume and (run_dir / checkpoints.STATE_FILE).exists():
        raise DCGANError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it or pick another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    tensorboard_dir = None if args.tensorboard is None else Path(args.tensorboard or run_dir / "tensorboard")
    record = fit(cfg, run_dir, resume=bool(args.resume), tensorboard_dir=tensorboard_dir)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"{run_dir}: step {record.get('step')}, {record.get('images_seen')} images seen, {record.get('img_per_s')} img/s")
    return 0


def train_argv(config_path: Path, run_dir: Path) -> list[str]:
    """`dcgan` arguments that train the RunConfig saved at ``config_path`` into ``run_dir`` (for launchers such as the app)."""
    return ["train", "--config", str(config_path), "--out", str(run_dir)]


def resume_argv(run_dir: Path, overrides: dict[str, Any]) -> list[str]:
    """`dcgan` arguments that resume ``run_dir`` with new values for some of RESUME_OVERRIDES, checked here (unknown
    names, wrong types and bad values raise ConfigError) rather than in the trainer's process."""
    unknown = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if unknown:
        raise ConfigError(f"{unknown} cannot be changed on resume; only {list(RESUME_OVERRIDES)} can")
    TrainConfig.from_dict(overrides)
    argv = ["train", "--resume", str(run_dir)]
    for name, value in overrides.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):  # a store_true flag: it can switch an option on, never off
            if not value:
                raise ConfigError(f"{name}: a resumed run can switch it on ({flag}) but not off")
            argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv


def cmd_export(args) -> int:
    import torch

    from . import checkpoints
    from .trainer import discriminator_from_state, generator_from_state, images_seen

    if args.onnx:
        return _export_onnx(args)
    state = checkpoints.load_state(Path(args.run_dir))
    G, cfg = generator_from_state(state, raw=args.raw)
    out = Path(args.out) if args.out else Path(args.run_dir) / checkpoints.GENERATOR_FILE
    info = {"dataset": cfg.data.dataset, "step": state["step"], "world_size": state["world_size"],
            "images_seen": images_seen(state["step"], cfg.train.batch_size, state["world_size"])}
    dtype = torch.float16 if args.fp16 else torch.float32
    checkpoints.save_generator(G, out, model=cfg.model, info=info, dtype=dtype)
    print(f"{out}: generator of step {state['step']} ({'raw G' if args.raw else 'EMA'})")
    if not args.no_discriminator:
        D, _ = discriminator_from_state(state)
        d_out = checkpoints.discriminator_beside(out)
        checkpoints.save_discriminator(D, d_out, model=cfg.model, info=info, dtype=dtype)
        print(f"{d_out}: discriminator of step {state['step']} (for dcgan probe and the Inside tab)")
    return 0


def _export_onnx(args) -> int:
    import dataclasses

    from .checkpoints import load_generator
    from .hub import local_checkpoint
    from .onnx_export import CHECK_SEEDS, OPSET, TOLERANCE, export_checked

    given = [flag for flag, value in (("--out", args.out), ("--fp16", args.fp16), ("--raw", args.raw)) if value]
    if given:
        raise DCGANError(f"--onnx writes the checkpoint's generator.safetensors as float32 ONNX; drop {', '.join(given)}")
    G, meta = load_generator(local_checkpoint(args.run_dir))
    for name in ("onnxscript", "onnx_ir"):  # the exporter's optimiser logs every pass at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    error = export_checked(G, args.onnx, z_dim=meta.model.z_dim, metadata={"model": dataclasses.asdict(meta.model), "info": meta.info})
    m = meta.model
    print(f"{args.onnx}: ONNX (opset {OPSET}) generator of {meta.path}, input z [N, {m.z_dim}], output x [N, {m.channels}, "
          f"{m.image_size}, {m.image_size}] in [-1, 1]; onnxruntime matches torch to {error:.1e} "
          f"(limit {TOLERANCE:g}) on seeds {CHECK_SEEDS.start}-{CHECK_SEEDS.stop - 1}")
    return 0


def cmd_push(args) -> int:
    from .hub_push import push, write_push_folder

    if args.dry_run != bool(args.out):
        raise DCGANError("--dry-run writes the upload folder to --out DIR instead of uploading: give both or neither")
    if args.dry_run:
        names = write_push_folder(args.checkpoint, Path(args.out), args.repo_id)
        print(f"{args.out}: {', '.join(names)} (what `dcgan push` would upload to {args.repo_id}; nothing was uploaded)")
        return 0
    print(f"{args.repo_id}: pushed, {push(args.checkpoint, args.repo_id, private=args.private)}")
    return 0


def cmd_directions(args) -> int:
    from .checkpoints import load_generator
    from .directions import compute_directions, directions_path, generator_fingerprint, load_or_compute_directions, save_directions
    from .hub import is_hub_url, local_checkpoint

    if is_hub_url(args.checkpoint) and not args.out and not args.list:
        raise DCGANError(f"{args.checkpoint}: give --out FILE (directions are not written into the Hugging Face cache)")
    if args.list:
        options = (("--k", args.k, 10), ("--n", args.n, 5000), ("--no-classifier", args.no_classifier, False), ("--out", args.out, None))
        given = [flag for flag, value, default in options if value != default]
        if given:
            raise DCGANError(f"--list shows the directions the app and `dcgan edit` use; {', '.join(given)} only mean something "
                             "when computing them (drop --list)")
    G, meta = load_generator(args.checkpoint)
    if args.list:  # the app's /directions: the file beside the checkpoint, computed there first if it is missing or stale
        local = local_checkpoint(args.checkpoint)
        directions = load_or_compute_directions(local, G, meta)
        out = directions_path(local)
    else:
        directions = compute_directions(G, meta, k=args.k, n=args.n, labelled=not args.no_classifier)
        out = Path(args.out) if args.out else directions_path(args.checkpoint)
        save_directions(directions, out, fingerprint=generator_fingerprint(G))
    width = max(len(d.name) for d in directions)
    print(f"{'name':<{width}}  {'kind':<9}  strength  label")
    for d in directions:
        print(f"{d.name:<{width}}  {d.kind:<9}  {d.strength:8.4f}  {d.label}")
    print(f"{out}: {len(directions)} directions for {meta.path}")
    return 0


def cmd_eval(args) -> int:
    from .checkpoints import load_generator
    from .classifiers import CLASSIFIER_DATASETS
    from .hub import local_checkpoint
    from .metrics import evaluate

    args.checkpoint = local_checkpoint(args.checkpoint)  # --arithmetic finds (or writes) the directions beside it
    G, meta = load_generator(args.checkpoint)
    dataset = args.dataset or meta.info.get("dataset")
    if not dataset:
        raise DCGANError(f"{meta.path}: its metadata names no data set; pass --dataset {' or '.join(CLASSIFIER_DATASETS)}")
    classifier = _arithmetic_classifier(args, dataset)  # refused before the slow part
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    result = evaluate(G, dataset, n=args.n, seed=args.seed, z_dim=meta.model.z_dim, root=args.data_root or "", metrics=metrics)
    result = {"checkpoint": meta.path, **result}
    print(f"{meta.path}: {dataset}, {args.n} samples (seeds {args.seed}-{args.seed + args.n - 1}); real floor: "
          f"{result['floor_n']['held_out']} held-out vs {result['floor_n']['reference']} train images")
    width = max(len(k) for k in result["metrics"])
    print(f"{'metric':<{width}}  {'value':>10}  {'real floor':>10}  {'ratio':>8}")
    for key, value in result["metrics"].items():
        floor = result["floor"][key]
        ratio = f"{value / floor:8.2f}" if floor > 0 else f"{'-':>8}"  # KID's unbiased floor can dip below 0
        print(f"{key:<{width}}  {value:10.4g}  {floor:10.4g}  {ratio}")
    if args.arithmetic:
        result.update(_edit_metrics(args, G, meta, classifier, dataset))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"{args.json}: written")
    return 0


def _arithmetic_classifier(args, dataset: str):
    """With --arithmetic, the data set's attribute classifier (else None); a DCGANError says why it cannot run."""
    from .classifiers import load_classifier
    from .directions import MAX_AMOUNT
    from .edit_metrics import AMOUNT, DRAWS, presets_for

    if not args.arithmetic:
        given = [flag for flag, value, default in (("--draws", args.draws, DRAWS), ("--slider-amount", args.slider_amount, AMOUNT))
                 if value != default]
        if given:
            raise DCGANError(f"{' and '.join(given)} only mean something with --arithmetic; add it or drop them")
        return None
    if args.draws < 1:
        raise DCGANError(f"--draws {args.draws}: give at least 1 draw")
    if not abs(args.slider_amount) <= MAX_AMOUNT:
        raise DCGANError(f"--slider-amount {args.slider_amount}: give a number within ±{MAX_AMOUNT}")
    classifier = load_classifier(dataset)
    if classifier.kind != "attributes" or not presets_for(classifier):
        kind = "a class" if classifier.kind == "classes" else "an attribute"
        raise DCGANError(f"--arithmetic: {dataset} has {kind} classifier and no arithmetic presets; the arithmetic and slider "
                         f"success rates need an attribute classifier with presets (celeba). Drop --arithmetic for the quality metrics.")
    return classifier


def _edit_metrics(args, G, meta, classifier, dataset: str) -> dict[str, Any]:
    """{"arithmetic": {preset: arithmetic_success dict}, "sliders": slider_success dict}, printed as two tables."""
    from .actions import PRESET_SEARCH
    from .classifiers import load_judge
    from .directions import load_or_compute_directions
    from .edit_metrics import COUNT, SEARCH, SLIDER_N, arithmetic_successes, preset_attributes, presets_for, slider_success
    from .ratings import load_or_rate_seeds

    z_dim = meta.model.z_dim
    presets = presets_for(classifier)
    pool = load_or_rate_seeds(args.checkpoint, G, classifier, PRESET_SEARCH, z_dim=z_dim)
    judge = load_judge(dataset)
    scores = arithmetic_successes(G, classifier, presets, draws=args.draws, search=SEARCH, count=COUNT, z_dim=z_dim, pool=pool,
                                  judge=judge)
    judged_by = "the second classifier (celeba-judge), which the picks never saw" if judge is not None else "the picking classifier"
    print(f"\narithmetic A - B + C, {args.draws} draws of {COUNT} exemplars per group, each from its own "
          f"{SEARCH} seeds (seeds 0-{args.draws * SEARCH - 1}), the result's boundaries fitted on the app's ratings of "
          f"seeds 0-{PRESET_SEARCH - 1}; a draw succeeds when G(Y) shows every wanted attribute, judged by {judged_by}")
    for name, s in zip(presets, scores):
        low, high = s["ci95"]
        parts = ", ".join(f"{k}={'yes' if v else 'no'} {100 * s['attributes'][k]:.0f}%" for k, v in s["wanted"].items())
        picker = f"; by the picking classifier {100 * s['picker']['rate']:.0f}%" if "picker" in s else ""
        print(f"  {name}: {100 * s['rate']:.0f}% ({s['successes']}/{s['draws']}, 95% CI {100 * low:.0f}-{100 * high:.0f}%); "
              f"{parts}{picker}")
    wanted = preset_attributes(presets)
    directions = [d for d in load_or_compute_directions(args.checkpoint, G, meta, classifier) if d.kind == "attribute" and d.name in wanted]
    result = {"arithmetic": dict(zip(presets, scores))}
    if not directions:
        print(f"sliders: none of {wanted} has a labelled direction for this generator")
        return result
    sliders = slider_success(G, classifier, directions, amount=args.slider_amount, n=SLIDER_N, z_dim=z_dim)
    print(f"\nsliders: seeds without the attribute (of seeds 0-{SLIDER_N - 1}) that gain it at amount {args.slider_amount:g}")
    width = max(len(d.name) for d in directions)
    print(f"  {'direction':<{width}}  {'without':>7}  {'gained':>6}  {'rate':>5}  95% CI")
    for name, s in sliders["directions"].items():
        rate = f"{100 * s['rate']:4.0f}%" if s["rate"] is not None else f"{'-':>5}"
        print(f"  {name:<{width}}  {s['without']:7d}  {s['gained']:6d}  {rate}  {100 * s['ci95'][0]:.0f}-{100 * s['ci95'][1]:.0f}%")
    result["sliders"] = sliders
    return result


def cmd_project(args) -> int:
    import torch

    from .checkpoints import load_generator
    from .encoder import encoder_for
    from .images import make_grid, save_png
    from .io import atomic_write_bytes
    from .project import INPUT_ADVICE, PRESETS, project, read_image, save_latents

    images = [read_image(path) for path in args.images]  # a bad image is refused before the model is loaded
    G, meta = load_generator(args.checkpoint)
    dataset = meta.info.get("dataset")
    encoder = None if args.no_encoder else encoder_for(meta.path, G)
    result = project(G, images, z_dim=meta.model.z_dim, dataset=dataset, settings=PRESETS[args.mode], encoder=encoder)
    atomic_write_bytes(save_latents(result.z), Path(args.out))
    if args.preview:
        save_png(make_grid(torch.cat([result.target, result.reconstruction]), nrow=len(images)), Path(args.preview))
    print(f"{'image':<24}  {'psnr':>6}  {'feat.dist':>9}  {'agreement':>9}")
    for path, q in zip(args.images, result.quality):
        agreement = f"{100 * q['agreement']:8.0f}%" if "agreement" in q else f"{'-':>9}"
        distance = f"{q['feature_distance']:9.3f}" if "feature_distance" in q else f"{'-':>9}"
        print(f"{Path(path).name[-24:]:<24}  {q['psnr']:6.2f}  {distance}  {agreement}")
    advice = INPUT_ADVICE.get(dataset or "")
    start = "the encoder's guess" if encoder is not None else "the best seeded latent"
    print(f"{args.out}: latents [{len(images)}, {meta.model.z_dim}] for {meta.path} (started from {start})")
    if args.preview:
        print(f"{args.preview}: originals above reconstructions")
    if advice:
        print(f"works best with {advice}")
    return 0


def cmd_encoder(args) -> int:
    import time

    from .checkpoints import load_generator
    from .config import DataConfig
    from .datasets import build
    from .directions import generator_fingerprint, shipped_classifier
    from .encoder import EncoderTraining, encoder_path, load_encoder, save_encoder, train_encoder
    from .hub import is_hub_url

    if is_hub_url(args.checkpoint) and not args.out:
        raise DCGANError(f"{args.checkpoint}: give --out FILE (an encoder is not written into the Hugging Face cache)")
    training = EncoderTraining(steps=args.steps, batch=args.batch, lr=args.lr, pixel_weight=args.pixel_weight,
                               real_weight=args.real_weight, seed=args.seed, max_minutes=args.max_minutes)
    training.validate()  # bad options are refused before the model is loaded
    init = load_encoder(args.init) if args.init else None
    G, meta = load_generator(args.checkpoint)
    out = Path(args.out) if args.out else encoder_path(meta.path)
    real = classifier = None
    if args.data_root:
        dataset = args.dataset or meta.info.get("dataset")
        if not dataset:
            raise DCGANError(f"{meta.path}: its metadata names no data set; give --dataset")
        data = DataConfig(dataset=dataset, root=args.data_root, max_images=args.max_images)
        real = build(data, meta.model.image_size, meta.model.channels).images
        classifier = shipped_classifier(dataset)
        print(f"{len(real)} real {dataset} images from {args.data_root}", flush=True)
    started, shown = time.monotonic(), [0.0]

    def progress(done: int, total: int, loss: float) -> None:
        if done == total or time.monotonic() - shown[0] > 10:
            shown[0] = time.monotonic()
            print(f"step {done}/{total}  loss {loss:.4f}  {time.monotonic() - started:.0f} s", flush=True)

    E, record = train_encoder(G, z_dim=meta.model.z_dim, training=training, width=args.width, real=real, classifier=classifier,
                              init=init, progress=progress)
    save_encoder(E, out, fingerprint=generator_fingerprint(G), training=record)
    real_note = f", real-image pixel MSE {record['real_pixel_mse']}" if real is not None else ""
    print(f"{out}: encoder for {meta.path} ({record['steps']} steps in {record['minutes']} min, latent MSE {record['latent_mse']}, "
          f"pixel MSE {record['pixel_mse']}{real_note}); `dcgan project` and the app start from it")
    return 0


def _add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory holding state.pt (with --onnx: any generator checkpoint, also hf://user/repo)")
    p.add_argument("--out", default=None, help="output .safetensors [default: RUN_DIR/generator.safetensors]")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    p.add_argument("--raw", action="store_true", help="export the raw G instead of its EMA")
    p.add_argument("--no-discriminator", action="store_true",
                   help="skip D (by default it is written beside the generator: DIR/discriminator.safetensors, "
                        "or X.discriminator.safetensors beside X.safetensors)")
    p.add_argument("--onnx", metavar="FILE", default=None,
                   help="write the generator as ONNX instead (input z [N, z_dim], dynamic batch, opset 18), checked against "
                        "torch with onnxruntime on seeds 0-63; needs the onnx extra")
    p.set_defaults(func=cmd_export)


def _add_push_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Upload a checkpoint folder (generator, discriminator and directions if present, metrics, samples, config, and "
                     "the model card with the Hub's front matter) with HfApi.upload_folder; the token is huggingface_hub's "
                     "(HF_TOKEN or `hf auth login`). Needs the hub extra.")
    p.add_argument("checkpoint", help="checkpoint folder, run directory or generator .safetensors file")
    p.add_argument("repo_id", help="Hub model repo, user/repo (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    p.add_argument("--dry-run", action="store_true", help="upload nothing; write the folder that would be uploaded to --out")
    p.add_argument("--out", metavar="DIR", default=None, help="with --dry-run: the (new or empty) folder to write")
    p.set_defaults(func=cmd_push)


def _add_directions_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Compute SeFa, PCA and (with a classifier for the data set) labelled latent directions and write them beside "
                     "the checkpoint; or, with --list, show the ones the app and `dcgan edit` use.")
    p.add_argument("checkpoint", help="generator .safetensors file, run directory or hf://user/repo[@revision]")
    p.add_argument("--list", action="store_true",
                   help="list the directions beside the checkpoint (the app's /directions; computed and saved first if missing)")
    p.add_argument("--k", type=int, metavar="N", default=10, help="SeFa and PCA directions each (at most z_dim)")
    p.add_argument("--n", type=int, metavar="N", default=5000, help="latents sampled for PCA and labelled directions")
    p.add_argument("--no-classifier", action="store_true", help="SeFa and PCA only, even if a classifier exists")
    p.add_argument("--out", default=None,
                   help="output file [default: DIR/directions.safetensors or X.directions.safetensors beside the checkpoint]")
    p.set_defaults(func=cmd_directions)


def _add_eval_arguments(p: argparse.ArgumentParser) -> None:
    from .classifiers import CLASSIFIER_DATASETS
    from .edit_metrics import AMOUNT, COUNT, DRAWS, SEARCH, SLIDER_N

    p.description = ("Classifier FID, KID, precision/recall, inception-style score and class/attribute rates of generated samples, "
                     "each beside the score of held-out real images (the floor).")
    p.add_argument("checkpoint", help="generator .safetensors file, run directory or hf://user/repo[@revision]")
    p.add_argument("--n", type=int, metavar="N", default=10000, help="samples to generate (seeds SEED..SEED+N-1)")
    p.add_argument("--seed", type=int, default=0, help="first latent seed")
    p.add_argument("--dataset", choices=CLASSIFIER_DATASETS, default=None, help="data set to compare with [default: the checkpoint's]")
    p.add_argument("--data-root", metavar="DIR", default=None, help="folder holding the data set [default: the user cache data folder]")
    p.add_argument("--metrics", default=None, help="comma-separated subset of fid,kid,pr,inception,hist [default: all]")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results (and floors) as JSON here")
    # editing metrics
    p.add_argument("--arithmetic", action="store_true",
                   help=f"also measure the paper's face arithmetic and the attribute sliders (celeba only: mnist and fashion-mnist have "
                        f"class classifiers and no presets). Per preset, each draw picks {COUNT} exemplars per group from its own "
                        f"{SEARCH} seeds as the app's presets do (README: how a preset picks its exemplars), renders "
                        f"mean(A) - mean(B) + mean(C) and counts a success when it shows every wanted attribute, judged by a "
                        f"second classifier the picks never saw (celeba-judge; the picking classifier's verdict beside it): the "
                        f"success rate with a "
                        f"95%% Wilson interval, and per attribute. Sliders: "
                        f"the share of seeds 0-{SLIDER_N - 1} without Smiling, Male, Eyeglasses, Blond_Hair or Black_Hair that gain "
                        f"it at --slider-amount. Time on celeba-64, 2 CPU cores shared with a training run: 12-30 s per draw (the presets "
                        f"share each draw's rated seeds), so 100 draws take 20-50 min; the sliders add ~30 s")
    p.add_argument("--draws", type=int, metavar="N", default=DRAWS, help="independent exemplar draws per preset (with --arithmetic)")
    p.add_argument("--slider-amount", type=float, metavar="A", default=AMOUNT,
                   help="how far seeds are moved along each unit attribute direction (with --arithmetic)")
    p.set_defaults(func=cmd_eval)


def _add_project_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Project images into a generator's latent space (best of K seeded starts, then Adam on z with pixel, "
                     "classifier-feature and prior losses); print PSNR, feature distance and attribute/class agreement per image. "
                     "Faces get CelebA's crop; digits become grey on black.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size up to 4096 px a side, any mode)")
    p.add_argument("--checkpoint", required=True, help="generator .safetensors file, run directory or hf://user/repo[@revision]")
    p.add_argument("--out", default="latents.npy", help="latents as float32 .npy [N, z_dim], for dcgan sample --latents")
    p.add_argument("--preview", metavar="PNG", default=None, help="also write originals (top) above reconstructions (bottom)")
    p.add_argument("--mode", choices=("fast", "full", "sharp"), default="full",
                   help="fast: 130 steps (the app's live mode); full: 300 steps; sharp: 1,000 steps, the most PSNR "
                        "(all three hold the classifier's attributes to the end)")
    p.add_argument("--no-encoder", action="store_true", help="ignore the encoder beside the checkpoint (start from seeded latents only)")
    p.set_defaults(func=cmd_project)


def _add_encoder_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Train an encoder x -> z on the generator's own samples (pairs z, G(z): no data set needed) and write it beside "
                     "the checkpoint as encoder.safetensors (fp16, ~2 MB for 64 px), tied to the generator by its weights. "
                     "`dcgan project` and the app's Your image tab start from its guess. celeba-64's: 6000 steps, ~30 min on 2 CPU cores.")
    p.add_argument("checkpoint", help="generator .safetensors file, run directory or hf://user/repo[@revision] (then give --out)")
    p.add_argument("--steps", type=int, metavar="N", default=6000, help="Adam steps (cosine-decayed learning rate)")
    p.add_argument("--batch", type=int, metavar="N", default=64, help="fresh latents per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate at the start")
    p.add_argument("--pixel-weight", type=float, default=1.0,
                   help="weight of |G(E(G(z))) - G(z)|^2 beside the latent loss |E(G(z)) - z|^2 / z_dim (0: latent loss only, 3x faster)")
    p.add_argument("--data-root", metavar="DIR", default=None,
                   help="also fit real images of the checkpoint's data set from DIR through G (pixel MSE + classifier embedding): "
                        "photos are not G's samples, and this is what makes the encoder's guess close to them")
    p.add_argument("--dataset", default=None, help="with --data-root: the data set [default: the checkpoint's]")
    p.add_argument("--max-images", type=int, metavar="N", default=None,
                   help="with --data-root: the first N images only "
                        "(celeba-64's: 8000, keeping faces 9001-9100 unseen for bench/projection.py)")
    p.add_argument("--real-weight", type=float, default=1.0, help="weight of the real-image loss beside the generated-pair loss")
    p.add_argument("--init", metavar="FILE", default=None, help="continue from this encoder file (its width) instead of random weights")
    p.add_argument("--width", type=int, default=32, help="channels of the first conv, doubled at each halving")
    p.add_argument("--seed", type=int, default=0, help="seed of the training latents")
    p.add_argument("--max-minutes", type=float, metavar="M", default=None, help="stop after M minutes (the encoder so far is written)")
    p.add_argument("--out", default=None,
                   help="output file [default: DIR/encoder.safetensors or X.encoder.safetensors beside the checkpoint]")
    p.set_defaults(func=cmd_encoder)


# One row per verb: name, the one line `dcgan --help` shows, and the function adding its options (and its command).
# A verb's options are built only when that verb is run, so listing the verbs imports nothing heavy.
VERBS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "train": ("train a DCGAN into a run directory", _add_train_arguments),
    "sample": ("images for any number of seeds: .png grid, .npy, .zip, DIR/", cli_images.add_sample_arguments),
    "edit": ("move one seed along named directions (as /edit)", cli_images.add_edit_arguments),
    "arithmetic": ("face arithmetic A - B + C, the paper's 3x3 (as /arithmetic)", cli_images.add_arithmetic_arguments),
    "interpolate": ("a walk through keyframe seeds, GIF or MP4 (as /interpolate)", cli_images.add_interpolate_arguments),
    "nearest": ("training images nearest to a seed's sample (as /nearest)", cli_images.add_nearest_arguments),
    "project": ("find the latents of your own images (as /project)", _add_project_arguments),
    "encoder": ("train the encoder that starts a projection", _add_encoder_arguments),
    "directions": ("compute latent directions, or --list them (as /directions)", _add_directions_arguments),
    "export": ("state.pt -> generator.safetensors (or --onnx FILE)", _add_export_arguments),
    "push": ("upload a checkpoint to the Hugging Face Hub", _add_push_arguments),
    "eval": ("quality metrics with their real-vs-real floor", _add_eval_arguments),
    "probe": ("D as a feature extractor under a linear probe (section 5)", cli_inside.add_probe_arguments),
    "forget": ("drop the G maps that draw an attribute (section 6.3.1)", cli_inside.add_forget_arguments),
}


def build_parser(verbs: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The `dcgan` parser with every verb listed; the options of ``verbs`` (default: all) are added."""
    full = set(VERBS) if verbs is None else set(verbs)
    parser = argparse.ArgumentParser(prog="dcgan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB")
    for name, (summary, add_arguments) in VERBS.items():
        p = sub.add_parser(name, help=summary, description=summary[:1].upper() + summary[1:] + ".",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name in full:
            add_arguments(p)
    return parser


def _verb(argv: list[str]) -> str | None:
    """The verb of a command line (its first word that is not an option), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in VERBS else None

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = _verb(argv)
    args = build_parser([verb] if verb else []).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except DCGANError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable folder, a full disk: the environment, not a bug
        print(f"error: {exc.filename}: {exc.strerror or exc}" if exc.filename else f"error: {exc.strerror or exc}", file=sys.stderr)
        return 2
