import json
import os
import subprocess
import sys

import pytest
import torch

from dcgan import rundir
from dcgan.checkpoints import discriminator_beside, load_discriminator, load_generator, load_state
from dcgan.config import R1_EVERY, TrainConfig
from dcgan.errors import ConfigError
from dcgan.latent import latents_from_seeds
from dcgan.losses import r1_penalty
from dcgan.trainer import (
    TrainingDiverged,
    build_gan,
    ema_decay_at,
    fit,
    flips,
    generator_from_state,
    lr_at,
    resume_config,
    setup_hardware,
    train_step,
    training_warnings,
)
from tests.conftest import SLOW_TIMEOUT, make_tiny_cfg, wait_for


def _losses(run_dir):
    return [(r["step"], r["lossD"], r["lossG"], r["D_x"]) for r in rundir.read_jsonl(run_dir / rundir.METRICS_FILE) if "lossD" in r]


def test_run_directory_contents(tiny_ckpt):
    names = {p.name for p in tiny_ckpt.iterdir()}
    assert {"generator.safetensors", "state.pt", "metrics.jsonl", "config.json", "samples"} <= names
    records = rundir.read_jsonl(tiny_ckpt / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert set(records[0]) >= {"step", "epoch", "lossD", "lossG", "D_x", "D_G_z", "img_per_s", "images_seen", "time"}
    assert [s for s, _ in rundir.list_samples(tiny_ckpt)] == [0, 2]  # the untrained grid at once, then every sample_every
    assert json.loads((tiny_ckpt / "config.json").read_text())["model"]["image_size"] == 16


def test_exact_resume_matches_uninterrupted_run(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    fit(make_tiny_cfg(max_steps=6, checkpoint_every=3), whole, progress=False)
    fit(make_tiny_cfg(max_steps=3, checkpoint_every=3), split, progress=False)
    fit(resume_config(split, {"max_steps": 6}), split, resume=True, progress=False)
    assert _losses(whole) == _losses(split)
    assert len(_losses(split)) == 6
    a, b = load_state(whole), load_state(split)
    assert a["step"] == b["step"] == 6
    for key in ("G", "D", "G_ema"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0)


def test_epochs_and_minutes_stop_training(tmp_path):
    record = fit(make_tiny_cfg(max_steps=None, epochs=1.0, log_every=100), tmp_path / "e", progress=False)
    assert record["step"] == 128 // 16  # one pass over 128 images
    record = fit(make_tiny_cfg(max_steps=None, max_minutes=1e-6, log_every=2), tmp_path / "m", progress=False)
    assert record["step"] == 1  # the deadline is checked every step, not only when logging


def test_lr_cooldown_is_linear_to_zero_and_can_start_on_resume(tmp_path):
    cfg = make_tiny_cfg(max_steps=8, lr_decay_from=4)
    assert [lr_at(s, cfg, 8) for s in (0, 3, 4, 6, 8)] == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4, 0.0])
    run = tmp_path / "cool"
    fit(make_tiny_cfg(max_steps=4, log_every=1), run, progress=False)
    fit(resume_config(run, {"max_steps": 8, "lr_decay_from": 4}), run, resume=True, progress=False)
    lrs = [r["lr"] for r in rundir.read_jsonl(run / rundir.METRICS_FILE)]
    assert lrs == pytest.approx([2e-4] * 5 + [1.5e-4, 1e-4, 5e-5])  # the lr of each logged step's update
    assert load_state(run)["config"]["train"]["lr_decay_from"] == 4


def test_two_time_scale_lr_for_d_follows_the_cooldown(tmp_path):
    run = tmp_path / "ttur"
    fit(make_tiny_cfg(lr=1e-4, lr_d=4e-4, max_steps=4, lr_decay_from=2), run, progress=False)
    state = load_state(run)
    assert state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 1 / 2)  # step 4's update: half way down
    assert state["opt_D"]["param_groups"][0]["lr"] == pytest.approx(4e-4 * 1 / 2)
    with pytest.raises(ConfigError, match="lr_d"):
        TrainConfig.from_dict({"lr_d": 0.0})


