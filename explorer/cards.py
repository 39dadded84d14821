"""Model cards as the app shows them: the README.md beside a checkpoint without its YAML front matter (Hugging Face
metadata, not prose), its picture taken out to be shown as an image, header-less tables as lists, and everything
after the title and first paragraph folded into a <details> block, so the card stays short until asked for."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\n.*?\n---[ \t]*(?:\n|\Z)", re.S)
IMAGE_REF = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
MAX_PICTURE_PIXELS = 2048 * 2048   # a bigger file beside a checkpoint is not decoded
FOLD_SUMMARY = "The whole model card"


@dataclass
class ModelCard:
    markdown: str                  # ready for gr.Markdown: short, details folded
    picture: np.ndarray | None     # uint8 [H, W, 3] of the card's first local picture (e.g. samples.png), if any
    caption: str = ""              # that picture's alt text


def strip_front_matter(text: str) -> str:
    """The card without a leading ``---`` YAML block (a Hugging Face card's metadata)."""
    return FRONT_MATTER.sub("", text, count=1)


def local_picture(card_dir: Path, ref: str) -> Path | None:
    """The file a relative image reference names, if it is a picture inside ``card_dir`` (never outside it)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", ref, re.I) or ref.startswith(("/", "\\", "#")):
        return None  # a URL, a data URI or an absolute path: not a file beside the card
    root = card_dir.resolve()
    path = (root / ref).resolve()
    if not path.is_relative_to(root) or path.suffix.lower() not in PICTURE_SUFFIXES or not path.is_file():
        return None
    return path


def read_picture(path: Path) -> np.ndarray | None:
    """uint8 [H, W, 3], or None if the file is not a readable picture of reasonable size."""
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PICTURE_PIXELS:
                return None
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def unheaded_tables_as_lists(text: str) -> str:
    """A table whose header row is empty (``| | |``, a key-value table) as a list of "**key**: value" lines,
    because Markdown renders that header as an empty row."""
    def as_list(match: re.Match) -> str:
        items = []
        for line in match.group("rows").strip("\n").splitlines():
            key, _, value = line.strip().strip("|").partition("|")
            if key.strip() or value.strip():
                items.append(f"- **{key.strip()}**: {value.strip().replace('|', '·')}")
        return "\n".join(items) + "\n"
    return re.sub(r"^\|(?:\s*\|)+[ \t]*\n\|(?:\s*:?-+:?\s*\|)+[ \t]*\n(?P<rows>(?:\|.*\|[ \t]*(?:\n|$))+)", as_list, text, flags=re.M)


def split_intro(text: str) -> tuple[str, str]:
    """(the title and first paragraph, the rest): what the app shows at once and what it folds."""
    blocks = re.split(r"\n[ \t]*\n", text.strip(), maxsplit=2)
    count = 2 if blocks[0].startswith("# ") and "\n" not in blocks[0] and len(blocks) > 1 else 1
    return "\n\n".join(blocks[:count]), "\n\n".join(blocks[count:])


def build_card(name: str, card_text: str, card_dir: Path | None, facts: list[tuple[str, object]]) -> ModelCard:
    """The card of model ``name`` for the app: ``card_text`` (README.md, '' if none) made short, the facts from the
    checkpoint's metadata as one line under the introduction, the first local picture read out of the text."""
    text = strip_front_matter(card_text).strip()
    picture, caption = None, ""
    if card_dir is not None:
        for match in IMAGE_REF.finditer(text):
            path = local_picture(card_dir, match.group(2))
            if path is not None and (picture := read_picture(path)) is not None:
                caption = match.group(1).strip() or path.name
                break
    if card_dir is not None:  # local pictures are shown beside the text; a reference to one would only 404
        text = IMAGE_REF.sub(lambda m: "" if local_picture(card_dir, m.group(2)) else m.group(0), text)
    line = " · ".join(f"**{key}** {value}" for key, value in facts)
    if not text:
        return ModelCard(f"### {name}\n\n{line}\n\n_No model card (README.md) beside this checkpoint._", picture, caption)
    intro, rest = split_intro(unheaded_tables_as_lists(re.sub(r"\n{3,}", "\n\n", text)))
    folded = f"\n\n<details><summary>{FOLD_SUMMARY}</summary>\n\n{rest}\n\n</details>\n" if rest else "\n"
    return ModelCard(f"{intro}\n\n{line}{folded}", picture, caption)
