"""tools/ship_discriminator.py: a D for a shipped generator is taken only from a frozen-generator run of exactly
that generator, and its card section replaces the previous one instead of piling up."""
import subprocess
import sys
from pathlib import Path

import pytest

from dcgan.checkpoints import load_discriminator
from dcgan.trainer import fit
from tests.conftest import make_tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from ship_discriminator import card_with_section, check_trained_against  # noqa: E402

CARD = "# A model\n\nintro\n\n## Quality\n\ntable\n\n## License\n\nterms\n"


def _shipped(tmp_path, tiny_ckpt):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "generator.safetensors").write_bytes((tiny_ckpt / "generator.safetensors").read_bytes())
    (folder / "README.md").write_text(CARD)
    return folder


def test_ships_the_d_of_a_frozen_run_into_the_card_twice_without_duplicates(tmp_path, tiny_ckpt):
    folder = _shipped(tmp_path, tiny_ckpt)
    run = tmp_path / "d-run"
    fit(make_tiny_cfg(max_steps=2, init_from=str(folder), freeze_generator=True), run, progress=False)
    for _ in range(2):
        subprocess.run([sys.executable, str(ROOT / "tools" / "ship_discriminator.py"), str(run), str(folder),
                        "--command", "dcgan train --freeze-generator", "--how", "D started from random weights."],
                       check=True, capture_output=True, cwd=ROOT)
    D, meta = load_discriminator(folder)
    assert meta.info["discriminator_steps"] == 2 and meta.info["trained"] == "against the frozen shipped generator"
    card = (folder / "README.md").read_text()
    assert card.count("## The discriminator") == 1 and card.index("## The discriminator") < card.index("## License")
    assert card.startswith("# A model") and card.rstrip().endswith("terms")


def test_refuses_a_run_that_trained_its_generator(tmp_path, tiny_ckpt):
    from dcgan.checkpoints import load_state

    with pytest.raises(SystemExit, match="did not freeze"):
        check_trained_against(load_state(tiny_ckpt), _shipped(tmp_path, tiny_ckpt))


def test_refuses_a_run_of_another_generator(tmp_path, tiny_ckpt):
    from dcgan.checkpoints import load_state

    other = tmp_path / "other-run"
    fit(make_tiny_cfg(max_steps=2, seed=1), other, progress=False)
    run = tmp_path / "frozen-other"
    fit(make_tiny_cfg(max_steps=1, init_from=str(other), freeze_generator=True), run, progress=False)
    with pytest.raises(SystemExit, match="is not the one in"):
        check_trained_against(load_state(run), _shipped(tmp_path, tiny_ckpt))


def test_card_section_goes_before_the_license_or_at_the_end():
    once = card_with_section(CARD, "## The discriminator\n\nA.\n\n")
    expected = CARD.replace("## License", "## The discriminator\n\nB.\n\n## License")
    assert card_with_section(once, "## The discriminator\n\nB.\n\n") == expected
    assert card_with_section("# No license\n", "## The discriminator\n\nA.\n").endswith("# No license\n\n## The discriminator\n\nA.\n")