def test_spectral_norm_d_trains_and_resumes_exactly(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    cfg = make_tiny_cfg(max_steps=4, checkpoint_every=2)
    cfg.model.d_norm = "spectral"
    fit(cfg, whole, progress=False)
    cfg.train.max_steps = 2
    fit(cfg, split, progress=False)
    fit(resume_config(split, {"max_steps": 4}), split, resume=True, progress=False)
    assert _losses(whole) == _losses(split)
    assert any(name.endswith("_u") for name in load_state(split)["D"])  # the power iteration's vector is saved


def test_diffaugment_and_flips_resume_exactly(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    options = {"augment": "color,translation,cutout", "flip": "on", "checkpoint_every": 3}
    fit(make_tiny_cfg(max_steps=6, **options), whole, progress=False)
    fit(make_tiny_cfg(max_steps=3, **options), split, progress=False)
    fit(resume_config(split, {"max_steps": 6}), split, resume=True, progress=False)
    assert _losses(whole) == _losses(split)
    plain = tmp_path / "plain"
    fit(make_tiny_cfg(max_steps=6, checkpoint_every=3, flip="off"), plain, progress=False)
    assert _losses(plain) != _losses(whole)  # the augmentation really changed what D saw


def test_augment_reaches_every_image_d_sees_and_g_learns_through_it():
    """Real, fake (D step) and fake (G step) all go through the same policy, and G's gradient flows through it."""
    cfg = make_tiny_cfg()
    hw = setup_hardware(cfg)
    gan = build_gan(cfg, hw)
    seen = []

    def spy(x):
        seen.append(("grad" if x.requires_grad else "plain", tuple(x.shape)))
        return x.flip(-1)

    x_real = torch.rand(4, 3, 16, 16) * 2 - 1
    train_step(gan, x_real, torch.randn(4, 8), hw, augment=spy)
    assert seen == [("plain", (4, 3, 16, 16)), ("plain", (4, 3, 16, 16)), ("grad", (4, 3, 16, 16))]


def test_r1_penalty_is_the_squared_input_gradient_and_trains_d():
    """For D(x) = w . x the input gradient is w at every x: the penalty is |w|^2, and its gradient 2w reaches D."""
    w = torch.tensor([3.0, -4.0, 12.0], requires_grad=True)
    x = torch.randn(5, 3, requires_grad=True)
    penalty = r1_penalty(x @ w, x)
    assert penalty.item() == pytest.approx(169.0)
    penalty.backward()
    torch.testing.assert_close(w.grad, 2 * w.detach())


def _squared_input_gradient(D, x):
    x = x.detach().requires_grad_(True)
    return r1_penalty(D(x), x).item()


def test_r1_flattens_d_around_the_real_images_and_leaves_lossd_alone():
    cfg = make_tiny_cfg(lr=2e-3)
    hw = setup_hardware(cfg)
    x_real, z = torch.rand(16, 3, 16, 16) * 2 - 1, torch.randn(16, 8)
    plain, penalised = build_gan(cfg, hw), build_gan(cfg, hw)  # the same seed: the same starting weights
    before = _squared_input_gradient(plain.D, x_real)
    for _ in range(5):
        plain_stats = train_step(plain, x_real, z, hw)
        penalised_stats = train_step(penalised, x_real, z, hw, r1_weight=100.0)
    assert _squared_input_gradient(penalised.D, x_real) < 0.25 * min(before, _squared_input_gradient(plain.D, x_real))
    assert 0 < penalised_stats[0] < 10 and plain_stats[0] < 10  # lossD is the plain loss, the penalty is not in it


def test_r1_resumes_exactly(tmp_path):
    """The lazy penalty runs on steps 0 and R1_EVERY: a split between them reproduces the whole run."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    options = {"r1_gamma": 1.0, "checkpoint_every": 9, "log_every": 9}
    fit(make_tiny_cfg(max_steps=R1_EVERY + 2, **options), whole, progress=False)
    fit(make_tiny_cfg(max_steps=9, **options), split, progress=False)
    fit(resume_config(split, {"max_steps": R1_EVERY + 2}), split, resume=True, progress=False)
    assert _losses(whole) == _losses(split)
    plain = tmp_path / "plain"
    fit(make_tiny_cfg(max_steps=R1_EVERY + 2, checkpoint_every=9, log_every=9), plain, progress=False)
    assert _losses(plain) != _losses(whole)


def test_r1_gamma_must_be_finite_and_not_negative():
    for value in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="r1_gamma"):
            TrainConfig.from_dict({"r1_gamma": value})
    assert TrainConfig.from_dict({"r1_gamma": 10}).r1_gamma == 10.0


def test_flip_auto_follows_the_data_set():
    assert flips(make_tiny_cfg())  # fake data: mirroring keeps meaning
    cfg = make_tiny_cfg()
    cfg.data.dataset = "mnist"
    assert not flips(cfg) and flips(make_tiny_cfg(flip="on"))
    cfg.train.flip = "on"
    assert flips(cfg)


def test_lr_cooldown_needs_a_known_last_step(tmp_path):
    with pytest.raises(ConfigError, match="lr_decay_from"):
        TrainConfig.from_dict({"max_steps": 10, "lr_decay_from": 10})
    with pytest.raises(ConfigError, match="last step"):
        fit(make_tiny_cfg(max_steps=None, max_minutes=1.0, lr_decay_from=2), tmp_path / "r", progress=False)


def test_keep_generators_keeps_every_checkpoints_generator(tmp_path):
    run = tmp_path / "keep"
    fit(make_tiny_cfg(max_steps=4, checkpoint_every=2, keep_generators=True), run, progress=False)
    kept = sorted(p.name for p in (run / rundir.GENERATORS_DIR).iterdir())
    assert kept == ["step-0000002.discriminator.safetensors", "step-0000002.safetensors",
                    "step-0000004.discriminator.safetensors", "step-0000004.safetensors"]
    D4, d_meta = load_discriminator(discriminator_beside(rundir.kept_generator_path(run, 4)))
    assert d_meta.info["step"] == 4
    for name, tensor in load_state(run)["D"].items():  # the D of the same step, stored as fp16
        expected = tensor.half().float() if tensor.is_floating_point() else tensor
        torch.testing.assert_close(D4.state_dict()[name], expected, rtol=0, atol=0)
    G2, meta2 = load_generator(rundir.kept_generator_path(run, 2))
    G4, meta4 = load_generator(run)
    assert meta2.info["step"] == 2 and meta4.info["step"] == 4
    assert rundir.kept_generator_path(run, 4).read_bytes() == (run / "generator.safetensors").read_bytes()
    fit(make_tiny_cfg(max_steps=2, checkpoint_every=2), tmp_path / "plain", progress=False)
    assert not (tmp_path / "plain" / rundir.GENERATORS_DIR).exists()


def test_training_warnings_name_a_winning_discriminator_and_alike_samples():
    healthy = {"D_x": 0.8, "D_G_z": 0.2, "diversity": 0.3}
    assert training_warnings(healthy, real_diversity=0.35) == []
    d_wins = {"D_x": 0.995, "D_G_z": 0.004, "diversity": 0.3}
    assert any("D rejects every fake" in w for w in training_warnings(d_wins, 0.35))
    smoothed = {"D_x": 0.895, "D_G_z": 0.004, "diversity": 0.3}  # with label smoothing 0.1, D(x) tops out at 0.9
    assert training_warnings(smoothed, 0.35) == []
    assert any("D rejects every fake" in w for w in training_warnings(smoothed, 0.35, real_target=0.9))
    collapsed = {"D_x": 0.8, "D_G_z": 0.2, "diversity": 0.01}
    assert any("mode collapse" in w for w in training_warnings(collapsed, 0.35))


def test_preview_grid_uses_seeds_zero_to_n(tiny_ckpt):
    """The fixed-noise grid shows the images of seeds 0..63, the same as `dcgan sample --seeds 0-63`."""
    cfg = make_tiny_cfg()
    z = latents_from_seeds(list(range(cfg.train.num_fixed)), cfg.model.z_dim)
    state = load_state(tiny_ckpt)
    assert z.shape == (64, 8) and state["config"]["train"]["num_fixed"] == 64


def test_nan_losses_stop_with_clear_error_and_keep_last_checkpoint(tmp_path, monkeypatch):
    import dcgan.trainer as trainer

    calls = {"n": 0}
    real_g_loss = trainer.g_loss

    def poisoned(logits):
        calls["n"] += 1
        loss = real_g_loss(logits)
        return loss * float("nan") if calls["n"] > 2 else loss

    monkeypatch.setattr(trainer, "g_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="NaN"):
        fit(make_tiny_cfg(max_steps=8, checkpoint_every=2), tmp_path, progress=False)
    G, meta = load_generator(tmp_path)
    assert meta.info["step"] == 2
    assert all(torch.isfinite(p).all() for p in G.parameters())


def test_ema_decay_ramps_up():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.999) == 0.999


@pytest.mark.slow
def test_compiled_training_matches_eager_and_exports_plain_weights(tmp_path):
    """--compile (with DiffAugment on, outside the compiled nets): same losses as eager up to kernel rounding, and
    the exported generator has no compile wrappers."""
    options = {"max_steps": 2, "augment": "color,translation,cutout", "r1_gamma": 1.0}  # R1 on step 0: a double backward
    fit(make_tiny_cfg(**options), tmp_path / "eager", progress=False)
    fit(make_tiny_cfg(**options, compile=True), tmp_path / "compiled", progress=False)
    eager, compiled = _losses(tmp_path / "eager"), _losses(tmp_path / "compiled")
    assert [r[0] for r in compiled] == [1, 2]
    torch.testing.assert_close(torch.tensor(compiled)[:, 1:], torch.tensor(eager)[:, 1:], rtol=0.05, atol=0.02)
    G, meta = load_generator(tmp_path / "compiled")
    assert meta.info["step"] == 2 and not any("_orig_mod" in k for k in G.state_dict())


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "dcgan", "train",
           "--dataset", "fake", "--max-images", "128", "--image-size", "16", "--channels", "3", "--z-dim", "8",
           "--ngf", "8", "--ndf", "8", "--batch-size", "8", "--max-steps", "4", "--log-every", "2",
           "--sample-every", "4", "--checkpoint-every", "4", "--device", "cpu", "--augment", "color,translation,cutout",
           "--r1-gamma", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=SLOW_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)  # never leave worker processes behind if torchrun hangs
    assert proc.returncode == 0, stderr[-3000:]
    G, meta = load_generator(out)
    assert meta.info["world_size"] == 2
    assert meta.info["images_seen"] == 4 * 8 * 2
    assert [r["step"] for r in rundir.read_jsonl(out / "metrics.jsonl")] == [2, 4]


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_cleanly(tmp_path):
    import signal

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "dcgan", "train", "--dataset", "fake", "--max-images", "128", "--image-size", "16",
           "--z-dim", "8", "--ngf", "8", "--ndf", "8", "--batch-size", "16", "--max-steps", "1000000", "--log-every", "5",
           "--checkpoint-every", "1000000", "--sample-every", "1000000", "--out", str(out)]
    log_path = tmp_path / "train.log"  # a file, not a pipe: nobody reads a pipe while the test waits
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=log, stderr=subprocess.STDOUT)

    def logged_a_step() -> bool:
        assert proc.poll() is None, f"trainer exited {proc.returncode}: {log_path.read_text()[-2000:]}"
        return bool(rundir.read_jsonl(out / "metrics.jsonl"))

    try:  # SIGTERM only once the training loop runs (its handler is installed): a first step is logged
        wait_for(logged_a_step, f"the trainer logging its first step to {out / 'metrics.jsonl'}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(SLOW_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = log_path.read_text()
    assert proc.returncode == 0, stderr[-2000:]
    last_logged = rundir.read_jsonl(out / "metrics.jsonl")[-1]["step"]
    state = load_state(out)
    assert state["step"] >= last_logged
    G, meta = load_generator(out)
    assert meta.info["step"] == state["step"]


def _shipped_like(tmp_path, tiny_ckpt):
    """A checkpoint folder as the ship tool lays it out: generator.safetensors and the D of the same step."""
    from dcgan.checkpoints import save_discriminator
    from dcgan.trainer import discriminator_from_state

    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "generator.safetensors").write_bytes((tiny_ckpt / "generator.safetensors").read_bytes())
    D, cfg = discriminator_from_state(load_state(tiny_ckpt))
    save_discriminator(D, folder / "discriminator.safetensors", model=cfg.model, info={})
    return folder, D


def test_init_from_loads_the_checkpoints_generator_and_discriminator(tmp_path, tiny_ckpt):
    from dcgan.trainer import initialise_from

    folder, D = _shipped_like(tmp_path, tiny_ckpt)
    cfg = make_tiny_cfg(init_from=str(folder))
    gan = build_gan(cfg, setup_hardware(cfg))
    said = initialise_from(gan, cfg)
    assert said == f"generator {folder / 'generator.safetensors'} and discriminator {folder / 'discriminator.safetensors'}"
    G, _ = load_generator(folder)
    for net, expected in ((gan.G_core, G), (gan.G_ema, G), (gan.D_core, D)):
        for name, tensor in expected.state_dict().items():
            torch.testing.assert_close(net.state_dict()[name], tensor, rtol=0, atol=0)
    (folder / "discriminator.safetensors").unlink()
    assert "D starts from random weights" in initialise_from(build_gan(cfg, setup_hardware(cfg)), cfg)


def test_init_from_a_kept_generator_takes_the_d_of_its_step(tmp_path):
    from dcgan.trainer import initialise_from

    run = tmp_path / "kept"
    fit(make_tiny_cfg(max_steps=2, checkpoint_every=2, keep_generators=True), run, progress=False)
    kept = rundir.kept_generator_path(run, 2)
    cfg = make_tiny_cfg(init_from=str(kept))
    gan = build_gan(cfg, setup_hardware(cfg))
    assert initialise_from(gan, cfg) == f"generator {kept} and discriminator {discriminator_beside(kept)}"
    D, _ = load_discriminator(discriminator_beside(kept))
    for name, tensor in D.state_dict().items():
        torch.testing.assert_close(gan.D_core.state_dict()[name], tensor, rtol=0, atol=0)


def test_init_from_refuses_another_architecture_naming_the_option(tmp_path, tiny_ckpt):
    cfg = make_tiny_cfg(init_from=str(tiny_ckpt))
    cfg.model.ngf = 16
    with pytest.raises(ConfigError, match="--ngf 8"):
        fit(cfg, tmp_path / "wrong", progress=False)


def test_frozen_generator_trains_only_d_and_exports_g_unchanged(tmp_path, tiny_ckpt):
    folder, D = _shipped_like(tmp_path, tiny_ckpt)
    run = tmp_path / "d-only"
    fit(make_tiny_cfg(max_steps=4, init_from=str(folder), freeze_generator=True), run, progress=False)
    G0, _ = load_generator(folder)
    G1, _ = load_generator(run)
    for name, tensor in G0.state_dict().items():
        torch.testing.assert_close(G1.state_dict()[name], tensor, rtol=0, atol=0)
    exported, _ = generator_from_state(load_state(run))  # dcgan export and the ship tool keep it unchanged too
    for name, tensor in G0.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[name], tensor, rtol=0, atol=0)
    trained_D = load_state(run)["D"]
    assert any(not torch.equal(trained_D[name], tensor) for name, tensor in D.state_dict().items())
    assert all(torch.isfinite(torch.tensor(losses[1:])).all() for losses in _losses(run))


def test_freeze_generator_needs_init_from():
    with pytest.raises(ConfigError, match="needs init_from"):
        TrainConfig(freeze_generator=True).validate()
