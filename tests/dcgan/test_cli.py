import json

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.checkpoints import load_generator
from dcgan.cli import main
from dcgan.images import to_uint8
from dcgan.latent import latents_from_seeds
from tests.conftest import SLOW_TIMEOUT


def test_train_dry_run_prints_resolved_options(capsys):
    assert main(["train", "--dataset=fake", "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["model"]["image_size"] == 64 and resolved["train"]["lr"] == 2e-4


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
