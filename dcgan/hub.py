"""The Hugging Face Hub: `hf://user/repo[@revision]` checkpoints come through huggingface_hub's cache (only the files
we know, then the same safe loader as a local folder), and `dcgan push` uploads a checkpoint folder with the Hub's
model-card front matter. huggingface_hub (the `hub` extra) is imported only when one of these is used.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .checkpoints import GENERATOR_FILE, load_generator, resolve_generator_path
from .errors import CheckpointError, DCGANError

log = logging.getLogger(__name__)

HUB_SCHEME = "hf://"
CARD_FILE = "README.md"
SAMPLES_FILE = "samples.png"
DISCRIMINATOR_FILE = "discriminator.safetensors"  # pushed and fetched where a checkpoint has one
# everything a checkpoint folder may hold that we read; snapshot_download fetches nothing else (no pickles, no state.pt)
HUB_FILES = (GENERATOR_FILE, DISCRIMINATOR_FILE, "directions.safetensors", "metrics.json", "config.json", SAMPLES_FILE, CARD_FILE)
HUB_TAGS = ("dcgan", "gan", "unconditional-image-generation")
PIPELINE_TAG = "unconditional-image-generation"
LIBRARY_NAME = "dcgan-explorer"
DATASET_REPOS = {"mnist": "ylecun/mnist", "fashion-mnist": "zalando-datasets/fashion_mnist", "cifar10": "uoft-cs/cifar10",
                 "celeba": "huggan/CelebA-faces-with-attributes"}  # the Hub's copies (celeba: the HugGAN sprint's)
DATASET_LICENSES = {"mnist": "cc-by-sa-3.0", "fashion-mnist": "mit"}  # weights follow their data's terms; others: "other"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
CACHE_SNAPSHOT = re.compile(r"^models--(?P<owner>[^/]+?)--(?P<name>[^/]+)$")  # huggingface_hub's cache folder of a model repo
INSTALL_HINT = "install the Hub client: pip install 'dcgan-explorer[hub]'"


# ----------------------------------------------------------------------------------------------------------------
# names

def is_hub_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(HUB_SCHEME)


def parse_hub_url(url: str) -> tuple[str, str | None]:
    """``hf://user/repo[@revision]`` -> (repo_id, revision or None for the default branch)."""
    rest = url.removeprefix(HUB_SCHEME)
    repo_id, at, revision = rest.partition("@")
    if not valid_repo_id(repo_id) or (at and not revision):
        raise CheckpointError(f"{url}: not a Hub model; write hf://user/repo or hf://user/repo@revision (a branch, tag or commit)")
    return repo_id, revision or None


def valid_repo_id(repo_id: str) -> bool:
    """user/repo as the Hub spells it ('--' and '..' are reserved by its cache and URLs)."""
    return bool(REPO_ID.match(repo_id)) and "--" not in repo_id and ".." not in repo_id


def repo_name(folder: Path | str) -> str | None:
    """The repo name of a huggingface_hub cache snapshot (.../models--user--repo/snapshots/<commit>), else None:
    the explorer lists a Hub model by it rather than by its commit hash."""
    parts = Path(folder).parts
    if len(parts) >= 3 and parts[-2] == "snapshots":
        match = CACHE_SNAPSHOT.match(parts[-3])
        if match:
            return match["name"]
    return None


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, but read now (its constant is read once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


# ----------------------------------------------------------------------------------------------------------------
# download

def download_checkpoint(url: str) -> Path:
    """The local snapshot folder of ``hf://user/repo[@revision]``, fetched into huggingface_hub's cache (HF_HUB_CACHE)
    unless it is there already; with HF_HUB_OFFLINE=1 only the cache is read. Only HUB_FILES are fetched."""
    repo_id, revision = parse_hub_url(url)
    try:
        from huggingface_hub import errors, snapshot_download
    except ImportError as exc:
        raise CheckpointError(f"{url}: {INSTALL_HINT}") from exc
    is_offline = offline()
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=list(HUB_FILES), local_files_only=is_offline,
                                   cache_dir=os.environ.get("HF_HUB_CACHE") or None)
    except errors.LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if is_offline else "the Hub cannot be reached"
        raise CheckpointError(f"{url}: not in the Hugging Face cache and {why}; download it once online "
                              f"(or unset HF_HUB_OFFLINE)") from exc
    except errors.RevisionNotFoundError as exc:
        raise CheckpointError(f"{url}: the repo has no revision {revision!r}") from exc
    except (errors.RepositoryNotFoundError, errors.GatedRepoError) as exc:
        raise CheckpointError(f"{url}: no such model repo, or it is private or gated (log in with `hf auth login`)") from exc
    except errors.HfHubHTTPError as exc:
        raise CheckpointError(f"{url}: the Hub refused the download ({exc})") from exc
    folder = Path(folder)
    if not (folder / GENERATOR_FILE).is_file():
        raise CheckpointError(f"{url}: the repo has no {GENERATOR_FILE}; push one with `dcgan push CHECKPOINT {repo_id}`")
    return folder


def local_checkpoint(value: Path | str) -> Path:
    """A checkpoint argument as a local path: ``hf://`` URLs are downloaded (or read from the cache), paths pass through."""
    return download_checkpoint(value) if is_hub_url(value) else Path(value)


