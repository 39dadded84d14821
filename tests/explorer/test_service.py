"""Service functions: the seed contract, edits, the paper's arithmetic, interpolation files, limits and bad input."""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from dcgan import cli
from dcgan.errors import CheckpointError, ConfigError, DatasetError, LatentError
from dcgan.images import to_uint8
from dcgan.latent import interpolate_path, latent_from_seed, parse_seeds, slerp
from explorer import service

from .conftest import StubClassifier

# ------------------------------------------------------------------------------------------------ generate


def test_generate_shapes_and_seed_order(catalog):
    samples = service.generate(catalog, "tiny", "3,7,42", 1.0)
    assert samples.seeds == [3, 7, 42]
    assert samples.images.shape == (3, 16, 16, 3) and samples.images.dtype == np.uint8
    assert samples.grid().shape == (32, 32, 3)  # 2x2 native tiles, no padding
    np.testing.assert_array_equal(samples.grid()[:16, 16:32], samples.images[1])


def test_same_seed_same_image_as_dcgan_sample(catalog, checkpoints_dir, tmp_path):
    out = tmp_path / "cli.npy"
    assert cli.main(["sample", str(checkpoints_dir / "tiny"), "--seeds", "3,7,42", "--truncation", "0.7", "--out", str(out)]) == 0
    from_cli = np.load(out)
    np.testing.assert_array_equal(service.generate(catalog, "tiny", "3,7,42", 0.7).images, from_cli)
    np.testing.assert_array_equal(service.generate(catalog, "tiny", "42,0-5", 0.7).images[0], from_cli[2])  # batch-independent
    np.testing.assert_array_equal(service.edit(catalog, "tiny", 7, {}, 0.7), from_cli[1])
    np.testing.assert_array_equal(service.edit(catalog, "tiny", 7, {"sefa-0": 0.0}, 0.7), from_cli[1])


def test_random_seeds(catalog):
    samples = service.generate(catalog, "tiny", "random")
    assert len(samples.seeds) == service.RANDOM_COUNT
    assert all(0 <= s <= service.RANDOM_SEED_MAX for s in samples.seeds)


def test_truncation_zero_collapses_to_the_mean(catalog):
    images = service.generate(catalog, "tiny", "0-3", 0.0).images
    assert all(np.array_equal(images[0], img) for img in images)


def test_grey_models_give_2d_images(catalog):
    assert service.generate(catalog, "tiny-grey", "0-1").grid().shape == (16, 32)
    assert service.edit(catalog, "tiny-grey", 1, {"sefa-0": 1.0}).shape == (16, 16)


@pytest.mark.parametrize("seeds", ["", "a-b", "5-3", "0-64", "-1", "1,,2", f"{2**32}", None, 3.5, [1, -1], list(range(65))])
def test_bad_seed_lists(catalog, seeds):
    with pytest.raises(LatentError):
        service.generate(catalog, "tiny", seeds)


@pytest.mark.parametrize("psi", [-0.1, 1.5, float("nan"), float("inf"), "1", None, True])
def test_bad_truncation(catalog, psi):
    with pytest.raises(ConfigError, match="truncation"):
        service.generate(catalog, "tiny", "0", psi)


def test_unknown_model(catalog):
    with pytest.raises(CheckpointError, match="available models: tiny, tiny-grey"):
        service.generate(catalog, "celeba-64", "0")


def test_format_seeds_round_trips():
    for seeds in ([0, 1, 2, 3], [3, 7, 42], [5], [1, 2, 9, 10, 11, 4], [8, 9]):
        assert parse_seeds(service.format_seeds(seeds)) == seeds
    assert service.format_seeds(list(range(16))) == "0-15"


# ------------------------------------------------------------------------------------------------ edit


def test_edit_moves_along_directions(catalog):
    plain = service.edit(catalog, "tiny", 5)
    assert not np.array_equal(service.edit(catalog, "tiny", 5, {"sefa-0": 3.0}), plain)
    z = service.edited_latent(catalog, "tiny", 5, {"sefa-0": 3.0, "pca-1": -1.5})
    dirs = {d.name: d.vector for d in catalog.directions("tiny")}
    expected = latent_from_seed(5, 8) + 3.0 * dirs["sefa-0"] - 1.5 * dirs["pca-1"]
    torch.testing.assert_close(z[0], expected)


