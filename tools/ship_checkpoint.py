"""Turn a training run into a shipped generator: checkpoints/<name>/ with generator.safetensors (EMA, BN recalibrated,
fp16), discriminator.safetensors (the D of the same step, fp16, for `dcgan probe` and the Inside tab), samples.png
(seeds 0-63), metrics.json (`dcgan eval`, n samples, with real floors), directions.safetensors, ratings.safetensors
(attribute data sets: the classifier's ratings the arithmetic presets pick from) and a README.md model card whose
front matter repeats the generator's metadata.

Example:
  python tools/ship_checkpoint.py runs/mnist-32 checkpoints/mnist --data-root ../shared/data \
      --title "MNIST digits" --license cc-by-sa-3.0 --data-license "CC BY-SA 3.0 (LeCun, Cortes, Burges)" \
      --command "dcgan train --dataset mnist --data-root ../shared/data --max-minutes 22 --out runs/mnist-32"
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dcgan import rundir
from dcgan.actions import PRESET_SEARCH
from dcgan.checkpoints import (
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    discriminator_beside,
    load_discriminator,
    load_generator,
    load_state,
    save_discriminator,
    save_generator,
)
from dcgan.config import R1_EVERY, RunConfig
from dcgan.directions import compute_directions, directions_path, generator_fingerprint, save_directions, shipped_classifier
from dcgan.images import make_grid, save_png
from dcgan.latent import latents_from_seeds
from dcgan.machine import cpu_name
from dcgan.metrics import evaluate
from dcgan.models import num_params
from dcgan.ratings import load_or_rate_seeds
from dcgan.trainer import discriminator_from_state, flips, generator_from_state, images_seen


def training_minutes(log: list[dict], up_to_step: int) -> float:
    """Compute time from the run's log: each record covers (images since the last record) / img_per_s seconds."""
    seconds, previous = 0.0, 0
    for r in (r for r in log if "img_per_s" in r and r["step"] <= up_to_step):
        seconds += (r["images_seen"] - previous) / max(r["img_per_s"], 1e-9)
        previous = r["images_seen"]
    return seconds / 60


def cool_downs(log: list[dict], base_lr: float, up_to_step: int) -> list[tuple[int, int]]:
    """The stretches of steps (first, last logged) up to ``up_to_step`` where the log's lr is below ``base_lr``: each
    cool-down, however many resumes changed --lr-decay-from since (the saved config holds only the last one)."""
    stretches: list[tuple[int, int]] = []
    current = None
    for r in log:
        if "lr" not in r or r["step"] > up_to_step:
            continue
        if r["lr"] < base_lr:
            current = (r["step"] if current is None else current[0], r["step"])
        elif current is not None:
            stretches.append(current)
            current = None
    return stretches + ([current] if current is not None else [])


def recipe(cfg, step: int, log: list[dict]) -> str:
    """The training options up to ``step`` in words, naming those that depart from the paper's recipe; the lr
    cool-downs (and warm restarts between them) are read from the log."""
    t = cfg.train
    words = [f"batch {t.batch_size}", f"Adam lr {t.lr} betas ({t.beta1}, {t.beta2})", f"EMA {t.ema_decay}"]
    if t.lr_d is not None:
        words.append(f"D's lr {t.lr_d} (two time-scale updates)")
    if cfg.model.d_norm == "spectral":
        words.append("spectral norm in D instead of BatchNorm")
    if t.label_smoothing:
        words.append(f"one-sided label smoothing {t.label_smoothing}")
    if t.r1_gamma:
        words.append(f"R1 penalty gamma {t.r1_gamma:g} on the real images (every {R1_EVERY} steps)")
    if t.augment:
        words.append(f"DiffAugment {t.augment} on real and fake images")
    if flips(cfg):
        words.append("random left-right flips of the real images")
    stretches = cool_downs(log, t.lr, step)
    if stretches:
        spans = " and ".join(f"{a:,}-{b:,}" for a, b in stretches)
        restart = ", back at the full lr between them (warm restarts)" if len(stretches) > 1 else ""
        words.append(f"lr cooling down linearly toward 0 over steps {spans} (as logged){restart}")
    return ", ".join(words)


