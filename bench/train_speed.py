"""Training throughput: our trainer's step vs a plain eager fp32 loop written like pytorch/examples dcgan/main.py.

Both train the same paper DCGAN (64x64, batch 128 by default) on the same in-memory images (CelebA from
../shared/data when present, else the fake set), in one process, alternating rounds so machine noise hits both.

    python bench/train_speed.py                      # baseline vs ours, prints img/s and the ratio
    python bench/train_speed.py --ablate             # also ours with each fast path turned off
    python bench/train_speed.py --device cuda --batch-size 512 --compile
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dcgan import datasets
from dcgan.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from dcgan.models import build_discriminator, build_generator
from dcgan.trainer import Hardware, bf16_supported, build_gan, pick_device, train_step, update_ema

CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba10k"


def load_images(size: int, n: int) -> torch.Tensor:
    cfg = DataConfig(dataset="celeba", root=str(CELEBA), max_images=n) if CELEBA.exists() else DataConfig(dataset="fake", max_images=n)
    return datasets.build(cfg, size, 3).images


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline_steps(model: ModelConfig, images: torch.Tensor, batch: int, device: torch.device):
    """pytorch/examples dcgan/main.py: fp32, default Adam, D not frozen for the G step, .item() every step."""
    torch.manual_seed(0)
    netG, netD = build_generator(model).to(device), build_discriminator(model).to(device)
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = datasets.batch_to_float(images).to(device)
    i = 0
    while True:
        real = data[(i * batch) % (len(data) - batch):][:batch]
        i += 1
        netD.zero_grad()
        output = netD(real)
        errD_real = F.binary_cross_entropy_with_logits(output, torch.ones_like(output))
        errD_real.backward()
        D_x = torch.sigmoid(output).mean().item()
        noise = torch.randn(batch, model.z_dim, device=device)
        fake = netG(noise)
        output = netD(fake.detach())
        errD_fake = F.binary_cross_entropy_with_logits(output, torch.zeros_like(output))
        errD_fake.backward()
        optD.step()
        netG.zero_grad()
        output = netD(fake)
        errG = F.binary_cross_entropy_with_logits(output, torch.ones_like(output))
        errG.backward()
        optG.step()
        yield (errD_real + errD_fake).item(), errG.item(), D_x


def our_steps(model: ModelConfig, images: torch.Tensor, batch: int, device: torch.device,
              *, bf16: bool, channels_last: bool, compile: bool):
    cfg = RunConfig(model=model, train=TrainConfig(batch_size=batch, compile=compile))
    hw = Hardware(device, bf16, channels_last)
    gan = build_gan(cfg, hw)
    data = images.to(device)
    z_gen = torch.Generator(device=device).manual_seed(0)
    i = 0
    while True:
        idx = torch.randint(0, len(data), (batch,), device=device)
        x = datasets.batch_to_float(data[idx]).contiguous(memory_format=hw.memory_format)
        z = torch.randn(batch, model.z_dim, device=device, generator=z_gen)
        stats = train_step(gan, x, z, hw)
        update_ema(gan.G_ema, gan.G_core, 0.999)
        i += 1
        yield stats


def measure(steps, batch: int, n_steps: int, device: torch.device) -> float:
    next(steps)
    next(steps)  # warm-up (allocator, oneDNN primitive cache, compile)
    sync(device)
    start = time.perf_counter()
    for _ in range(n_steps):
        last = next(steps)
    if isinstance(last, torch.Tensor):
        last.tolist()  # our loop syncs only here, as the trainer does at log steps
    sync(device)
    return n_steps * batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=64, help="image side")
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--steps", type=int, default=8, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--compile", action="store_true", help="also torch.compile our nets")
    p.add_argument("--ablate", action="store_true", help="also measure ours with bf16 / channels_last off")
    args = p.parse_args()
    device = pick_device(args.device)
    model = ModelConfig(image_size=args.image_size, channels=3)
    images = load_images(args.image_size, 2048)
    fast = bf16_supported(device)
    variants = {"baseline (pytorch/examples style, fp32 eager)": lambda: baseline_steps(model, images, args.batch_size, device),
                f"ours (bf16={fast}, channels_last={fast})": lambda: our_steps(model, images, args.batch_size, device,
                                                                               bf16=fast, channels_last=fast, compile=args.compile)}
    if args.ablate:
        variants["ours, bf16 off, channels_last off"] = lambda: our_steps(model, images, args.batch_size, device,
                                                                          bf16=False, channels_last=False, compile=False)
        variants["ours, bf16 on, channels_last off"] = lambda: our_steps(model, images, args.batch_size, device,
                                                                         bf16=fast, channels_last=False, compile=False)
    results = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, make in variants.items():
            results[name].append(measure(make(), args.batch_size, args.steps, device))
    base = statistics.median(next(iter(results.values())))
    print(f"device={device} threads={torch.get_num_threads()} image_size={args.image_size} "
          f"batch={args.batch_size} rounds={args.rounds}x{args.steps} steps")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"{name:50s} {value:9.1f} img/s   x{value / base:.2f}")


if __name__ == "__main__":
    main()