def test_keep_fixed_projects_out_the_fixed_directions(catalog):
    dirs = {d.name: d.vector for d in catalog.directions("tiny")}
    z0 = service.edited_latent(catalog, "tiny", 5)
    z = service.edited_latent(catalog, "tiny", 5, {"pca-0": 4.0}, keep_fixed=["sefa-0", "sefa-1"])
    delta = (z - z0)[0]
    assert abs(float(delta @ dirs["sefa-0"])) < 1e-4 and abs(float(delta @ dirs["sefa-1"])) < 1e-4
    assert float(delta.norm()) == pytest.approx(4.0, rel=1e-4)


@pytest.mark.parametrize("amounts, match", [
    ({"nope": 1.0}, "unknown direction"), ({"sefa-0": float("nan")}, "finite"), ({"sefa-0": float("inf")}, "finite"),
    ({"sefa-0": 10.5}, "finite number from -10"), ({"sefa-0": "2"}, "finite"), ({"sefa-0": True}, "finite"),
    ([("sefa-0", 1.0)], "mapping"), ({1: 1.0}, "strings"), ({f"d{i}": 0.0 for i in range(65)}, "at most 64"),
])
def test_bad_amounts(catalog, amounts, match):
    with pytest.raises(LatentError, match=match):
        service.edit(catalog, "tiny", 1, amounts)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "7", None, float("nan"), True])
def test_bad_edit_seed(catalog, seed):
    with pytest.raises(LatentError, match="seed"):
        service.edit(catalog, "tiny", seed)


def test_keep_fixed_must_name_directions(catalog):
    with pytest.raises(LatentError, match="unknown"):
        service.edit(catalog, "tiny", 1, {"sefa-0": 1.0}, keep_fixed=["Smiling"])
    with pytest.raises(LatentError, match="list"):
        service.edit(catalog, "tiny", 1, {"sefa-0": 1.0}, keep_fixed="sefa-1")


def test_snippet_reproduces_the_edit(catalog):
    amounts = {"sefa-0": 2.5, "pca-2": -1.0}
    code = service.edit_snippet(catalog, "tiny", 9, amounts, 0.8, ["sefa-1"])
    offline = code.split("# offline, with the library (same pixels):")[1]
    scope: dict = {}
    exec(offline, scope)  # noqa: S102 - our own generated code
    np.testing.assert_array_equal(to_uint8(scope["x"])[0], service.edit(catalog, "tiny", 9, amounts, 0.8, ["sefa-1"]))
    assert "api_name=\"/edit\"" in code and "'sefa-0': 2.5" in code


def test_directions_lists_names(catalog):
    names = service.directions(catalog, "tiny")
    assert names == [d["name"] for d in service.direction_info(catalog, "tiny")]
    assert {"sefa", "pca"} == {d["kind"] for d in service.direction_info(catalog, "tiny")}


# ------------------------------------------------------------------------------------------------ arithmetic


def test_arithmetic_is_exactly_mean_a_minus_mean_b_plus_mean_c(catalog):
    result = service.arithmetic(catalog, "tiny", "1,2,3", "4,5", "6", noise=0.25, noise_seed=3)
    z = {s: latent_from_seed(s, 8) for s in range(1, 7)}
    expected = (z[1] + z[2] + z[3]) / 3 - (z[4] + z[5]) / 2 + z[6]
    torch.testing.assert_close(result.y, expected, rtol=0, atol=1e-6)
    model = catalog.registry.get("tiny")
    with torch.no_grad():
        centre = to_uint8(model.G(result.y[None]))[0]
    np.testing.assert_array_equal(result.centre, centre)
    assert result.grid.shape == (3 * 16 + 4, 3 * 16 + 4, 3)
    np.testing.assert_array_equal(result.grid[18:34, 18:34], centre)  # G(Y) in the centre of the 3x3


def test_arithmetic_variants_follow_noise_and_its_seed(catalog):
    a = service.arithmetic(catalog, "tiny", "1", "2", "3", noise=0.25, noise_seed=1)
    assert np.array_equal(a.grid, service.arithmetic(catalog, "tiny", "1", "2", "3", noise=0.25, noise_seed=1).grid)
    assert not np.array_equal(a.grid, service.arithmetic(catalog, "tiny", "1", "2", "3", noise=0.25, noise_seed=2).grid)
    flat = service.arithmetic(catalog, "tiny", "1", "2", "3", noise=0.0).grid
    tiles = [flat[r * 18: r * 18 + 16, c * 18: c * 18 + 16] for r in range(3) for c in range(3)]
    assert all(np.array_equal(t, tiles[4]) for t in tiles)