def metric_rows(result: dict) -> str:
    rows = []
    for key, value in result["metrics"].items():
        floor = result["floor"][key]
        ratio = f"{value / floor:.2f}" if floor > 0 else "—"  # KID's unbiased floor can dip below 0
        rows.append(f"| {key} | {value:.4g} | {floor:.4g} | {ratio} |")
    return "\n".join(rows)


def arithmetic_section(result: dict, out_dir: Path) -> str:
    """The card's "does the paper's arithmetic work" table, from `dcgan eval --arithmetic` results ('' without them)."""
    if "arithmetic" not in result:
        return ""
    judged = any("picker" in r for r in result["arithmetic"].values())
    rows = []
    for preset, r in result["arithmetic"].items():
        attributes = ", ".join(f"{'' if want else 'not '}{k} {100 * r['attributes'][k]:.0f}%" for k, want in r["wanted"].items())
        picker = f" | {100 * r['picker']['rate']:.0f}%" if judged else ""
        rows.append(f"| {preset} | {100 * r['rate']:.0f}% ({r['successes']}/{r['draws']}) | "
                    f"{100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f}% | {attributes}{picker} |")
    sliders = result.get("sliders", {})
    slider_text = ", ".join(f"{name} {100 * d['rate']:.0f}%" for name, d in sliders.get("directions", {}).items() if d["rate"] is not None)
    draws = next(iter(result["arithmetic"].values()))["draws"]
    judge_text = ("\nSuccess is judged by a second classifier (`celeba-judge`, trained as the shipped one from another seed):\n"
                  "the picks check their candidate results with the shipped one, whose own verdict is the last column."
                  if judged else "")
    return f"""## Face arithmetic (`dcgan eval {out_dir} --arithmetic --draws {draws}`)

Each draw picks 3 exemplars per group from its own 2,000 seeds, as the app's presets do (the seeds the attribute
classifier sees most clearly in the group whose latents lie deepest toward where the result must land, by boundaries
fitted on the classifier's ratings of seeds 0-9,999, under the mix of attributes whose result G(Y) the classifier
rates best), computes mean(A) - mean(B) + mean(C) and counts a success when G(Y) shows every attribute the result
should have.{judge_text}

| preset | success | 95% interval | per attribute{" | by the picking classifier" if judged else ""} |
|---|---|---|---{"|---" if judged else ""}|
{chr(10).join(rows)}

Sliders: share of seeds without the attribute that gain it at amount {sliders.get('amount', 3):g}: {slider_text or 'not measured'}.

"""


def probe_section(probe: dict, out_dir: Path) -> str:
    """The card's "D as a feature extractor" table, from the JSON of `dcgan probe` ('' without one)."""
    if not probe:
        return ""
    cells = {n: [f"{100 * row[k]['mean']:.1f} ± {100 * row[k]['std']:.1f}" for k in ("trained", "random", "pixels")]
             for n, row in probe["labels"].items()}
    rows = "\n".join(f"| {n} | " + " | ".join(c) + " |" for n, c in cells.items())
    return f"""## D as a feature extractor (`dcgan probe {out_dir} --labels {','.join(probe['labels'])}`)

Test accuracy (%) of an L2 logistic regression on D's conv layers max-pooled to 4x4, trained on N labelled images
(mean ± std over {probe.get('draws', 5)} class-balanced draws), beside the same D architecture with random weights and raw pixels. The
paper's figures (CIFAR-10 82.8%, SVHN 22.5% error) are on other data sets.

| labels | trained D | random D | pixels |
|---|---|---|---|
{rows}

"""


