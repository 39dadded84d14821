"""The training loop: a pure `train_step`, EMA, previews, checkpoints, exact resume, DDP under torchrun.

Fast paths (each measured in bench/train_speed.py): bf16 autocast, channels_last, D frozen during the G step,
no host synchronisation except at log steps, fused Adam, optional torch.compile.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import gc
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from . import datasets, rundir
from .augment import diff_augment, random_flip
from .checkpoints import (
    GENERATOR_FILE,
    STATE_FILE,
    discriminator_beside,
    load_discriminator,
    load_generator,
    load_state,
    save_discriminator,
    save_generator,
    save_state,
)
from .config import R1_EVERY, ModelConfig, RunConfig, parse_augment
from .errors import ConfigError, DCGANError
from .images import make_grid, save_png
from .io import atomic_write_bytes
from .latent import latents_from_seeds
from .losses import d_loss_fake, d_loss_real, g_loss, r1_penalty
from .models import build_discriminator, build_generator, recalibrate_batchnorm
from .progress import TrainProgress

log = logging.getLogger(__name__)

STAT_NAMES = ("lossD", "lossG", "D_x", "D_G_z", "diversity")  # D_G_z: D(G(z)) before the D update


class TrainingDiverged(DCGANError):
    """Losses became NaN/inf; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------------------------------------------
# hardware

def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def bf16_supported(device: torch.device) -> bool:
    """Fast bf16 math: CUDA GPUs that have it, and CPUs with AVX512-BF16 / AMX (oneDNN)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported())
    return False


def channels_last_pays(device: torch.device, bf16: bool) -> bool:
    """Whether NHWC convolutions beat NCHW here: on every x86 CPU (oneDNN's NHWC kernels win in fp32 too: 1.2x on an
    AVX2-only Zen 3, see bench/train_speed.py --ablate), and on CUDA with bf16 (tensor cores); not on MPS."""
    return device.type == "cpu" or (device.type == "cuda" and bf16)


def _resolve(setting: str, auto: bool) -> bool:
    return auto if setting == "auto" else setting == "on"


@dataclass
class Hardware:
    device: torch.device
    bf16: bool
    channels_last: bool
    rank: int = 0
    world_size: int = 1

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def setup_hardware(cfg: RunConfig) -> Hardware:
    """Pick the device and fast paths; join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    device = pick_device(cfg.train.device)
    rank, world = 0, int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        rank = dist.get_rank()
        if device.type == "cuda":
            torch.cuda.set_device(device)
    bf16 = _resolve(cfg.train.bf16, bf16_supported(device))
    return Hardware(device, bf16, _resolve(cfg.train.channels_last, channels_last_pays(device, bf16)), rank, world)


# ----------------------------------------------------------------------------------------------------------------
# models and one step

@dataclass
class GAN:
    G: nn.Module        # what the optimizer steps (DDP-wrapped under torchrun)
    D: nn.Module
    G_ema: nn.Module    # exponential moving average of G's weights: the generator we ship
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer

    @property
    def D_core(self) -> nn.Module:
        return getattr(self.D, "module", self.D)

    @property
    def G_core(self) -> nn.Module:
        return getattr(self.G, "module", self.G)


def _adam(params, lr: float, cfg: RunConfig, device: torch.device) -> torch.optim.Optimizer:
    kwargs = dict(lr=lr, betas=(cfg.train.beta1, cfg.train.beta2))
    if device.type in ("cpu", "cuda"):
        return torch.optim.Adam(params, fused=True, **kwargs)
    return torch.optim.Adam(params, foreach=True, **kwargs)


def build_gan(cfg: RunConfig, hw: Hardware) -> GAN:
    torch.manual_seed(cfg.train.seed)
    G = build_generator(cfg.model).to(hw.device, memory_format=hw.memory_format)
    D = build_discriminator(cfg.model).to(hw.device, memory_format=hw.memory_format)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_G, opt_D = _adam(G.parameters(), cfg.train.lr, cfg, hw.device), _adam(D.parameters(), d_lr(cfg), cfg, hw.device)
    if hw.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [hw.device.index] if hw.device.type == "cuda" else None
        G, D = DDP(G, device_ids=ids), DDP(D, device_ids=ids)
    if cfg.train.compile:
        G, D = torch.compile(G), torch.compile(D)
    return GAN(G, D, G_ema, opt_G, opt_D)