def test_pixel_space_baseline(catalog):
    result = service.arithmetic(catalog, "tiny", "1,2", "3", "4")
    model = catalog.registry.get("tiny")
    with torch.no_grad():
        x = model.G(torch.stack([latent_from_seed(s, 8) for s in (1, 2, 3, 4)]))
    expected = to_uint8(((x[0] + x[1]) / 2 - x[2] + x[3]).clamp(-1, 1)[None])[0]
    assert np.abs(result.pixel.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("groups", [("", "1", "2"), ("1", "0-8", "2"), ("1", "2", "x"), ("1", "2", None)])
def test_arithmetic_groups_hold_one_to_eight(catalog, groups):
    with pytest.raises(LatentError, match="group"):
        service.arithmetic(catalog, "tiny", *groups)


@pytest.mark.parametrize("noise", [-0.1, 1.5, float("nan")])
def test_arithmetic_noise_range(catalog, noise):
    with pytest.raises(ConfigError, match="noise"):
        service.arithmetic(catalog, "tiny", "1", "2", "3", noise=noise)


def test_presets_need_an_attribute_classifier(catalog, monkeypatch):
    from dcgan.directions import ARITHMETIC_PRESETS

    preset = next(iter(ARITHMETIC_PRESETS))
    with pytest.raises(ConfigError, match="no attribute classifier"):
        service.arithmetic_preset(catalog, "tiny", preset)
    with pytest.raises(ConfigError, match="preset"):
        service.arithmetic_preset(catalog, "tiny", "no such preset")
    monkeypatch.setattr(catalog, "classifier", lambda model: StubClassifier())
    groups = service.arithmetic_preset(catalog, "tiny", "smiling woman - neutral woman + neutral man", 2)
    assert list(groups) == ["A", "B", "C"] and all(len(g) == 2 for g in groups.values())


def test_preset_ratings_are_made_once_with_progress_then_read_from_beside_the_checkpoint(checkpoints_dir, tmp_path, monkeypatch):
    from explorer.derived import Catalog
    from explorer.registry import CheckpointRegistry

    shutil.copytree(checkpoints_dir / "tiny", tmp_path / "run")
    (tmp_path / "run" / "ratings.safetensors").unlink(missing_ok=True)
    preset = "smiling woman - neutral woman + neutral man"

    def pick(count):
        catalog = Catalog(CheckpointRegistry([tmp_path / "run"]))  # a fresh app: nothing remembered in memory
        monkeypatch.setattr(catalog, "classifier", lambda state: StubClassifier())
        told = []
        return service.arithmetic_preset(catalog, "run", preset, count, progress=lambda done, total: told.append((done, total))), told

    first, told = pick(2)
    assert told[-1] == (service.PRESET_SEARCH, service.PRESET_SEARCH) and all(a <= b for (a, _), (b, _) in zip(told, told[1:]))
    assert (tmp_path / "run" / "ratings.safetensors").is_file()
    again, told = pick(2)
    assert again == first and told == []  # the shipped-model case: no classifier pass at all
    more, told = pick(4)  # another pick from the same ratings
    assert told == [] and all(more[g][:2] == first[g] for g in "ABC")


def test_shipped_face_model_has_its_preset_ratings():
    from dcgan.classifiers import load_classifier
    from dcgan.ratings import load_ratings, ratings_fingerprint
    from explorer.registry import CheckpointRegistry

    registry = CheckpointRegistry([Path(__file__).resolve().parents[2] / "checkpoints"])
    model = registry.get("celeba-64")
    classifier = load_classifier("celeba")
    proba = load_ratings(model.entry.path.parent / "ratings.safetensors", fingerprint=ratings_fingerprint(model.G, classifier),
                         label_names=classifier.label_names)
    assert proba.shape == (service.PRESET_SEARCH, len(classifier.label_names))


def test_concept_vector(catalog):
    plain = service.edit(catalog, "tiny", 11)
    np.testing.assert_array_equal(service.concept(catalog, "tiny", 11, "1,2", "3", 0.0), plain)
    assert not np.array_equal(service.concept(catalog, "tiny", 11, "1,2", "3", 3.0), plain)
    delta = (latent_from_seed(1, 8) + latent_from_seed(2, 8)) / 2 - latent_from_seed(3, 8)
    assert service.concept_length(catalog, "tiny", "1,2", "3") == pytest.approx(float(delta.norm()))
    assert service.concept_name("  smile ") == "smile"
    for bad in ("", "x" * 41, "a/b", None):
        with pytest.raises(ConfigError):
            service.concept_name(bad)


# ------------------------------------------------------------------------------------------------ interpolation


def test_slerp_keeps_the_norm():
    a, b = latent_from_seed(1, 100), latent_from_seed(2, 100)
    b = b / b.norm() * a.norm()
    path = interpolate_path(torch.stack([a, b]), 16, method="slerp")
    torch.testing.assert_close(path.norm(dim=1), torch.full((17,), float(a.norm())), rtol=1e-5, atol=1e-5)
    mid = slerp(latent_from_seed(1, 100), latent_from_seed(2, 100), 0.5)  # unequal norms: the norm is interpolated
    assert float(mid.norm()) == pytest.approx((float(latent_from_seed(1, 100).norm()) +
                                               float(latent_from_seed(2, 100).norm())) / 2, rel=1e-5)


@pytest.mark.parametrize("loop, expected", [("loop", 3 * 8), ("once", 2 * 8 + 1), ("pingpong", 2 * (2 * 8 + 1) - 2)])
def test_gif_has_the_requested_frames_and_loops(catalog, out, loop, expected):
    result = service.interpolate(catalog, "tiny", "0,1,2", 8, "slerp", 10, loop, out=out)
    assert len(result.frames) == expected == service.count_frames(3, 8, loop)
    with Image.open(result.gif_path) as gif:
        assert gif.n_frames == expected
        assert gif.info["loop"] == 0  # loops forever
        assert gif.size == (16, 16)  # native size
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(result.mp4_path))
    assert frames == expected
    with Image.open(result.strip_path) as strip:
        assert strip.size[0] == 9 * 17 - 1  # keyframe to keyframe: 9 frames per row, 1 px apart
    assert len(result.changes) == (expected if loop != "once" else expected - 1)


