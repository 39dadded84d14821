"""Give a shipped generator whose own D was lost a discriminator: checkpoints/<name>/discriminator.safetensors (fp16)
from a `dcgan train --init-from checkpoints/<name> --freeze-generator` run, plus probe.json and a card section that
says how this D was made.

The run must have trained against exactly the shipped generator (same weights, bit for bit); anything else is refused.

Example:
  dcgan train --dataset mnist --data-root ../shared/data --d-norm spectral --init-from checkpoints/mnist \
      --freeze-generator --max-steps 1500 --out runs/mnist-d
  dcgan export runs/mnist-d --out /tmp/mnist-d/generator.safetensors
  dcgan probe /tmp/mnist-d --data-root ../shared/data --labels 100,1000 --json /tmp/mnist-d/probe.json
  python tools/ship_discriminator.py runs/mnist-d checkpoints/mnist --probe-json /tmp/mnist-d/probe.json \
      --command "dcgan train ... --freeze-generator ..." --how "D started from ..."
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_checkpoint import probe_section  # noqa: E402

from dcgan.checkpoints import DISCRIMINATOR_FILE, load_generator, load_state, save_discriminator  # noqa: E402
from dcgan.machine import cpu_name  # noqa: E402
from dcgan.trainer import discriminator_from_state, generator_from_state  # noqa: E402

SECTION_START = "## The discriminator"
LICENSE_SECTION = "## License"


def check_trained_against(state: dict, checkpoint: Path) -> dict:
    """The shipped generator's info, after checking that ``state`` is a frozen-generator run of exactly its weights."""
    G_run, cfg = generator_from_state(state)
    if not cfg.train.freeze_generator:
        raise SystemExit("the run did not freeze its generator (dcgan train --init-from CHECKPOINT --freeze-generator)")
    G_shipped, info = load_generator(checkpoint)
    shipped = G_shipped.state_dict()
    if any(not torch.equal(G_run.state_dict()[k].to(v.dtype), v) for k, v in shipped.items()):
        raise SystemExit(f"the run's generator is not the one in {checkpoint}")
    return info.info


def card_with_section(card: str, section: str) -> str:
    """The card with ``section`` (this tool's part, its probe table included) just before the license section, in
    place of what an earlier run of the tool put there."""
    start = card.find(SECTION_START)
    end = card.find(LICENSE_SECTION, max(start, 0))
    head = card[:start] if start >= 0 else card[:end] if end >= 0 else card.rstrip("\n") + "\n\n"
    return head + section + (card[end:] if end >= 0 else "")


def discriminator_section(out_dir: Path, steps: int, commands: list[str], how: str, probe: dict, hardware: str) -> str:
    command_block = "\n".join(commands) or "(not recorded)"
    return f"""{SECTION_START} (`discriminator.safetensors`)

{how} It is {steps:,} steps of `--freeze-generator` training against the shipped generator on {hardware}: only D
learned, the generator's weights are the ones above, bit for bit.

```
{command_block}
```

{probe_section(probe, out_dir)}"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a --freeze-generator run of the shipped generator (state.pt)")
    p.add_argument("out_dir", type=Path, help="the shipped folder, e.g. checkpoints/mnist")
    p.add_argument("--probe-json", type=Path, default=None, help="the --json of `dcgan probe` on this D (copied as probe.json)")
    p.add_argument("--command", action="append", default=[], help="command line used (repeat)")
    p.add_argument("--how", default="", help="a sentence for the card: where D's weights started")
    p.add_argument("--hardware", default=f"{cpu_name()}, 1 torch thread", help="where it was trained")
    args = p.parse_args()

    state = load_state(args.run_dir)
    shipped_info = check_trained_against(state, args.out_dir)
    D, cfg = discriminator_from_state(state)
    info = {"dataset": cfg.data.dataset, "step": shipped_info.get("step"), "discriminator_steps": int(state["step"]),
            "trained": "against the frozen shipped generator", "commands": args.command, "license": shipped_info.get("license")}
    save_discriminator(D, args.out_dir / DISCRIMINATOR_FILE, model=cfg.model, info=info, dtype=torch.float16)
    probe = json.loads(args.probe_json.read_text()) if args.probe_json else {}
    if probe:
        (args.out_dir / "probe.json").write_text(json.dumps(probe, indent=2) + "\n")
    card_path = args.out_dir / "README.md"
    section = discriminator_section(args.out_dir, int(state["step"]), args.command, args.how, probe, args.hardware)
    card_path.write_text(card_with_section(card_path.read_text(), section))
    size = (args.out_dir / DISCRIMINATOR_FILE).stat().st_size
    print(f"{args.out_dir / DISCRIMINATOR_FILE}: {size / 2**20:.1f} MB, {state['step']:,} D steps against the shipped generator")


if __name__ == "__main__":
    main()
