"""explorer.cards: a checkpoint's README.md as the app shows it (no front matter, picture shown, short, folded)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from explorer.cards import build_card, local_picture, split_intro, strip_front_matter, unheaded_tables_as_lists

ROOT = Path(__file__).resolve().parents[2]
FACTS = [("data set", "celeba"), ("image", "64x64, 3 channels")]


def test_front_matter_is_stripped_and_only_a_leading_block():
    text = "---\nlicense: other\nlibrary_name: dcgan-explorer\n---\n# Title\n\nBody\n\n---\n\nafter a rule\n"
    assert strip_front_matter(text) == "# Title\n\nBody\n\n---\n\nafter a rule\n"
    assert strip_front_matter("# No metadata\n---\n") == "# No metadata\n---\n"


def test_a_table_without_header_becomes_a_list():
    text = "intro\n\n| | |\n|---|---|\n| data | `celeba` |\n| length | 7,150 steps |\n\n| metric | value |\n|---|---|\n| fid | 5.8 |\n"
    out = unheaded_tables_as_lists(text)
    assert "- **data**: `celeba`\n- **length**: 7,150 steps\n" in out
    assert "| | |" not in out and "| metric | value |\n|---|---|\n| fid | 5.8 |" in out  # a headed table stays a table


def test_pictures_outside_the_card_folder_are_not_read(tmp_path):
    (tmp_path / "card").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "card" / "samples.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.png")
    assert local_picture(tmp_path / "card", "samples.png") == (tmp_path / "card" / "samples.png").resolve()
    for ref in ("../secret.png", str(tmp_path / "secret.png"), "https://example.com/a.png", "data:image/png;base64,AAAA", "README.md"):
        assert local_picture(tmp_path / "card", ref) is None, ref


def test_intro_is_the_title_and_first_paragraph():
    assert split_intro("# T\n\nFirst.\nstill first.\n\nSecond.\n\n## H\nx") == ("# T\n\nFirst.\nstill first.", "Second.\n\n## H\nx")
    assert split_intro("Only a paragraph.") == ("Only a paragraph.", "")


def test_the_shipped_celeba_card_renders_short_with_its_picture():
    folder = ROOT / "checkpoints" / "celeba-64"
    card = build_card("celeba-64", (folder / "README.md").read_text(), folder, FACTS)
    text = card.markdown
    assert not text.startswith("---") and "license:" not in text and "library_name" not in text
    assert "| | |" not in text and "samples.png" not in text  # no empty header row, no reference that would 404
    intro, folded = text.split("<details>", 1)
    assert intro.startswith("# CelebA faces") and "**data set** celeba · **image** 64x64, 3 channels" in intro
    assert len(intro) < 600 and "## Quality" in folded and folded.rstrip().endswith("</details>")
    with Image.open(folder / "samples.png") as img:  # the picture the card refers to, pixel for pixel
        np.testing.assert_array_equal(card.picture, np.asarray(img.convert("RGB")))
    assert card.caption == "64 samples, seeds 0-63"


def test_a_model_without_card_says_so():
    card = build_card("upload-1", "", None, FACTS)
    assert card.markdown.startswith("### upload-1") and "No model card" in card.markdown and card.picture is None