def train_step(gan: GAN, x_real: torch.Tensor, z: torch.Tensor, hw: Hardware, *, real_target: float = 1.0,
               augment: Callable[[torch.Tensor], torch.Tensor] | None = None, train_generator: bool = True,
               r1_weight: float = 0.0) -> torch.Tensor:
    """One D update then one G update on the same fakes; returns STAT_NAMES as a float tensor (not synced).

    ``augment`` (DiffAugment) transforms every image D sees, real and fake, in both steps; G's gradient flows through it.
    With ``train_generator`` False only D learns (G's fakes need no graph); lossG is then G's loss on D's fake logits.
    ``r1_weight`` > 0 adds that times the R1 penalty (the gradient is taken at the real images before augmentation)
    to D's real loss; lossD stays the plain loss.
    """
    seen = augment or (lambda x: x)
    with hw.autocast(), torch.set_grad_enabled(train_generator):
        fake = gan.G(z)
    # D step; the real half does not all-reduce so DDP syncs D's gradients once
    no_sync = gan.D.no_sync() if hasattr(gan.D, "no_sync") else contextlib.nullcontext()
    with no_sync:
        if r1_weight:  # a double backward: through the plain module (compiled graphs have none; DDP needs none here)
            x_real = x_real.detach().requires_grad_(True)
            D_real = getattr(gan.D_core, "_orig_mod", gan.D_core)
        else:
            D_real = gan.D
        with hw.autocast():
            logits_real = D_real(seen(x_real))
            loss_real = d_loss_real(logits_real, real_target)
        (loss_real + r1_weight * r1_penalty(logits_real, x_real) if r1_weight else loss_real).backward()
    with hw.autocast():
        logits_fake = gan.D(seen(fake.detach()))
        loss_fake = d_loss_fake(logits_fake)
    loss_fake.backward()
    gan.opt_D.step()
    gan.opt_D.zero_grad(set_to_none=True)
    if train_generator:
        # G step through the unwrapped D with its parameters frozen: no wasted weight gradients, no DDP sync for D
        gan.D_core.requires_grad_(False)
        with hw.autocast():
            loss_G = g_loss(gan.D_core(seen(fake)))
        loss_G.backward()
        gan.D_core.requires_grad_(True)
        gan.opt_G.step()
        gan.opt_G.zero_grad(set_to_none=True)
    else:
        loss_G = g_loss(logits_fake.detach())
    with torch.no_grad():
        diversity = fake.float().std(0).mean()  # ~0 when every sample is the same image (mode collapse)
        return torch.stack([loss_real + loss_fake, loss_G, torch.sigmoid(logits_real.float()).mean(),
                            torch.sigmoid(logits_fake.float()).mean(), diversity]).detach()


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, decay: float) -> None:
    ema_params, params = list(G_ema.parameters()), list(G.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for ema_buffer, buffer in zip(G_ema.buffers(), G.buffers()):
        ema_buffer.copy_(buffer)


def ema_decay_at(step: int, decay: float) -> float:
    """Ramp the EMA decay up so early steps are not averaged with the random initial weights."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def preview(G_ema: nn.Module, fixed_z: torch.Tensor) -> torch.Tensor:
    """Fixed-noise images from the EMA generator using batch statistics (momentum 0 leaves its running statistics
    alone, and the batch counter is put back: a frozen generator exports bit for bit as it came)."""
    norms = [m for m in G_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    G_ema.train()
    x = G_ema(fixed_z).float()
    G_ema.eval()
    for m, (momentum, count) in zip(norms, saved):
        m.momentum = momentum
        m.num_batches_tracked.copy_(count)
    return x


# ----------------------------------------------------------------------------------------------------------------
# the loop

@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch; cached so the hot loop draws it once per epoch, not once per step."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def _batch_indices(n: int, step: int, batch_size: int, hw: Hardware, seed: int) -> tuple[torch.Tensor, int]:
    """Indices of this rank's batch for ``step``: each epoch is a fresh permutation (last partial batch dropped),
    a pure function of (seed, step) so resuming needs no sampler state."""
    per_step = batch_size * hw.world_size
    steps_per_epoch = n // per_step
    if steps_per_epoch == 0:
        raise ConfigError(f"batch_size {batch_size} x {hw.world_size} process(es) is larger than the data set ({n} images)")
    epoch, pos = divmod(step, steps_per_epoch)
    perm = _epoch_permutation(n, seed, epoch)
    start = pos * per_step + hw.rank * batch_size
    return perm[start : start + batch_size], steps_per_epoch


def _stop_step(cfg: RunConfig, steps_per_epoch: int) -> int | None:
    limits = []
    if cfg.train.max_steps:
        limits.append(cfg.train.max_steps)
    if cfg.train.epochs:
        limits.append(max(1, math.ceil(cfg.train.epochs * steps_per_epoch)))
    return min(limits) if limits else None


def images_seen(step: int, batch_size: int, world_size: int) -> int:
    """Real images drawn after ``step`` generator updates: each of the world_size processes takes batch_size per step."""
    return step * batch_size * world_size


def d_lr(cfg: RunConfig) -> float:
    """D's learning rate: lr_d where set (two time-scale updates), else the shared lr."""
    return cfg.train.lr_d if cfg.train.lr_d is not None else cfg.train.lr


def lr_at(step: int, cfg: RunConfig, stop_step: int | None) -> float:
    """G's learning rate of update ``step`` (D's is this times lr_d / lr): constant, then (with lr_decay_from) a linear
    cool-down to 0 at stop_step.

    Decaying at the end lets G settle instead of orbiting D, which is where most of the late quality gains come from.
    """
    start = cfg.train.lr_decay_from
    if start is None or step < start:
        return cfg.train.lr
    return cfg.train.lr * max(0.0, (stop_step - step) / (stop_step - start))


def _rng_state(z_gen: torch.Generator, aug_gen: torch.Generator, hw: Hardware) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "z": z_gen.get_state(), "augment": aug_gen.get_state()}
    if hw.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(hw.device)
    return state


