"""dcgan.encoder: training on the generator's own samples, the safe file, and the projection's start."""
import logging

import pytest
import torch

from dcgan.checkpoints import load_generator
from dcgan.cli import main
from dcgan.directions import generator_fingerprint
from dcgan.encoder import (
    Encoder,
    EncoderConfig,
    EncoderTraining,
    encoder_for,
    encoder_path,
    load_encoder,
    save_encoder,
    train_encoder,
)
from dcgan.errors import CheckpointError, ConfigError
from dcgan.io import save_safetensors
from dcgan.project import ProjectionSettings, Projector


@pytest.fixture(scope="module")
def trained(tiny_ckpt):
    G, info = load_generator(tiny_ckpt)
    E, record = train_encoder(G, z_dim=info.model.z_dim, training=EncoderTraining(steps=150, batch=32, lr=3e-3), width=8)
    return G, info, E, record


def _latent_mse(E, G, z_dim, seed=99):
    z = torch.randn(256, z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return float((E(G.eval()(z)) - z).square().mean())


def test_training_learns_to_invert_the_generator(trained):
    G, info, E, record = trained
    untrained = Encoder(EncoderConfig(z_dim=info.model.z_dim, image_size=16, channels=3, width=8)).eval()
    assert _latent_mse(E, G, info.model.z_dim) < 0.8 * _latent_mse(untrained, G, info.model.z_dim)
    assert record["steps"] == 150 and record["latent_mse"] > 0 and not E.training
    assert all(p.requires_grad for p in G.parameters())  # G is handed back as it came


def test_file_round_trip_and_refusals(trained, tmp_path):
    G, info, E, record = trained
    path = tmp_path / "x.encoder.safetensors"
    save_encoder(E, path, fingerprint=generator_fingerprint(G), training=record)
    loaded = load_encoder(path, fingerprint=generator_fingerprint(G))
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x), E(x), atol=2e-2)  # fp16 weights
    with pytest.raises(CheckpointError, match="another generator"):
        load_encoder(path, fingerprint="0" * 64)
    with pytest.raises(CheckpointError, match="not an encoder"):
        load_encoder(info.path)  # a generator file
    bad = {k: v.clone() for k, v in E.state_dict().items()}
    bad["head.weight"][0, 0] = float("nan")
    meta = {"format_version": "1", "content": "dcgan-encoder", "config": '{"z_dim": 8, "image_size": 16, "channels": 3, "width": 8}',
            "generator_fingerprint": "", "training": "{}"}
    save_safetensors(bad, tmp_path / "nan.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match="NaN"):
        load_encoder(tmp_path / "nan.safetensors")
    save_safetensors(bad, tmp_path / "shape.safetensors", metadata={**meta, "config": meta["config"].replace('"width": 8', '"width": 16')})
    with pytest.raises(CheckpointError, match="do not match"):
        load_encoder(tmp_path / "shape.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        load_encoder(tmp_path / "junk.safetensors")


def test_encoder_for_finds_only_the_one_trained_for_this_generator(trained, tmp_path, caplog):
    G, info, E, record = trained
    folder = tmp_path / "ck"
    folder.mkdir()
    assert encoder_path(folder) == folder / "encoder.safetensors" == encoder_path(folder / "generator.safetensors")
    assert encoder_path(tmp_path / "m.safetensors") == tmp_path / "m.encoder.safetensors"
    assert encoder_for(folder, G) is None
    save_encoder(E, folder / "encoder.safetensors", fingerprint="f" * 64, training=record)
    with caplog.at_level(logging.WARNING):
        assert encoder_for(folder, G) is None
    assert "another generator" in caplog.text
    save_encoder(E, folder / "encoder.safetensors", fingerprint=generator_fingerprint(G), training=record)
    assert isinstance(encoder_for(folder, G), Encoder)


def test_the_encoder_guess_is_the_first_start(trained):
    G, info, E, _ = trained
    projector = Projector(G, z_dim=info.model.z_dim, candidates=64, encoder=E)
    target = G.eval()(torch.randn(3, info.model.z_dim, generator=torch.Generator().manual_seed(1))).detach()
    with torch.no_grad():
        guess = E(target)
    assert torch.equal(projector.start(target, 64), guess)
    two = projector.start(target, 64, starts=3).view(3, 3, -1)
    assert torch.equal(two[:, 0], guess)
    assert torch.equal(two[:, 1:].flatten(0, 1), projector.start(target, 64, starts=2, encoder=False))
    assert torch.equal(projector.start(target, 64, encoder=False), Projector(G, z_dim=info.model.z_dim, candidates=64).start(target, 64))
    result = projector.project(target=target, settings=ProjectionSettings(steps=20, candidates=64, starts=2))
    assert result.z.shape == (3, info.model.z_dim)


def test_bad_training_options_are_refused_before_loading(capsys, tmp_path):
    assert main(["encoder", str(tmp_path / "missing"), "--steps", "0"]) == 2
    assert "steps >= 1" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        EncoderConfig(image_size=48).validate()


def test_cli_trains_an_encoder_that_project_then_uses(tiny_ckpt, tmp_path, capsys):
    import shutil

    folder = tmp_path / "ck"
    shutil.copytree(tiny_ckpt, folder)
    assert main(["encoder", str(folder), "--steps", "5", "--batch", "8", "--width", "8"]) == 0
    assert (folder / "encoder.safetensors").is_file() and "encoder for" in capsys.readouterr().out
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 120, 90)).save(tmp_path / "me.png")
    argv = ["project", str(tmp_path / "me.png"), "--checkpoint", str(folder), "--out", str(tmp_path / "z.npy"), "--mode", "fast"]
    assert main(argv) == 0
    assert "started from the encoder's guess" in capsys.readouterr().out
    assert main(argv + ["--no-encoder"]) == 0
    assert "started from the best seeded latent" in capsys.readouterr().out
