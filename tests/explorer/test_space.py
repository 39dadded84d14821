"""Hugging Face Space readiness: front matter and requirements match what the tests run on; Space settings."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import gradio as gr
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app_module():
    sys.path.insert(0, str(ROOT))
    try:
        import app
    finally:
        sys.path.remove(str(ROOT))
    return app


def front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n"), "README.md must start with the Space's front matter"
    block = re.search(r"^---\n(.*?)\n---$", text, re.S | re.M).group(1)
    return {k.strip(): v.strip().strip('"') for k, v in (line.split(":", 1) for line in block.splitlines())}


def test_front_matter_pins_the_tested_gradio():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gr.__version__
    assert (ROOT / meta["app_file"]).is_file() and meta["license"] == "mit"
    assert meta["title"] and meta["emoji"] and 0 < len(meta["short_description"]) <= 60  # the Hub's limit


def test_requirements_cover_the_package_and_use_cpu_torch():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    names = {re.split(r"[<>=!~ ]", line)[0].lower() for line in lines if not line.startswith("-")}
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {re.split(r"[<>=!~ ]", d)[0].lower() for d in deps} <= names
    assert f"gradio=={gr.__version__}" in lines


def test_space_settings_from_the_environment(app_module):
    parse = app_module.build_parser().parse_args
    args = app_module.apply_environment(parse([]), {"DCGAN_TRAIN": "off", "DCGAN_TRAIN_MAX_MINUTES": "5"})
    assert args.no_train and args.train_max_minutes == 5.0
    args = app_module.apply_environment(parse(["--train-max-minutes", "2"]), {"DCGAN_TRAIN_MAX_MINUTES": "5"})
    assert not args.no_train and args.train_max_minutes == 2.0  # flags win
    with pytest.raises(SystemExit):
        app_module.apply_environment(parse([]), {"DCGAN_TRAIN_MAX_MINUTES": "lots"})
    with pytest.raises(SystemExit):
        app_module.apply_environment(parse(["--train-max-minutes", "-1"]), {})


def test_public_on_a_space_local_elsewhere(app_module, tmp_path):
    parse = app_module.build_parser().parse_args
    assert app_module.server_address(parse([]), {}) == ("127.0.0.1", 7860)
    assert app_module.server_address(parse([]), {"SPACE_ID": "me/dcgan"})[0] == "0.0.0.0"
    assert app_module.public_mode(parse([]), {"SPACE_ID": "me/dcgan"}) and not app_module.public_mode(parse([]), {})
    manager = app_module.training_manager(parse(["--runs-dir", str(tmp_path), "--train-data", str(tmp_path)]), {"SPACE_ID": "x"})
    assert manager.limits.max_minutes == 10.0 and not manager.limits.allow_folders and manager.limits.public
    local = app_module.training_manager(parse(["--runs-dir", str(tmp_path), "--train-data", str(tmp_path)]), {})
    assert not local.limits.public and local.limits.allow_folders


def test_random_seeds_are_drawn_per_call(catalog):
    """No example cache or fixed draw: "random" gives new seeds on every call."""
    from explorer import service

    draws = {tuple(service.generate(catalog, "tiny", "random").seeds) for _ in range(3)}
    assert len(draws) == 3


def test_one_data_root_for_training_and_nearest_images(app_module, tmp_path):
    """--train-data, else $DCGAN_DATA_ROOT, else ../shared/data: the Train tab and the nearest-image check share it."""
    parse = app_module.build_parser().parse_args
    assert app_module.shared_data_root(parse(["--train-data", str(tmp_path)]), {"DCGAN_DATA_ROOT": "/elsewhere"}) == tmp_path
    assert app_module.shared_data_root(parse([]), {"DCGAN_DATA_ROOT": str(tmp_path)}) == tmp_path
    shared = ROOT.parent / "shared" / "data"
    if shared.is_dir():
        assert app_module.shared_data_root(parse([]), {}) == shared