def save_checkpoint(gan: GAN, cfg: RunConfig, run_dir: Path, step: int, gens: tuple[torch.Generator, torch.Generator], hw: Hardware,
                    info: dict[str, Any], say: Callable[[str], None] = lambda text: None) -> None:
    """state.pt (everything to resume exactly) and generator.safetensors (EMA G, BN recalibrated, eval mode); ``say``
    hears each slow part as it starts (for the progress line)."""
    say("saving checkpoint…")
    state = {
        "config": cfg.to_dict(), "step": step, "world_size": hw.world_size,
        "G": gan.G_core.state_dict(), "D": gan.D_core.state_dict(), "G_ema": gan.G_ema.state_dict(),
        "opt_G": gan.opt_G.state_dict(), "opt_D": gan.opt_D.state_dict(), "rng": _rng_state(*gens, hw),
    }
    save_state(state, run_dir / STATE_FILE)
    export = copy.deepcopy(gan.G_ema).float().to(memory_format=torch.contiguous_format)
    if not cfg.train.freeze_generator:  # a frozen G is exported exactly as it came
        say("recalibrating BatchNorm…")
        export = recalibrate_batchnorm(export, cfg.model.z_dim)
    save_generator(export, run_dir / GENERATOR_FILE, model=cfg.model, info={**info, "step": step})
    if cfg.train.keep_generators:  # with the D of the same step (fp16), so any kept step can ship as a pair
        kept = rundir.kept_generator_path(run_dir, step)
        kept.parent.mkdir(exist_ok=True)
        atomic_write_bytes((run_dir / GENERATOR_FILE).read_bytes(), kept)
        save_discriminator(gan.D_core, discriminator_beside(kept), model=cfg.model, info={**info, "step": step},
                           dtype=torch.float16)