def test_interpolation_ends_on_keyframes(catalog, out):
    result = service.interpolate(catalog, "tiny", "4,9", 5, "linear", 12, "once", out=out)
    plain = service.generate(catalog, "tiny", "4,9").images
    np.testing.assert_array_equal(result.frames[0], plain[0])
    np.testing.assert_array_equal(result.frames[-1], plain[1])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"keyframes": "3"}, LatentError, "at least 2"), ({"keyframes": ",".join(map(str, range(33)))}, LatentError, "32"),
    ({"frames": 0}, ConfigError, "frames"), ({"frames": 121}, ConfigError, "frames"), ({"frames": 2.5}, ConfigError, "frames"),
    ({"keyframes": "0-9", "frames": 60}, ConfigError, "at most 512"), ({"fps": 0}, ConfigError, "fps"),
    ({"fps": float("nan")}, ConfigError, "fps"), ({"method": "cubic"}, ConfigError, "method"), ({"loop": "twice"}, ConfigError, "loop"),
])
def test_interpolation_limits(catalog, out, kwargs, error, match, monkeypatch):
    args = {"keyframes": "0,1", "frames": 8, "method": "slerp", "fps": 12.0, "loop": "loop", **kwargs}
    rendered = []
    monkeypatch.setattr(service, "render", lambda *a, **k: rendered.append(a))
    monkeypatch.setattr(service, "Mp4Writer", lambda *a, **k: rendered.append(a))
    with pytest.raises(error, match=match):
        service.interpolate(catalog, "tiny", out=out, **args)
    assert not rendered  # refused before any rendering or encoding (checked by what ran, not by the clock)
    assert not list(out.root.iterdir())


def test_smoothness_meter_flags_jumps():
    frames = np.zeros((10, 4, 4, 3), np.uint8)
    for t in range(10):
        frames[t] = 10 * t if t < 6 else 200 + t  # steady change, then one jump between frames 5 and 6
    changes, jumps = service.frame_changes(frames, wrap=False)
    assert len(changes) == 9 and jumps == [5]
    assert service.frame_changes(frames[:6], wrap=False)[1] == []