def ship_discriminator(args, state: dict, step: int, info: dict, cfg) -> None:
    """discriminator.safetensors of the shipped step: the state's D when the generator is the state's own, else the
    D kept beside the picked generator (GENERATOR.discriminator.safetensors, from `dcgan export`), else none."""
    if args.generator is None:
        D, _ = discriminator_from_state(state)
        save_discriminator(D, args.out_dir / DISCRIMINATOR_FILE, model=cfg.model, info=info, dtype=torch.float16)
    else:
        kept = discriminator_beside(args.generator)
        if not kept.is_file():
            print(f"{kept}: no discriminator kept for step {step}; shipping none (the Inside tab's D parts stay hidden)")
            return
        D, kept_meta = load_discriminator(kept)
        if kept_meta.info.get("step") != step:
            raise SystemExit(f"{kept} is from step {kept_meta.info.get('step')}, the generator from step {step}")
        save_discriminator(D, args.out_dir / DISCRIMINATOR_FILE, model=cfg.model, info=info, dtype=torch.float16)
    size = (args.out_dir / DISCRIMINATOR_FILE).stat().st_size
    if size > 10 * 2**20:
        raise SystemExit(f"{args.out_dir / DISCRIMINATOR_FILE}: {size / 2**20:.1f} MB; a shipped D must stay under 10 MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="training run directory (state.pt)")
    p.add_argument("out_dir", type=Path, help="shipped folder, e.g. checkpoints/mnist")
    p.add_argument("--data-root", default="", help="data root for the metrics' real images")
    p.add_argument("--n", type=int, default=10000, help="samples for the metrics")
    p.add_argument("--title", required=True, help="model card title")
    p.add_argument("--license", required=True, help="license id for the card's front matter (the data's terms apply)")
    p.add_argument("--data-license", required=True, help="the training data's license in words")
    p.add_argument("--command", action="append", default=[], help="command line used (repeat for resumes)")
    p.add_argument("--hardware", default=f"{cpu_name()}, shared with other jobs, 1 torch thread, bf16 autocast",
                   help="where it was trained")
    p.add_argument("--notes", default="", help="extra paragraph for the card")
    p.add_argument("--arithmetic-json", type=Path, default=None,
                   help="the --json of `dcgan eval OUT_DIR --arithmetic` (run on the shipped folder): its arithmetic and slider "
                        "success rates go into metrics.json and the card")
    p.add_argument("--probe-json", type=Path, default=None,
                   help="the --json of `dcgan probe` on the shipped D: copied beside it as probe.json (the Inside tab shows it) "
                        "and put in the card")
    p.add_argument("--generator", type=Path, default=None,
                   help="ship this generator the run exported at an earlier checkpoint (a kept copy of its generator.safetensors) "
                        "instead of the run's last state")
    args = p.parse_args()

    state = load_state(args.run_dir)
    if args.generator:
        cfg = RunConfig.from_dict(state["config"])
        G, picked = load_generator(args.generator)
        step, source_info = picked.info.get("step"), picked.info
        if picked.model != cfg.model or not isinstance(step, int) or step > state["step"]:
            raise SystemExit(f"{args.generator} is not a checkpoint of {args.run_dir} (model {picked.model}, step {step})")
    else:
        G, cfg = generator_from_state(state)
        step, source_info = state["step"], load_generator(args.run_dir)[1].info
    seen = images_seen(step, cfg.train.batch_size, state["world_size"])
    log = rundir.read_jsonl(args.run_dir / rundir.METRICS_FILE)
    minutes = training_minutes(log, step)
    epochs = [r for r in log if "epoch" in r and r["step"] <= step][-1]["epoch"]
    info = {"dataset": cfg.data.dataset, "step": step, "images_seen": seen, "label_names": source_info.get("label_names"),
            "training_minutes": round(minutes, 1), "hardware": args.hardware, "commands": args.command, "license": args.license}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    gen_path = args.out_dir / GENERATOR_FILE
    save_generator(G, gen_path, model=cfg.model, info=info, dtype=torch.float16)
    G, meta = load_generator(gen_path)  # what users get: fp16 weights back in fp32
    ship_discriminator(args, state, step, info, cfg)

    with torch.no_grad():
        save_png(make_grid(G(latents_from_seeds(list(range(64)), cfg.model.z_dim)), nrow=8), args.out_dir / "samples.png")
    result = evaluate(G, cfg.data.dataset, n=args.n, z_dim=cfg.model.z_dim, root=args.data_root)
    edits = json.loads(args.arithmetic_json.read_text()) if args.arithmetic_json else {}
    result.update({k: edits[k] for k in ("arithmetic", "sliders") if k in edits})
    (args.out_dir / "metrics.json").write_text(json.dumps(result, indent=1))
    directions = compute_directions(G, meta)
    save_directions(directions, directions_path(gen_path), fingerprint=generator_fingerprint(G))
    classifier = shipped_classifier(cfg.data.dataset)
    if classifier is not None and classifier.kind == "attributes":  # the Arithmetic tab's presets pick from these at once
        load_or_rate_seeds(gen_path, G, classifier, PRESET_SEARCH, z_dim=cfg.model.z_dim)

    probe = json.loads(args.probe_json.read_text()) if args.probe_json else {}
    if probe:
        (args.out_dir / "probe.json").write_text(json.dumps(probe, indent=2) + "\n")
    m = cfg.model
    commands = "\n".join(args.command) or "(not recorded)"
    card = f"""---
license: {args.license}
library_name: dcgan-explorer
dataset: {cfg.data.dataset}
arch: {m.arch}
image_size: {m.image_size}
channels: {m.channels}
z_dim: {m.z_dim}
ngf: {m.ngf}
ndf: {m.ndf}
step: {step}
images_seen: {seen}
---
# {args.title}

A DCGAN generator trained with this project's own CLI on real data; explore it with `python app.py`.

![64 samples, seeds 0-63](samples.png)

*Seeds 0-63: `dcgan sample {args.out_dir} --seeds 0-63 --out grid.png` reproduces this grid.*

| | |
|---|---|
| data | `{cfg.data.dataset}`, {args.data_license} |
| architecture | `{m.arch}` (the paper's all-convolutional DCGAN), {m.image_size}x{m.image_size}x{m.channels}, \
z_dim {m.z_dim}, ngf {m.ngf}, ndf {m.ndf}; G has {num_params(G):,} parameters |
| training | {recipe(cfg, step, log)} (shipped: EMA weights, BatchNorm recalibrated, eval mode, fp16 storage) |
| length | {step:,} generator steps, {seen:,} images seen ({epochs:.1f} epochs) |
| time and hardware | {minutes:.0f} minutes of training on {args.hardware} |

Command lines used (the run was resumed exactly with `--resume` where there are several):

```
{commands}
```

## Quality (`dcgan eval {args.out_dir} --n {args.n}`)

Metrics on the features of the project's shipped {cfg.data.dataset} classifier, {args.n} samples (seeds 0-{args.n - 1}) against
{result['floor_n']['reference']} training images. The real floor is the same metric for {result['floor_n']['held_out']} held-out
real images: the best a generator that has not memorised its data can expect. For fid/kid lower is better; for the
others, closer to the floor is better.

| metric | generator | real floor | ratio |
|---|---|---|---|
{metric_rows(result)}

{arithmetic_section(result, args.out_dir)}{probe_section(probe, args.out_dir)}{args.notes}

## License

The weights are derived from {cfg.data.dataset} and follow its terms: {args.data_license}.
"""
    (args.out_dir / "README.md").write_text(card)
    print(f"{args.out_dir}: step {step}, {gen_path.stat().st_size / 2**20:.1f} MB, fid {result['metrics'].get('fid', float('nan')):.3g} "
          f"(floor {result['floor'].get('fid', float('nan')):.3g})")


if __name__ == "__main__":
    main()