def _load_checkpoint(gan: GAN, state: dict[str, Any], gens: tuple[torch.Generator, torch.Generator], hw: Hardware) -> int:
    z_gen, aug_gen = gens
    gan.G_core.load_state_dict(state["G"])
    gan.D_core.load_state_dict(state["D"])
    gan.G_ema.load_state_dict(state["G_ema"])
    gan.opt_G.load_state_dict(state["opt_G"])
    gan.opt_D.load_state_dict(state["opt_D"])
    torch.set_rng_state(state["rng"]["torch"])
    z_gen.set_state(state["rng"]["z"])
    if state["rng"]["augment"] is not None:  # None: a state from before augmentation existed (load_state's upgrade)
        aug_gen.set_state(state["rng"]["augment"])
    if "cuda" in state["rng"] and hw.device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"], hw.device)
    return int(state["step"])


def initialise_from(gan: GAN, cfg: RunConfig) -> str:
    """Load init_from's generator into G and G_ema, and its discriminator.safetensors (where there is one) into D;
    returns what was loaded, for the log. A checkpoint of another architecture is refused, naming the option to change."""
    G, info = load_generator(cfg.train.init_from)
    _check_same_model(cfg.model, info.model, ("arch", "image_size", "channels", "z_dim", "ngf"), info.path)
    gan.G_core.load_state_dict(G.state_dict())
    gan.G_ema.load_state_dict(G.state_dict())
    d_file = discriminator_beside(info.path)
    if not d_file.is_file():
        return f"generator of {info.path} (no discriminator beside it: D starts from random weights)"
    D, d_info = load_discriminator(d_file)
    _check_same_model(cfg.model, d_info.model, ("ndf", "d_norm"), d_file)
    gan.D_core.load_state_dict(D.state_dict())
    return f"generator {info.path} and discriminator {d_file}"


def _check_same_model(ours: ModelConfig, theirs: ModelConfig, names: tuple[str, ...], path: Path | str) -> None:
    differ = [name for name in names if getattr(ours, name) != getattr(theirs, name)]
    if differ:
        wanted = " ".join(f"--{name.replace('_', '-')} {getattr(theirs, name)}" for name in differ)
        raise ConfigError(f"init_from {path}: its network has {', '.join(f'{n} {getattr(theirs, n)}' for n in differ)}, this run "
                          f"{', '.join(f'{n} {getattr(ours, n)}' for n in differ)}; give {wanted}")


def flips(cfg: RunConfig) -> bool:
    """Whether real images are flipped left-right: --flip on, or auto where the data set allows it (DatasetSpec.hflip)."""
    return cfg.train.flip == "on" or (cfg.train.flip == "auto" and datasets.get_spec(cfg.data.dataset).hflip)


def generator_from_state(state: dict[str, Any], *, raw: bool = False) -> tuple[nn.Module, RunConfig]:
    """The exported generator of a training state: the EMA weights (or raw G), BatchNorm recalibrated, eval mode; a
    frozen generator (--freeze-generator) as it came."""
    cfg = RunConfig.from_dict(state["config"])
    G = build_generator(cfg.model)
    G.load_state_dict(state["G" if raw else "G_ema"])
    if cfg.train.freeze_generator:
        return G.eval(), cfg
    return recalibrate_batchnorm(G, cfg.model.z_dim), cfg


def discriminator_from_state(state: dict[str, Any]) -> tuple[nn.Module, RunConfig]:
    """The D of a training state (trained with the state's G, at the same step), in eval mode."""
    cfg = RunConfig.from_dict(state["config"])
    D = build_discriminator(cfg.model)
    D.load_state_dict(state["D"])
    return D.eval(), cfg


