"""hf:// checkpoints through huggingface_hub's real cache code (offline, a Hub cache laid out in a temp HF_HUB_CACHE),
and `dcgan push`'s upload folder (--dry-run) and upload calls."""
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("huggingface_hub")
from huggingface_hub import ModelCard  # noqa: E402

from dcgan import directions, hub, hub_push, ratings, rundir  # noqa: E402
from dcgan.checkpoints import GENERATOR_FILE, load_generator  # noqa: E402
from dcgan.cli import main  # noqa: E402
from dcgan.encoder import ENCODER_FILE  # noqa: E402
from dcgan.errors import CheckpointError, DCGANError  # noqa: E402
from dcgan.images import make_grid  # noqa: E402
from dcgan.latent import latents_from_seeds  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / "checkpoints" / "mnist"
MAIN_COMMIT = "a" * 40
TAG_COMMIT = "b" * 40


def add_snapshot(cache: Path, repo_id: str, commit: str, files: dict[str, Path], refs: tuple[str, ...] = ("main",)) -> Path:
    """Lay out one commit of a model repo as huggingface_hub's cache stores it: blobs/<sha256>, snapshots/<commit>/<name>
    as relative symlinks to the blobs, refs/<branch or tag> holding the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, source in files.items():
        data = source.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def test_hub_file_names_are_the_libraries_own():
    assert {GENERATOR_FILE, directions.DIRECTIONS_FILE, rundir.CONFIG_FILE} <= set(hub.HUB_FILES) and hub.GENERATOR_FILE == GENERATOR_FILE
    assert ratings.RATINGS_FILE in hub.HUB_FILES and ENCODER_FILE in hub.HUB_FILES


def folder_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_ckpt):
    """user/mnist: main = checkpoints/mnist; tag v1 = the tiny run's generator. Offline, so nothing can be fetched."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    add_snapshot(cache, "user/mnist", MAIN_COMMIT, {n: MNIST / n for n in hub.HUB_FILES if (MNIST / n).is_file()})
    add_snapshot(cache, "user/mnist", TAG_COMMIT, {GENERATOR_FILE: tiny_ckpt / GENERATOR_FILE}, refs=("v1",))
    return cache


def images(path, seeds=(0, 1, 2, 3)) -> torch.Tensor:
    G, meta = load_generator(path)
    with torch.no_grad():
        return G(latents_from_seeds(list(seeds), meta.model.z_dim))


def test_load_generator_from_the_hub_cache_offline(hub_cache):
    G, meta = load_generator("hf://user/mnist")
    assert Path(meta.path).parent.name == MAIN_COMMIT and meta.model.image_size == 32
    assert torch.equal(images("hf://user/mnist"), images(MNIST))


def test_revision_names_a_tag_or_a_commit(hub_cache, tiny_ckpt):
    expected = images(tiny_ckpt)
    assert torch.equal(images("hf://user/mnist@v1"), expected)
    assert torch.equal(images(f"hf://user/mnist@{TAG_COMMIT}"), expected)


@pytest.mark.parametrize("url, message", [
    ("hf://user/absent", "HF_HUB_OFFLINE is set"),
    ("hf://user/mnist@no-such-tag", "not in the Hugging Face cache"),
    ("hf://mnist", "not a Hub model"),
    ("hf://user/mnist@", "not a Hub model"),
    ("hf://user/a--b", "not a Hub model"),
])
def test_bad_or_missing_hub_models_are_clear_errors(hub_cache, url, message):
    with pytest.raises(CheckpointError, match=message):
        load_generator(url)


def test_a_repo_without_a_generator_is_refused(hub_cache):
    add_snapshot(hub_cache, "user/cardonly", "c" * 40, {"README.md": MNIST / "README.md"})
    with pytest.raises(CheckpointError, match="has no generator.safetensors"):
        load_generator("hf://user/cardonly")