def test_walk_preset_is_nine_reproducible_points():
    walk = service.walk_keyframes(5)
    assert len(walk) == 9 == len(set(walk)) and walk == service.walk_keyframes(5) != service.walk_keyframes(6)


# ------------------------------------------------------------------------------------------------ nearest, models, files


def test_nearest_training_images(catalog):
    result = service.nearest(catalog, "tiny", 3, 1.0, 5)
    assert result.images.shape == (5, 16, 16, 3) and result.query.shape == (16, 16, 3)
    assert result.distances == sorted(result.distances) and len(set(result.indices)) == 5
    data = catalog.training_data(catalog.state("tiny")).images
    rms = float((data[result.indices[0]].permute(1, 2, 0).float() - torch.from_numpy(result.query).float()).square().mean().sqrt())
    assert rms == pytest.approx(result.distances[0], abs=0.5)
    assert result.row().shape == (16, 6 * 18 - 2, 3)


def test_nearest_without_data(catalog, monkeypatch):
    def missing(model):
        raise DatasetError("training data for model 'tiny' is not available. Start the app with --data-root DIR pointing at it.")
    monkeypatch.setattr(catalog, "training_data", missing)
    with pytest.raises(DatasetError, match="--data-root"):
        service.nearest(catalog, "tiny", 3)


def test_models_and_card(catalog, checkpoints_dir):
    rows = service.models(catalog)
    assert [r["name"] for r in rows] == ["tiny", "tiny-grey"]
    assert rows[0] | {"step": 2} == {"name": "tiny", "dataset": "fake", "arch": "dcgan",
                                     "image_size": 16, "channels": 3, "z_dim": 8, "step": 2}
    card = service.model_card(catalog, "tiny").markdown
    assert "16 px test generator" in card and "**data set** fake · **image** 16x16, 3 channels" in card
    assert "No model card" in service.model_card(catalog, "tiny-grey").markdown


def test_a_broken_checkpoint_does_not_hide_the_others(checkpoints_dir, tmp_path):
    from explorer.derived import Catalog
    from explorer.registry import CheckpointRegistry

    (tmp_path / "broken").mkdir()
    good = (checkpoints_dir / "tiny" / "generator.safetensors").read_bytes()
    (tmp_path / "broken" / "generator.safetensors").write_bytes(good[:200])
    catalog = Catalog(CheckpointRegistry([checkpoints_dir, tmp_path]))
    rows = {r["name"]: r for r in service.models(catalog)}
    assert "error" in rows["broken"] and rows["tiny"]["image_size"] == 16
    with pytest.raises(CheckpointError) as info:
        service.generate(catalog, "broken", "0")
    for message in (rows["broken"]["error"], str(info.value)):  # callers get the model's name, never the server's path
        assert "model 'broken'" in message and str(tmp_path) not in message


def test_output_dir_prunes_old_files(out):
    old = out.png(np.zeros((4, 4, 3), np.uint8), "old")
    new = out.png(np.zeros((4, 4), np.uint8), "new")
    past = time.time() - 2 * out.max_age_s
    import os

    os.utime(old, (past, past))
    assert out.prune() == 1 and not old.exists() and new.exists()
    assert out.path("../../etc/passwd", ".png").parent == out.root


def test_limits_are_consistent():
    assert service.MAX_TOTAL_FRAMES >= 64 and service.count_frames(2, 32, "loop") == 64
    assert math.isclose(service.FPS_RANGE[0], 1.0)


def test_preset_record_reads_the_measured_arithmetic_beside_the_checkpoint(catalog, checkpoints_dir):
    preset = "smiling woman - neutral woman + neutral man"
    assert service.preset_record(catalog, "tiny", preset) == ""  # not measured
    measured = {"arithmetic": {preset: {"rate": 0.9, "successes": 90, "draws": 100, "ci95": [0.83, 0.94]}}}
    path = checkpoints_dir / "tiny" / "metrics.json"
    path.write_text(json.dumps(measured))
    try:
        assert service.preset_record(catalog, "tiny", preset).startswith("This preset works in 90% of draws on this model (90 of 100")
        with pytest.raises(ConfigError, match="not one of"):
            service.preset_record(catalog, "tiny", "no such preset")
    finally:
        path.unlink()