def resume_config(run_dir: Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The run's saved config, with new stopping rules (or other train options) from ``overrides``."""
    values = load_state(Path(run_dir) / STATE_FILE)["config"]
    values["train"].update(overrides or {})
    return RunConfig.from_dict(values)


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM/SIGINT set ``flag["stop"]``: the loop then checkpoints and ends cleanly instead of dying mid-step."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be installed from the main thread
        return

    def request_stop(signum, frame):
        flag["stop"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def training_warnings(stats: dict[str, float], real_diversity: float, real_target: float = 1.0) -> list[str]:
    """Plain-words warnings from one log window's mean stats (real_target: D's label for reals, below 1 with smoothing)."""
    out = []
    if stats["D_G_z"] < 0.02 and stats["D_x"] > real_target - 0.02:
        out.append("D rejects every fake (D(G(z)) near 0): G may be failing to learn")
    if stats["diversity"] < 0.15 * real_diversity:
        out.append("samples in a batch look alike: mode collapse suspected")
    return out


EVAL_N = 2000  # samples per in-training evaluation: seconds on a CPU, enough to see a class histogram collapse


def _eval_classifier(cfg: RunConfig) -> nn.Module | None:
    """The shipped classifier for the run's data set, or None (in-training metrics then stay off)."""
    from .classifiers import load_classifier
    from .errors import CheckpointError

    try:
        return load_classifier(cfg.data.dataset)
    except CheckpointError as exc:
        log.warning("eval_every is set, but no quality metrics will be logged: %s", exc)
        return None


def _evaluate_ema(gan: GAN, cfg: RunConfig, classifier: nn.Module, step: int) -> dict[str, Any]:
    """Metrics of a BN-recalibrated copy of the EMA generator (as exported), as a metrics.jsonl record.

    Latents come from seeds 0..EVAL_N-1, so neither the global RNG nor the z generator moves: resume stays exact.
    """
    from .metrics import collapse_warnings, evaluate

    G = recalibrate_batchnorm(copy.deepcopy(gan.G_ema).float().to(memory_format=torch.contiguous_format), cfg.model.z_dim)
    result = evaluate(G, cfg.data.dataset, n=EVAL_N, z_dim=cfg.model.z_dim, root=cfg.data.root, classifier=classifier)
    record = {"step": step, "eval": {"n": EVAL_N, "metrics": result["metrics"], "floor": result["floor"]}}
    log.info("step %d: %s", step, ", ".join(f"{k} {result['metrics'][k]:.4g} (floor {result['floor'][k]:.4g})"
                                             for k in ("fid", "precision", "recall") if k in result["metrics"]))
    warnings = collapse_warnings(result)
    if warnings:
        record["warnings"] = warnings
        log.warning("step %d: %s", step, "; ".join(warnings))
    return record


def fit(cfg: RunConfig, run_dir: Path, *, resume: bool = False, on_log: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = True, tensorboard_dir: Path | str | None = None) -> dict[str, Any]:
    """Train until a stopping rule or SIGTERM/SIGINT; rank 0 writes the run directory (and TensorBoard events to
    ``tensorboard_dir`` if given). Returns the last metrics record."""
    run_dir = Path(run_dir)
    is_main = int(os.environ.get("RANK", 0)) == 0
    started = {"pid": os.getpid(), "started": time.time(), "resumed": resume}
    board = None
    if is_main and tensorboard_dir is not None:
        from .tensorboard_log import TensorBoardLog

        board = TensorBoardLog(tensorboard_dir)  # refuses a missing tensorboard package before training starts
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_status(run_dir, state="running", **started)
    try:
        with stop_on_signals() as stop_request:
            record = _train(cfg, run_dir, resume, on_log, progress, stop_request, board)
    except BaseException as exc:
        if is_main:
            with contextlib.suppress(OSError, DCGANError):  # on a full disk this write fails too; the error that matters is exc
                rundir.write_status(run_dir, state="failed", error=f"{type(exc).__name__}: {exc}", ended=time.time(), **started)
        raise
    finally:
        if board is not None:
            board.close()
    if is_main:
        rundir.write_status(run_dir, state="stopped" if stop_request["stop"] else "finished", step=record.get("step"),
                            ended=time.time(), **started)
    return record


def _save_preview(G_ema: nn.Module, fixed_z: torch.Tensor, run_dir: Path, step: int, board) -> None:
    """samples/step-NNNNNNN.png, and the same grid in TensorBoard when it logs."""
    grid = make_grid(preview(G_ema, fixed_z))
    save_png(grid, rundir.sample_path(run_dir, step))
    if board is not None:
        board.preview(step, grid)


def _train(cfg: RunConfig, run_dir: Path, resume: bool, on_log, progress: bool, stop_request: dict[str, bool], board) -> dict[str, Any]:
    run_dir = Path(run_dir)
    hw = setup_hardware(cfg)
    is_main = hw.rank == 0
    data = datasets.build(cfg.data, cfg.model.image_size, cfg.model.channels)
    images = data.images.to(hw.device)
    real_diversity = float(datasets.batch_to_float(data.images[:512]).std(0).mean())
    gan = build_gan(cfg, hw)
    torch.manual_seed(cfg.train.seed + hw.rank)
    z_gen = torch.Generator(device=hw.device).manual_seed(cfg.train.seed * 7919 + hw.rank)
    aug_gen = torch.Generator(device=hw.device).manual_seed(cfg.train.seed * 104729 + hw.rank)  # flips and DiffAugment
    gens = (z_gen, aug_gen)
    fixed_z = latents_from_seeds(list(range(cfg.train.num_fixed)), cfg.model.z_dim).to(hw.device)
    step = _load_checkpoint(gan, load_state(run_dir / STATE_FILE), gens, hw) if resume else 0
    if cfg.train.init_from and not resume:
        log.info("starting from the %s", initialise_from(gan, cfg))
    train_generator = not cfg.train.freeze_generator
    if not train_generator:
        gan.G.eval()  # the fixed G draws as it ships: BatchNorm on its recalibrated statistics
    if board is not None:
        board.start(step)
    flip = flips(cfg)
    policy = parse_augment(cfg.train.augment)
    augment = (lambda x: diff_augment(x, policy, aug_gen).contiguous(memory_format=hw.memory_format)) if policy else None
    metrics_path = run_dir / rundir.METRICS_FILE
    if is_main:
        for stale in run_dir.glob(".*.tmp"):  # temp files of a write that was killed midway; the real files are intact
            stale.unlink(missing_ok=True)
        (run_dir / rundir.SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
        rundir.write_config(cfg, run_dir / rundir.CONFIG_FILE)
        rundir.truncate_jsonl_after(metrics_path, step) if resume else metrics_path.write_text("")

    _, steps_per_epoch = _batch_indices(len(images), 0, cfg.train.batch_size, hw, cfg.train.seed)
    stop_step = _stop_step(cfg, steps_per_epoch)
    if cfg.train.lr_decay_from is not None and (stop_step is None or cfg.train.lr_decay_from >= stop_step):
        raise ConfigError(f"lr_decay_from {cfg.train.lr_decay_from}: the decay needs a later last step (--max-steps or --epochs)")
    deadline = time.monotonic() + cfg.train.max_minutes * 60 if cfg.train.max_minutes else None
    info = {"dataset": cfg.data.dataset, "label_names": data.label_names, "world_size": hw.world_size}
    classifier = _eval_classifier(cfg) if is_main and cfg.train.eval_every else None
    stats_sum = torch.zeros(len(STAT_NAMES), device=hw.device)
    window_start, window_steps, record = time.monotonic(), 0, {}
    bar = None
    if is_main and progress:
        bar = TrainProgress(step=step, stop_step=stop_step, budget_s=cfg.train.max_minutes * 60 if cfg.train.max_minutes else None,
                            images_per_step=cfg.train.batch_size * hw.world_size,
                            stats=lambda: dict(zip(STAT_NAMES[:2], (stats_sum[:2] / window_steps).tolist())) if window_steps else None)
    finish_s = 0.0  # how long the last checkpoint took: the deadline keeps that much for the final one
    if is_main and step == 0:  # the untrained grid, at once: a watcher sees the run draw before the first sample_every steps
        _save_preview(gan.G_ema, fixed_z, run_dir, step, board)
    stopping = False
    while not stopping:
        idx, _ = _batch_indices(len(images), step, cfg.train.batch_size, hw, cfg.train.seed)
        x_real = datasets.batch_to_float(images[idx.to(hw.device)]).contiguous(memory_format=hw.memory_format)
        if flip:
            x_real = random_flip(x_real, aug_gen)
        z = torch.randn(len(idx), cfg.model.z_dim, device=hw.device, generator=z_gen)
        if cfg.train.lr_decay_from is not None:
            lr = lr_at(step, cfg, stop_step)
            for group in gan.opt_G.param_groups:
                group["lr"] = lr
            for group in gan.opt_D.param_groups:
                group["lr"] = lr * d_lr(cfg) / cfg.train.lr
        r1_weight = cfg.train.r1_gamma / 2 * R1_EVERY if step % R1_EVERY == 0 else 0.0
        stats_sum += train_step(gan, x_real, z, hw, real_target=1.0 - cfg.train.label_smoothing, augment=augment,
                                train_generator=train_generator, r1_weight=r1_weight)
        if train_generator:
            update_ema(gan.G_ema, gan.G_core, ema_decay_at(step, cfg.train.ema_decay) if cfg.train.ema_decay else 0.0)
        step += 1
        window_steps += 1
        out_of_time = deadline is not None and time.monotonic() > deadline - finish_s  # checked every step: it costs nothing
        stopping = (stop_step is not None and step >= stop_step) or (hw.world_size == 1 and (stop_request["stop"] or out_of_time))
        if bar is not None:
            bar.update(step, force=stopping)
        if step % cfg.train.log_every == 0 or stopping:
            stats = (stats_sum / window_steps).tolist()  # a host sync: every log_every steps (and the progress line's, each second)
            if hw.world_size > 1:  # every rank stops at the same step, agreed here: a per-step all_reduce would sync every step
                must_stop = torch.tensor(float(stop_request["stop"] or out_of_time))
                dist.all_reduce(must_stop, op=dist.ReduceOp.MAX)
                stopping = stopping or bool(must_stop)
            elapsed = time.monotonic() - window_start
            record = {"step": step, "epoch": step / steps_per_epoch, **{k: round(v, 5) for k, v in zip(STAT_NAMES, stats)},
                      "img_per_s": round(window_steps * cfg.train.batch_size * hw.world_size / max(elapsed, 1e-9), 1),
                      "images_seen": images_seen(step, cfg.train.batch_size, hw.world_size), "lr": gan.opt_G.param_groups[0]["lr"],
                      "time": round(time.time(), 3)}
            if not all(math.isfinite(v) for v in stats):
                raise TrainingDiverged(f"step {step}: losses became NaN/inf ({record}); "
                                       f"the last good checkpoint in {run_dir} is kept; try a lower --lr")
            warnings = training_warnings(dict(zip(STAT_NAMES, stats)), real_diversity, 1.0 - cfg.train.label_smoothing) \
                if train_generator else []  # a frozen G cannot fail to learn; D winning is what it is for
            if warnings:
                record["warnings"] = warnings
            if is_main:
                rundir.append_jsonl(metrics_path, record)
                if board is not None:
                    board.record(record)
                if bar is None or not bar.live:  # no live bar (a log file, a subprocess): say it in the log instead
                    log.info("step %d epoch %.2f lossD %.3f lossG %.3f D(x) %.3f D(G(z)) %.3f %.0f img/s%s", step, record["epoch"],
                             *stats[:4], record["img_per_s"], "".join(f" WARNING: {w}" for w in warnings))
                if bar is not None:
                    bar.warn(warnings)
                if on_log:
                    on_log(record)
            stats_sum.zero_()
            window_start, window_steps = time.monotonic(), 0
        if is_main and (step % cfg.train.sample_every == 0 or stopping):
            _save_preview(gan.G_ema, fixed_z, run_dir, step, board)
        if is_main and (step % cfg.train.checkpoint_every == 0 or stopping):
            seen = images_seen(step, cfg.train.batch_size, hw.world_size)
            started_saving = time.monotonic()
            save_checkpoint(gan, cfg, run_dir, step, gens, hw, {**info, "images_seen": seen}, say=bar.phase if bar else lambda text: None)
            finish_s = time.monotonic() - started_saving
            if bar is not None and not stopping:
                bar.phase("")
        if classifier is not None and step % cfg.train.eval_every == 0:
            if bar is not None:
                bar.phase("evaluating…")
            eval_record = _evaluate_ema(gan, cfg, classifier, step)
            rundir.append_jsonl(metrics_path, eval_record)
            if board is not None:
                board.record(eval_record)
            if bar is not None:
                bar.phase("")
                if "warnings" in eval_record:
                    bar.warn(eval_record["warnings"])
    if bar is not None:
        bar.close()
    if hw.world_size > 1:
        # DDP's reducer holds the process group: drop it first, or the group is torn down at interpreter exit, after
        # its peer has gone, and gloo aborts ("terminate called without an active exception")
        del gan
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return record