def test_cli_sample_from_the_hub_matches_the_local_checkpoint(hub_cache, tmp_path):
    assert main(["sample", "hf://user/mnist", "--seeds", "0-7", "--out", str(tmp_path / "hub.npy")]) == 0
    assert main(["sample", str(MNIST), "--seeds", "0-7", "--out", str(tmp_path / "local.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "hub.npy"), np.load(tmp_path / "local.npy"))


def test_cli_edit_and_directions_list_read_the_hub_snapshot(hub_cache, tmp_path, capsys):
    """The verbs that use the directions file find it in the snapshot, as beside a local checkpoint."""
    argv = ["--seed", "3", "--amount", "digit-3=2", "--keep-fixed", "digit-8"]
    assert main(["edit", "hf://user/mnist", *argv, "--out", str(tmp_path / "hub.png")]) == 0
    assert main(["edit", str(MNIST), *argv, "--out", str(tmp_path / "local.png")]) == 0
    assert (tmp_path / "hub.png").read_bytes() == (tmp_path / "local.png").read_bytes()
    capsys.readouterr()
    assert main(["directions", "hf://user/mnist", "--list"]) == 0
    assert "digit-8" in capsys.readouterr().out


def test_cli_refuses_to_write_directions_into_the_cache(hub_cache, capsys):
    assert main(["directions", "hf://user/mnist"]) == 2
    assert "give --out" in capsys.readouterr().err


def test_the_explorer_lists_a_hub_model_by_its_repo_name(hub_cache):
    from explorer.registry import CheckpointRegistry

    registry = CheckpointRegistry([hub.local_checkpoint("hf://user/mnist")])
    assert registry.names() == ["mnist"]
    assert registry.describe("mnist").model.image_size == 32


def test_app_refuses_an_unavailable_hub_model(hub_cache, capsys):
    import app

    assert app.main(["--checkpoints", "hf://user/absent", "--no-train"]) == 2
    assert "hf://user/absent" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# push

def test_push_dry_run_writes_the_upload_folder_with_hub_front_matter(tmp_path):
    out = tmp_path / "upload"
    assert main(["push", str(MNIST), "user/dcgan-mnist", "--dry-run", "--out", str(out)]) == 0
    shipped = {n for n in hub.HUB_FILES if (MNIST / n).is_file()}
    assert set(folder_files(out)) == shipped == {GENERATOR_FILE, "discriminator.safetensors", "directions.safetensors", "metrics.json",
                                                  "probe.json", "samples.png", "README.md"}
    for name in shipped - {"README.md"}:
        assert (out / name).read_bytes() == (MNIST / name).read_bytes()
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "dcgan-explorer" and data["pipeline_tag"] == "unconditional-image-generation"
    assert set(hub_push.HUB_TAGS) <= set(data["tags"])
    assert data["datasets"] == ["ylecun/mnist"] and data["license"] == "cc-by-sa-3.0"
    assert data["arch"] == "dcgan" and data["step"] == 22000  # the shipped card's own keys are kept
    original = ModelCard.load(MNIST / "README.md").text
    assert card.text.startswith(original.rstrip("\n")) and "dcgan sample hf://user/dcgan-mnist" in card.text


def test_push_dry_run_of_a_run_dir(tiny_ckpt, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_ckpt, run)
    (run / hub.DISCRIMINATOR_FILE).write_bytes(b"stand-in")  # pushed when a checkpoint has one
    out = tmp_path / "upload"
    hub_push.write_push_folder(run, out, "user/tiny")
    assert set(folder_files(out)) == {"generator.safetensors", "discriminator.safetensors", "config.json", "samples.png", "README.md"}
    assert not (out / "state.pt").exists() and not (out / "samples").exists()  # no pickles, no training state
    G, meta = load_generator(run)
    with torch.no_grad():
        grid = make_grid(G(latents_from_seeds(list(range(64)), meta.model.z_dim)))
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(out / "samples.png").convert("RGB")), grid)
    data = ModelCard.load(out / "README.md").data.to_dict()
    assert data["license"] == "other" and "datasets" not in data and data["library_name"] == "dcgan-explorer"


def test_pushed_folder_loads_back_through_the_hub_cache(tmp_path, monkeypatch):
    out = tmp_path / "upload"
    hub_push.write_push_folder(MNIST, out, "user/roundtrip")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    add_snapshot(tmp_path / "cache", "user/roundtrip", MAIN_COMMIT, folder_files(out))
    assert torch.equal(images("hf://user/roundtrip"), images(MNIST))


@pytest.mark.parametrize("argv, message", [
    (["--dry-run"], "give both or neither"),
    (["--out", "x"], "give both or neither"),
])
def test_push_flags_are_checked(argv, message, capsys):
    assert main(["push", str(MNIST), "user/x", *argv]) == 2
    assert message in capsys.readouterr().err


def test_push_refuses_a_non_empty_folder_and_bad_repo_ids(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    assert main(["push", str(MNIST), "user/x", "--dry-run", "--out", str(tmp_path)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["push", str(MNIST), "no-owner", "--dry-run", "--out", str(tmp_path / "new")]) == 2
    assert "not a Hub repo id" in capsys.readouterr().err


def test_push_uploads_the_dry_run_folder(tmp_path, monkeypatch):
    """The upload itself needs the network; HfApi is replaced by a recorder of what would be sent."""
    import huggingface_hub

    calls = []

    class RecordingApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, *, folder_path, repo_id, **kwargs):
            calls.append(("upload_folder", repo_id, {n: p.read_bytes() for n, p in folder_files(Path(folder_path)).items()}))
            return "https://huggingface.co/user/dcgan-mnist/commit/0"

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    assert hub_push.push(MNIST, "user/dcgan-mnist", private=True).endswith("/commit/0")
    hub_push.write_push_folder(MNIST, tmp_path / "dry", "user/dcgan-mnist")
    (create, repo, options), (upload, repo_again, uploaded) = calls
    assert create == "create_repo" and options["private"] is True and options["exist_ok"] is True and repo == "user/dcgan-mnist"
    assert upload == "upload_folder" and uploaded == {n: p.read_bytes() for n, p in folder_files(tmp_path / "dry").items()}


def test_push_offline_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", str(MNIST), "user/x"]) == 2
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_a_failed_upload_is_a_clear_error(monkeypatch):
    import huggingface_hub

    class UnreachableApi:
        def create_repo(self, repo_id, **kwargs):
            raise ConnectionError("connection refused")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", UnreachableApi)
    with pytest.raises(DCGANError, match="upload failed .ConnectionError: connection refused.; check the network"):
        hub_push.push(MNIST, "user/dcgan-mnist")
