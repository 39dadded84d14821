"""CLI parity: each image verb writes byte for byte the PNG (and GIF) of the matching API endpoint, on the shipped
mnist generator; `dcgan sample` streams any number of seeds with pixels independent of the batch size; `--help`
lists every verb without importing torch."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan.actions import render
from dcgan.checkpoints import load_generator
from dcgan.cli import VERBS, main
from dcgan.latent import latents_from_seeds
from tests.conftest import SLOW_TIMEOUT, shared_data_or_skip

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / "checkpoints" / "mnist"


@pytest.fixture(scope="module")
def catalog():
    from explorer.derived import Catalog
    from explorer.registry import CheckpointRegistry

    return Catalog(CheckpointRegistry([ROOT / "checkpoints"]), data_roots=[ROOT.parent / "shared" / "data"])


@pytest.fixture
def out(tmp_path):
    from explorer.outputs import OutputDir

    return OutputDir(tmp_path / "api")


def endpoint_png(out, img) -> bytes:
    """What the API's endpoints hand out for an image: explorer.ui.api's png(), i.e. OutputDir.png."""
    return out.png(img).read_bytes()


def test_help_lists_every_verb_on_one_line_without_importing_torch():
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "dcgan", "--help"], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=SLOW_TIMEOUT)
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "dcgan.cli" in imported and not {m for m in imported if m == "torch" or m.startswith("torch.")}
    lines = result.stdout.splitlines()
    for verb, (summary, _) in VERBS.items():
        assert any(line.split() == [verb, *summary.split()] for line in lines), (verb, result.stdout)


def test_edit_is_the_endpoints_png(catalog, out, tmp_path):
    from explorer import service

    amounts, fixed = {"sefa-0": 2.0, "digit-3": 1.5}, ["digit-8"]
    expected = endpoint_png(out, service.edit(catalog, "mnist", 42, amounts, 0.8, fixed))
    argv = ["edit", str(MNIST), "--seed", "42", "--amount", "sefa-0=2", "--amount", "digit-3=1.5", "--keep-fixed", "digit-8",
            "--truncation", "0.8", "--out", str(tmp_path / "e.png")]
    assert main(argv) == 0
    assert (tmp_path / "e.png").read_bytes() == expected
    assert main(["edit", str(MNIST), "--seed", "42", "--out", str(tmp_path / "plain.png")]) == 0  # nothing moved: the seed itself
    assert (tmp_path / "plain.png").read_bytes() == endpoint_png(out, service.edit(catalog, "mnist", 42))
    assert (tmp_path / "plain.png").read_bytes() != expected


def test_edit_refuses_unknown_directions_and_bad_amounts(tmp_path, capsys):
    assert main(["edit", str(MNIST), "--seed", "1", "--amount", "Smiling=3", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "unknown direction(s) ['Smiling']" in err and "digit-7" in err
    assert main(["edit", str(MNIST), "--seed", "1", "--amount", "sefa-0", "--out", str(tmp_path / "x.png")]) == 2
    assert "write NAME=AMOUNT" in capsys.readouterr().err
    assert main(["edit", str(MNIST), "--seed", "1", "--amount", "sefa-0=11", "--out", str(tmp_path / "x.png")]) == 2
    assert "beyond" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_arithmetic_is_the_endpoints_three_pngs(catalog, out, tmp_path):
    from explorer import service

    result = service.arithmetic(catalog, "mnist", "1,2,3", "4,5,6", "7,8,9", 0.3, 5, 0.9)
    argv = ["arithmetic", str(MNIST), "--a", "1,2,3", "--b", "4,5,6", "--c", "7,8,9", "--noise", "0.3", "--noise-seed", "5",
            "--truncation", "0.9", "--out", str(tmp_path / "ar")]
    assert main(argv) == 0
    for name, img in (("centre", result.centre), ("grid", result.grid), ("pixels", result.pixel)):
        assert (tmp_path / "ar" / f"{name}.png").read_bytes() == endpoint_png(out, img), name
    assert Image.open(tmp_path / "ar" / "grid.png").size == (3 * 32 + 4, 3 * 32 + 4)


def test_arithmetic_lifts_the_group_limit_and_explains_presets(tmp_path, capsys):
    from explorer import service

    many = f"0-{service.MAX_GROUP_SEEDS}"  # one more than the API takes
    assert main(["arithmetic", str(MNIST), "--a", many, "--b", "20,21", "--c", "30", "--out", str(tmp_path / "ar")]) == 0
    assert f"A={many} B=20,21 C=30" in capsys.readouterr().out
    assert main(["arithmetic", str(MNIST), "--preset", "smiling woman", "--out", str(tmp_path / "p")]) == 2
    assert "no attribute classifier" in capsys.readouterr().err
    assert main(["arithmetic", str(MNIST), "--preset", "smiling woman", "--a", "1", "--out", str(tmp_path / "p")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["arithmetic", str(MNIST), "--a", "1", "--out", str(tmp_path / "p")]) == 2
    assert "missing: --b, --c" in capsys.readouterr().err


def test_a_preset_picks_from_the_shipped_ratings_as_the_app_does(catalog, tmp_path, capsys, monkeypatch):
    from dcgan.classifiers import Classifier
    from explorer import service

    rated, predict_proba = [], Classifier.predict_proba
    monkeypatch.setattr(Classifier, "predict_proba", lambda self, x: rated.append(len(x)) or predict_proba(self, x))
    preset = "man with glasses - man without glasses + woman without glasses"
    assert main(["arithmetic", str(ROOT / "checkpoints" / "celeba-64"), "--preset", "man with", "--out", str(tmp_path / "ar")]) == 0
    assert 0 < sum(rated) <= 100  # the candidate results only: seeds 0-9,999 are read from ratings.safetensors
    groups = service.arithmetic_preset(catalog, "celeba-64", preset)
    a, b, c = (",".join(map(str, groups[g])) for g in "ABC")
    assert f"A={a} B={b} C={c}" in capsys.readouterr().out


def test_interpolate_gif_is_the_endpoints_gif(catalog, out, tmp_path):
    from explorer import service

    result = service.interpolate(catalog, "mnist", "1,2,3", 4, "linear", 10.0, "pingpong", 1.0, out=out, strip=False)
    argv = ["interpolate", str(MNIST), "--keyframes", "1,2,3", "--frames", "4", "--method", "linear", "--fps", "10",
            "--loop", "pingpong", "--out", str(tmp_path / "w.gif")]
    assert main(argv) == 0
    assert (tmp_path / "w.gif").read_bytes() == result.gif_path.read_bytes()
    assert Image.open(tmp_path / "w.gif").n_frames == service.count_frames(3, 4, "pingpong") == 16


def test_interpolate_mp4_has_no_server_frame_limit(tmp_path):
    import imageio_ffmpeg

    from explorer import service

    frames = service.MAX_TOTAL_FRAMES + 88  # 600 frames in one segment: refused by the API, fine here
    assert main(["interpolate", str(MNIST), "--keyframes", "3,9", "--frames", str(frames - 1), "--loop", "once",
                 "--out", str(tmp_path / "w.mp4")]) == 0
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "w.mp4"))[0] == frames
    assert main(["interpolate", str(MNIST), "--keyframes", "3", "--out", str(tmp_path / "x.gif")]) == 2
    assert main(["interpolate", str(MNIST), "--keyframes", "3,4", "--out", str(tmp_path / "x.webm")]) == 2


def test_nearest_is_the_endpoints_row(catalog, out, tmp_path, capsys):
    from explorer import service

    data_root = shared_data_or_skip("MNIST")
    result = service.nearest(catalog, "mnist", 7, 1.0, 5)
    assert main(["nearest", str(MNIST), "--seed", "7", "--data-root", str(data_root), "-k", "5", "--out", str(tmp_path / "n.png")]) == 0
    assert (tmp_path / "n.png").read_bytes() == endpoint_png(out, result.row())
    printed = capsys.readouterr().out
    assert all(f"{i:5d}  {d:.2f}" in printed for i, d in zip(result.indices, result.distances))


def test_nearest_says_where_it_looked(tmp_path, capsys):
    assert main(["nearest", str(MNIST), "--seed", "7", "--data-root", str(tmp_path), "--out", str(tmp_path / "n.png")]) == 2
    err = capsys.readouterr().err
    assert "training data of 'mnist' not found" in err and str(tmp_path / "mnist") in err


def test_directions_list_is_the_endpoints_list(catalog, capsys):
    from explorer import service

    assert main(["directions", str(MNIST), "--list"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert [row.split()[0] for row in rows] == service.directions(catalog, "mnist")
    assert main(["directions", str(MNIST), "--list", "--k", "3"]) == 2
    assert "--k only mean" in capsys.readouterr().err


def test_sample_pixels_do_not_depend_on_the_batch_size(tiny_ckpt, tmp_path):
    seeds = "0-40,7,1000"
    arrays = []
    for batch in (1, 7, 64):
        path = tmp_path / f"b{batch}.npy"
        assert main(["sample", str(tiny_ckpt), "--seeds", seeds, "--batch-size", str(batch), "--out", str(path)]) == 0
        arrays.append(np.load(path, mmap_mode="r"))
    G, meta = load_generator(tiny_ckpt)
    expected = render(G, latents_from_seeds([*range(41), 7, 1000], meta.model.z_dim))
    assert arrays[0].shape == (43, 16, 16, 3) and arrays[0].dtype == np.uint8
    assert all(np.array_equal(a, expected) for a in arrays)


def test_sample_folder_and_zip_hold_the_endpoints_png_per_seed(catalog, out, tmp_path):
    from explorer import service

    assert main(["sample", str(MNIST), "--seeds", "5,12-14", "--batch-size", "3", "--out", f"{tmp_path / 'pngs'}/"]) == 0
    assert main(["sample", str(MNIST), "--seeds", "5,12-14", "--out", str(tmp_path / "s.zip")]) == 0
    names = ["seed-000005.png", "seed-000012.png", "seed-000013.png", "seed-000014.png"]
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == names
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        assert zf.namelist() == names
        for name in names:
            seed = int(name[5:11])
            api = endpoint_png(out, service.generate(catalog, "mnist", str(seed)).grid())  # /generate of that one seed
            assert (tmp_path / "pngs" / name).read_bytes() == zf.read(name) == api


def test_sample_takes_more_seeds_than_a_grid_holds(tiny_ckpt, tmp_path, capsys):
    assert main(["sample", str(tiny_ckpt), "--seeds", "0-1099", "--batch-size", "256", "--out", str(tmp_path / "x.npy")]) == 0
    assert np.load(tmp_path / "x.npy", mmap_mode="r").shape == (1100, 16, 16, 3)
    assert main(["sample", str(tiny_ckpt), "--seeds", "0-1099", "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "at most 1024" in err and f"--out {tmp_path / 'g'}/" in err and ".npy" in err and ".zip" in err
    assert main(["sample", str(tiny_ckpt), "--out", str(tmp_path / "g.jpg")]) == 2
    assert main(["sample", str(tiny_ckpt), "--batch-size", "0", "--out", str(tmp_path / "x.npy")]) == 2
