"""Training throughput: our trainer's step vs a plain eager fp32 loop written like pytorch/examples dcgan/main.py.

Both train the same paper DCGAN (64x64, batch 128 by default) on the same in-memory images (CelebA from
../shared/data when present, else the fake set), in one process, alternating rounds so machine noise hits both.

Beside each ratio, the roofline: the step's FLOPs per image (torch's FlopCounterMode over one real step, forward and
backward of G and D, counted from the layer shapes) times img/s, over the machine's dense throughput measured in the
same run, in the precision the variant computes in: the faster of a 2048x2048 matmul and a large 3x3 convolution
(512 channels, 16x16, batch 64, NHWC), bf16 or fp32. Both are timed because which library is fast depends on the CPU:
on AMD, MKL's fp32 matmul runs about 2.4x slower than oneDNN's convolutions on the same cores, so a matmul alone
would put the roof too low there. It says how much of what this CPU can do a training step gets, which a ratio to a
baseline cannot.

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
from torch.utils.flop_counter import FlopCounterMode

from dcgan import datasets
from dcgan.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from dcgan.machine import cpu_name
from dcgan.models import build_discriminator, build_generator
from dcgan.trainer import Hardware, bf16_supported, build_gan, channels_last_pays, pick_device, train_step, update_ema

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


def step_flops_per_image(model: ModelConfig, batch: int, device: torch.device) -> float:
    """FLOPs of one of our training steps (D on real and fake, G through D, all backward passes) per image."""
    steps = our_steps(model, torch.zeros(batch, model.channels, model.image_size, model.image_size, dtype=torch.uint8), batch,
                      device, bf16=False, channels_last=False, compile=False)
    counter = FlopCounterMode(display=False)
    with counter:
        next(steps)
    return counter.get_total_flops() / batch


def _best_seconds(run, device: torch.device, reps: int) -> float:
    run()
    best = float("inf")
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 6) -> float:
    """Dense matmul throughput in ``dtype`` (the best of a few timed runs)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / _best_seconds(lambda: a @ b, device, reps)


@torch.no_grad()
def conv_flops_per_s(device: torch.device, dtype: torch.dtype, channels: int = 512, side: int = 16, batch: int = 64,
                     reps: int = 6) -> float:
    """Dense 3x3 convolution throughput in ``dtype``, NHWC (oneDNN on a CPU, cuDNN on a GPU)."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, dtype).to(memory_format=torch.channels_last)
    x = torch.randn(batch, channels, side, side, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    return 2 * batch * side * side * channels * channels * 9 / _best_seconds(lambda: conv(x), device, reps)


def roof_flops_per_s(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """The machine's dense throughput in ``dtype`` by kernel; the roof is the faster of the two."""
    return {"matmul": matmul_flops_per_s(device, dtype), "conv": conv_flops_per_s(device, dtype)}


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
    bf16, channels_last = bf16_supported(device), channels_last_pays(device, bf16_supported(device))

    def ours(bf16: bool, channels_last: bool, compile: bool = False):
        return lambda: our_steps(model, images, args.batch_size, device, bf16=bf16, channels_last=channels_last, compile=compile)

    variants = {"baseline (pytorch/examples style, fp32 eager)": (lambda: baseline_steps(model, images, args.batch_size, device), False),
                f"ours, auto (bf16={bf16}, channels_last={channels_last})": (ours(bf16, channels_last, args.compile), bf16)}
    if args.ablate:
        for b, c in ((False, False), (False, True), (True, False), (True, True)):
            if (b, c) != (bf16, channels_last) and (bf16 or not b):
                variants[f"ours, bf16 {'on' if b else 'off'}, channels_last {'on' if c else 'off'}"] = (ours(b, c), b)
    results = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (make, _) in variants.items():
            results[name].append(measure(make(), args.batch_size, args.steps, device))
    flops = step_flops_per_image(model, args.batch_size, device)
    roofs = {False: roof_flops_per_s(device, torch.float32)}
    if bf16:
        roofs[True] = roof_flops_per_s(device, torch.bfloat16)
    base = statistics.median(next(iter(results.values())))
    print(f"CPU: {cpu_name()}  device={device} threads={torch.get_num_threads()} image_size={args.image_size} "
          f"batch={args.batch_size} rounds={args.rounds}x{args.steps} steps")
    print(f"training step: {flops / 1e9:.2f} GFLOP per image; roof (the faster of a 2048x2048 matmul and a 3x3 conv): "
          + ", ".join(f"{'bf16' if b else 'fp32'} {max(both.values()) / 1e9:.0f} GFLOP/s (matmul {both['matmul'] / 1e9:.0f}, "
                      f"conv {both['conv'] / 1e9:.0f})" for b, both in roofs.items()))
    for name, values in results.items():
        value = statistics.median(values)
        in_bf16 = variants[name][1]
        print(f"{name:50s} {value:9.1f} img/s   x{value / base:.2f}   "
              f"{100 * flops * value / max(roofs[in_bf16].values()):5.1f}% of the {'bf16' if in_bf16 else 'fp32'} roof")


if __name__ == "__main__":
    main()
