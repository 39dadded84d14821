"""The README's "Inside the networks" picture of D's units (the paper's section 6.2): for one layer of a
discriminator, its most strongly firing units, each with the real training patches (receptive fields) that excite it
most, and below them the guided-backpropagation maps of the top unit on generated samples.

Example:
  python tools/inside_figures.py runs/mnist-sn checkpoints/mnist --data-root ../shared/data --layer 1 \
      --out docs/img/inside-d-units-mnist.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dcgan.checkpoints import load_generator
from dcgan.cli_inside import discriminator_of
from dcgan.datasets import batch_to_float
from dcgan.images import make_grid, save_png
from dcgan.latent import latents_from_seeds
from dcgan.metrics import load_split
from dcgan.units import check_unit, guided_backprop, top_patches, top_units, unit_responses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("discriminator", help="discriminator .safetensors, a folder holding one, or a run directory (state.pt)")
    p.add_argument("generator", help="generator for the guided-backprop row (seeds 0-7)")
    p.add_argument("--data-root", default="", help="folder holding the data set")
    p.add_argument("--layer", type=int, default=1, help="D's hidden layer")
    p.add_argument("--units", type=int, default=6, help="units shown")
    p.add_argument("--pool", type=int, default=2000, help="first training images ranked")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = p.parse_args()

    D, meta = discriminator_of(args.discriminator)
    data = load_split(meta.info["dataset"], "train", root=args.data_root, image_size=meta.model.image_size, channels=meta.model.channels)
    x = batch_to_float(data.images[: args.pool])
    responses = unit_responses(D, x, args.layer)
    units = top_units(responses[0], args.units)
    patches, _ = top_patches(D, x, args.layer, units, 8, responses=responses)
    size = meta.model.image_size
    enlarged = torch.nn.functional.interpolate(patches.flatten(0, 1), size=(size, size), mode="nearest")
    G, g_meta = load_generator(args.generator)
    with torch.no_grad():
        samples = G(latents_from_seeds(list(range(8)), g_meta.model.z_dim))
    maps = guided_backprop(D, samples, check_unit(D, args.layer, units[0]), units[0])
    maps = maps / maps.flatten(1).abs().amax(1).clamp_min(1e-12)[:, None, None, None]
    save_png(make_grid(torch.cat([enlarged, samples, maps]), nrow=8), args.out)
    print(f"{args.out}: layer {args.layer} units {units} (rows 1-{len(units)}: top patches of {args.pool} training images; "
          f"then seeds 0-7 and unit {units[0]}'s guided-backprop maps)")


if __name__ == "__main__":
    main()
