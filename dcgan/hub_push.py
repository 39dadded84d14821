"""`dcgan push`: the folder a checkpoint is uploaded to the Hugging Face Hub as (generator, discriminator and directions
where present, metrics, config, samples, and the model card with the Hub's front matter), and the upload itself with
HfApi.upload_folder. `--dry-run --out DIR` writes the same folder without uploading.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .checkpoints import GENERATOR_FILE, load_generator, resolve_generator_path
from .config import ModelConfig
from .errors import DCGANError
from .hub import CARD_FILE, HUB_FILES, INSTALL_HINT, SAMPLES_FILE, local_checkpoint, offline, valid_repo_id

log = logging.getLogger(__name__)

HUB_TAGS = ("dcgan", "gan", "unconditional-image-generation")
PIPELINE_TAG = "unconditional-image-generation"
LIBRARY_NAME = "dcgan-explorer"
DATASET_REPOS = {"mnist": "ylecun/mnist", "fashion-mnist": "zalando-datasets/fashion_mnist", "cifar10": "uoft-cs/cifar10",
                 "celeba": "huggan/CelebA-faces-with-attributes"}  # the Hub's copies (celeba: the HugGAN sprint's)
DATASET_LICENSES = {"mnist": "cc-by-sa-3.0", "fashion-mnist": "mit"}  # weights follow their data's terms; others: "other"


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


def model_card(text: str, info: dict[str, Any], model: ModelConfig, repo_id: str) -> str:
    """The card ``text`` (an existing README.md, or "" for a generated one) with the Hub's front matter added:
    library_name, tags, datasets, license and pipeline_tag; keys it already has are kept."""
    try:
        from huggingface_hub import ModelCard
    except ImportError as exc:
        raise DCGANError(f"dcgan push: {INSTALL_HINT}") from exc
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
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DCGANError(f"{out_dir}: not an empty folder; the upload folder must hold only what is uploaded")
    files = _source_files(local_checkpoint(checkpoint))
    G, meta = load_generator(files[GENERATOR_FILE])
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
        except Exception as exc:  # the HTTP client's connection and timeout errors: all mean nothing was uploaded
            raise DCGANError(f"dcgan push {repo_id}: the upload failed ({type(exc).__name__}: {exc}); "
                             f"check the network and try again") from exc
    log.info("pushed %s to %s", ", ".join(names), repo_id)
    return str(getattr(commit, "commit_url", commit))
