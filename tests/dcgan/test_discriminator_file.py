"""discriminator.safetensors: round-trip (batch and spectral norm), fp16, and refusal of generator, foreign and
corrupt files; `dcgan export` writes it beside the generator."""
import json

import pytest
import torch
from safetensors.torch import save as st_save

from dcgan import cli
from dcgan.checkpoints import DISCRIMINATOR_FILE, GENERATOR_FILE, load_discriminator, load_generator, save_discriminator, save_generator
from dcgan.config import ModelConfig
from dcgan.errors import CheckpointError
from dcgan.io import atomic_write_bytes, read_header
from dcgan.models import build_discriminator, build_generator

CFG = ModelConfig(image_size=16, channels=1, z_dim=8, ngf=4, ndf=4)


@pytest.mark.parametrize("d_norm", ["batch", "spectral"])
def test_round_trip_gives_the_same_logits(tmp_path, d_norm):
    cfg = ModelConfig(image_size=16, channels=1, z_dim=8, ngf=4, ndf=4, d_norm=d_norm)
    D = build_discriminator(cfg)
    D.train()(torch.randn(8, 1, 16, 16))  # moves BN statistics / spectral norm's power-iteration vectors off their init
    D.eval()
    path = tmp_path / DISCRIMINATOR_FILE
    save_discriminator(D, path, model=cfg, info={"dataset": "fake", "step": 7})
    loaded, meta = load_discriminator(tmp_path)  # a folder finds its discriminator.safetensors
    assert meta.model == cfg and meta.info["step"] == 7 and not loaded.training
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), D(x), rtol=0, atol=0)


def test_fp16_storage_is_close(tmp_path):
    D = build_discriminator(CFG).eval()
    save_discriminator(D, tmp_path / "d16.safetensors", model=CFG, info={}, dtype=torch.float16)
    dtypes = {spec["dtype"] for name, spec in read_header(tmp_path / "d16.safetensors").items() if name != "__metadata__"}
    assert dtypes == {"F16", "I64"}  # BatchNorm's step counters stay integers
    loaded, _ = load_discriminator(tmp_path / "d16.safetensors")
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), D(x), rtol=1e-2, atol=1e-3)


def test_a_generator_and_a_discriminator_are_not_taken_for_each_other(tmp_path):
    save_generator(build_generator(CFG), tmp_path / GENERATOR_FILE, model=CFG, info={})
    save_discriminator(build_discriminator(CFG), tmp_path / DISCRIMINATOR_FILE, model=CFG, info={})
    with pytest.raises(CheckpointError, match="not a dcgan-explorer discriminator"):
        load_discriminator(tmp_path / GENERATOR_FILE)
    with pytest.raises(CheckpointError, match="this is a discriminator file"):
        load_generator(tmp_path / DISCRIMINATOR_FILE)


def test_missing_foreign_and_corrupt_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such discriminator file"):
        load_discriminator(tmp_path)
    D = build_discriminator(CFG)
    metadata = {"format_version": "1", "network": "discriminator", "model": json.dumps(vars(CFG)), "info": "{}"}
    foreign = tmp_path / "foreign.safetensors"
    atomic_write_bytes(st_save({"weight": torch.zeros(3)}, metadata=metadata), foreign)
    with pytest.raises(CheckpointError, match="do not match a dcgan discriminator"):
        load_discriminator(foreign)
    wrong_shape = {k: v for k, v in D.state_dict().items()}
    wrong_shape["main.0.weight"] = torch.zeros(5, 1, 4, 4)
    path = tmp_path / "shape.safetensors"
    atomic_write_bytes(st_save(wrong_shape, metadata=metadata), path)
    with pytest.raises(CheckpointError, match="has shape"):
        load_discriminator(path)
    nan = {k: v.clone() for k, v in D.state_dict().items()}
    nan["main.0.weight"][0] = float("nan")
    atomic_write_bytes(st_save(nan, metadata=metadata), path)
    with pytest.raises(CheckpointError, match="NaN"):
        load_discriminator(path)
    good = tmp_path / "good.safetensors"
    save_discriminator(D, good, model=CFG, info={})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="does not fit the file|truncated"):
        load_discriminator(truncated)
    pickled = tmp_path / "pickled.safetensors"
    torch.save(D.state_dict(), pickled)
    with pytest.raises(CheckpointError, match="pickle"):
        load_discriminator(pickled)


def test_export_writes_the_discriminator_of_the_same_step(tiny_ckpt, tmp_path):
    out = tmp_path / "g.safetensors"
    assert cli.main(["export", str(tiny_ckpt), "--out", str(out), "--fp16"]) == 0
    D, meta = load_discriminator(tmp_path / "g.discriminator.safetensors")
    _, g_meta = load_generator(out)
    assert meta.info["step"] == g_meta.info["step"] == 2 and meta.model == g_meta.model
    assert cli.main(["export", str(tiny_ckpt), "--out", str(tmp_path / GENERATOR_FILE), "--no-discriminator"]) == 0
    assert not (tmp_path / DISCRIMINATOR_FILE).exists()
