"""Hugging Face Hub checkpoints: `hf://user/repo[@revision]` comes through huggingface_hub's cache (only the files we
know), then the same safe loader as a local folder (dcgan.checkpoints calls download_checkpoint). Pushing is
dcgan.hub_push. huggingface_hub (the `hub` extra) is imported only when a Hub model is used.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import CheckpointError

HUB_SCHEME = "hf://"
# the file names of dcgan.checkpoints, dcgan.directions and dcgan.rundir, spelled out: this module imports nothing of
# ours but errors, so dcgan.checkpoints can import it (tests/dcgan/test_hub.py checks they agree)
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"  # pushed and fetched where a checkpoint has one
CARD_FILE = "README.md"
SAMPLES_FILE = "samples.png"
# everything a checkpoint folder may hold that we read; snapshot_download fetches nothing else (no pickles, no state.pt)
# (ratings: the arithmetic presets' exemplar ratings; probe.json: D's section-5 table, shown by the Inside tab)
HUB_FILES = (GENERATOR_FILE, DISCRIMINATOR_FILE, "directions.safetensors", "ratings.safetensors", "encoder.safetensors",
             "metrics.json", "probe.json", "config.json", SAMPLES_FILE, CARD_FILE)
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
