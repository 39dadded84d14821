import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.checkpoints import load_generator, load_state, save_state
from dcgan.cli import build_parser, main, resume_argv, train_argv
from dcgan.errors import ConfigError
from dcgan.images import to_uint8
from dcgan.latent import latents_from_seeds
from tests.conftest import SLOW_TIMEOUT


def test_train_dry_run_prints_resolved_options(capsys):
    assert main(["train", "--dataset=fake", "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["model"]["image_size"] == 64 and resolved["train"]["lr"] == 2e-4
    assert resolved["train"]["init_from"] == "" and resolved["train"]["freeze_generator"] is False
    assert main(["train", "--dataset=fake", "--init-from", "checkpoints/x", "--freeze-generator", "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["train"]["init_from"] == "checkpoints/x" and resolved["train"]["freeze_generator"] is True


def test_train_needs_a_stopping_rule(capsys, tmp_path):
    assert main(["train", "--dataset=fake", "--out", str(tmp_path / "r")]) == 2
    assert "stopping rule" in capsys.readouterr().err


def test_bad_option_value_is_a_clean_error(capsys):
    assert main(["train", "--dataset=fake", "--image-size=48", "--max-steps=1"]) == 2
    assert "image_size" in capsys.readouterr().err


def test_sample_npy_matches_library_seeds(tiny_ckpt, tmp_path):
    out = tmp_path / "x.npy"
    assert main(["sample", str(tiny_ckpt), "--seeds", "3,7,42", "--out", str(out)]) == 0
    arr = np.load(out)
    G, meta = load_generator(tiny_ckpt)
    with torch.no_grad():
        expected = to_uint8(G(latents_from_seeds([3, 7, 42], meta.model.z_dim)))
    assert arr.shape == (3, 16, 16, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr, expected)


def test_sample_png_grid(tiny_ckpt, tmp_path):
    out = tmp_path / "g.png"
    assert main(["sample", str(tiny_ckpt), "--seeds", "0-15", "--out", str(out)]) == 0
    assert Image.open(out).size == (4 * 18 + 2, 4 * 18 + 2)


def test_sample_bad_checkpoint_and_seeds(tmp_path, tiny_ckpt, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04garbage")
    assert main(["sample", str(bad)]) == 2
    assert "pickle" in capsys.readouterr().err
    assert main(["sample", str(tiny_ckpt), "--seeds", "9-1"]) == 2


def test_export_fp16_and_resume_refusal(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "half.safetensors"
    assert main(["export", str(tiny_ckpt), "--out", str(out), "--fp16"]) == 0
    G, meta = load_generator(out)
    assert meta.info["step"] == 2
    assert out.stat().st_size < (tiny_ckpt / "generator.safetensors").stat().st_size
    assert main(["train", "--dataset=fake", "--max-steps=1", "--out", str(tiny_ckpt)]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_entry_point(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "dcgan", "--help"], capture_output=True, text=True, timeout=SLOW_TIMEOUT)
    assert result.returncode == 0 and "train" in result.stdout and "sample" in result.stdout


def _dry_run(capsys, argv) -> dict:
    assert main([*argv, "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    resolved.pop("run_dir")
    return resolved


def test_config_file_round_trips_a_runs_config(tiny_ckpt, tmp_path, capsys):
    saved = json.loads((tiny_ckpt / "config.json").read_text())
    assert _dry_run(capsys, ["train", "--config", str(tiny_ckpt / "config.json"), "--out", str(tmp_path / "again")]) == saved
    flags = ["train", "--dataset=fake", "--image-size=16", "--ngf=8", "--lr=1e-4", "--max-steps=3", "--data-root", str(tmp_path)]
    from_flags = _dry_run(capsys, flags)
    (tmp_path / "c.json").write_text(json.dumps(from_flags))
    assert _dry_run(capsys, ["train", "--config", str(tmp_path / "c.json")]) == from_flags


def test_config_file_refuses_unknown_keys_and_other_options(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"image_size": 16}, "train": {"max_steps": 1, "learning_rate": 0.1}}))
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "unknown option(s) ['learning_rate']" in err
    path.write_text(json.dumps({"train": {"max_steps": 1}}))
    assert main(["train", "--config", str(path), "--lr", "0.1", "--max-steps", "5", "--dry-run"]) == 2
    assert "drop --lr, --max-steps" in capsys.readouterr().err


def test_argv_builders_parse_with_the_real_parser(tmp_path):
    args = build_parser().parse_args(train_argv(tmp_path / "config.json", tmp_path))
    assert args.config == str(tmp_path / "config.json") and args.out == str(tmp_path)
    args = build_parser().parse_args(resume_argv(tmp_path, {"max_minutes": 3.0, "keep_generators": True}))
    assert args.resume == str(tmp_path) and args.max_minutes == 3.0 and args.keep_generators is True
    args = build_parser().parse_args(resume_argv(tmp_path, {"r1_gamma": 0.001, "augment": "translation"}))
    assert args.r1_gamma == 0.001 and args.augment == "translation"
    with pytest.raises(ConfigError, match="cannot be changed on resume"):
        resume_argv(tmp_path, {"lr": 0.1})
    with pytest.raises(ConfigError, match="max_minutes"):
        resume_argv(tmp_path, {"max_minutes": -1.0})


@pytest.mark.parametrize("world_size", [2, None])
def test_export_counts_the_images_of_every_process(tiny_ckpt, tmp_path, world_size):
    """images_seen = step * batch_size * world_size, as the trainer writes it; states without world_size were 1 process."""
    run = tmp_path / "run"
    shutil.copytree(tiny_ckpt, run)
    state = load_state(run)
    state.pop("world_size")
    save_state(state if world_size is None else {**state, "world_size": world_size}, run / "state.pt")
    assert main(["export", str(run), "--out", str(tmp_path / "g.safetensors")]) == 0
    info = load_generator(tmp_path / "g.safetensors")[1].info
    assert info["step"] == 2 and info["world_size"] == (world_size or 1)
    assert info["images_seen"] == 2 * 16 * (world_size or 1)