# ----------------------------------------------------------------------------------------------------------------
# push

def _source_files(checkpoint: Path) -> dict[str, Path]:
    """{name in the repo: local file} of a checkpoint folder (or a loose generator file) among HUB_FILES."""
    generator = resolve_generator_path(checkpoint)
    files = {GENERATOR_FILE: generator}
    if generator.name == GENERATOR_FILE:
        for name in HUB_FILES:
            if name != GENERATOR_FILE and (generator.parent / name).is_file():
                files[name] = generator.parent / name
    else:
        directions = generator.with_name(generator.name.removesuffix(".safetensors") + ".directions.safetensors")
        if directions.is_file():
            files["directions.safetensors"] = directions
    return files


def model_card(text: str, info: dict[str, Any], model: Any, repo_id: str) -> str:
    """The card ``text`` (an existing README.md, or "" for a generated one) with the Hub's front matter added:
    library_name, tags, datasets, license and pipeline_tag; keys it already has are kept."""
    from huggingface_hub import ModelCard

    dataset = info.get("dataset")
    if not text.strip():
        title = f"DCGAN generator: {dataset or 'unknown data'}, {model.image_size}x{model.image_size}"
        text = (f"# {title}\n\nA {model.arch} generator (z_dim {model.z_dim}, ngf {model.ngf}) trained with "
                f"dcgan-explorer, step {info.get('step', '?')}.\n\n![64 samples, seeds 0-63]({SAMPLES_FILE})\n")
    card = ModelCard(text)
    data = card.data
    data.library_name = data.library_name or LIBRARY_NAME
    data.tags = list(dict.fromkeys([*(data.tags or []), *HUB_TAGS]))
    data.pipeline_tag = data.pipeline_tag or PIPELINE_TAG
    data.license = data.license or DATASET_LICENSES.get(dataset, "other")
    if not data.datasets and dataset in DATASET_REPOS:
        data.datasets = [DATASET_REPOS[dataset]]
    usage = f"dcgan sample hf://{repo_id}"
    if usage not in card.text:
        card.text = card.text.rstrip("\n") + (f"\n\n## Use it from the Hub\n\nWith dcgan-explorer and its `hub` extra installed:\n\n"
                                              f"```\n{usage} --seeds 0-63 --out grid.png\npython app.py --checkpoints hf://{repo_id}\n```\n")
    return str(card)


def write_push_folder(checkpoint: Path | str, out_dir: Path | str, repo_id: str) -> list[str]:
    """Write to ``out_dir`` (new or empty) exactly the folder `dcgan push` uploads; returns its file names.

    The generator goes through the safe loader first, so a broken file is refused before anything is uploaded;
    a checkpoint without samples.png gets one (seeds 0-63), and the card gets the Hub's front matter.
    """
    if not valid_repo_id(repo_id):
        raise DCGANError(f"{repo_id!r}: not a Hub repo id; write user/repo (letters, digits, '-', '_', '.')")
    checkpoint, out_dir = local_checkpoint(checkpoint), Path(out_dir)
    files = _source_files(checkpoint)
    G, meta = load_generator(files[GENERATOR_FILE])
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DCGANError(f"{out_dir}: not an empty folder; the upload folder must hold only what is uploaded")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        if name != CARD_FILE:
            shutil.copyfile(source, out_dir / name)
    if SAMPLES_FILE not in files:
        import torch

        from .images import make_grid, save_png
        from .latent import latents_from_seeds

        with torch.no_grad():
            save_png(make_grid(G(latents_from_seeds(list(range(64)), meta.model.z_dim))), out_dir / SAMPLES_FILE)
    text = files[CARD_FILE].read_text(encoding="utf-8") if CARD_FILE in files else ""
    (out_dir / CARD_FILE).write_text(model_card(text, meta.info, meta.model, repo_id), encoding="utf-8")
    return sorted(p.name for p in out_dir.iterdir())


def push(checkpoint: Path | str, repo_id: str, *, private: bool = False) -> str:
    """Upload a checkpoint to the Hub model repo ``repo_id`` (created if missing, private if asked) with
    HfApi.upload_folder; returns the commit's URL. The token is huggingface_hub's (HF_TOKEN or `hf auth login`)."""
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError as exc:
        raise DCGANError(f"dcgan push: {INSTALL_HINT}") from exc
    if offline():
        raise DCGANError("dcgan push: HF_HUB_OFFLINE is set and an upload needs the network; "
                         "--dry-run --out DIR writes the folder that would be uploaded")
    with tempfile.TemporaryDirectory(prefix="dcgan-push-") as tmp:
        folder = Path(tmp) / "upload"
        names = write_push_folder(checkpoint, folder, repo_id)
        api = HfApi()
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model",
                                       commit_message=f"dcgan push: {', '.join(names)}")
        except HfHubHTTPError as exc:
            raise DCGANError(f"dcgan push {repo_id}: the Hub refused the upload ({exc}); is your token "
                             f"(HF_TOKEN or `hf auth login`) allowed to write there?") from exc
    log.info("pushed %s to %s", ", ".join(names), repo_id)
    return str(getattr(commit, "commit_url", commit))
