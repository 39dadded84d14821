"""Your image in the explorer: the latent store, latent names in seed lists, projection through the service and
the /project, /latent, /latent_upload endpoints (gradio_client); latent names accepted by seed-taking endpoints."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan.errors import LatentError
from dcgan.latent import format_seeds, latent_from_seed
from dcgan.project import ImageError, save_latents
from explorer import service
from explorer.downloads import latent_npy
from explorer.latents import LatentStore, resolve
from explorer.validation import check_ref, ref_list, seed_text

from .conftest import api_client


def _png_bytes(size=(40, 30), colour=(200, 40, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------------------
# store and parsing

def test_store_names_are_stable_and_bounded():
    store = LatentStore(max_latents=2)
    a, b, c = (latent_from_seed(s, 8) for s in (1, 2, 3))
    name_a = store.add(a)
    assert store.add(a.clone()) == name_a and torch.equal(store.get(name_a, 8), a)
    store.add(b)
    store.add(c)
    with pytest.raises(LatentError, match="unknown"):
        store.get(name_a, 8)  # the oldest was forgotten
    with pytest.raises(LatentError, match="z_dim is 100"):
        store.get(store.add(c), 100)
    with pytest.raises(LatentError, match="look like img-"):
        store.get("img-zzz", 8)


def test_resolve_mixes_seeds_and_names_with_truncation():
    store = LatentStore()
    z = latent_from_seed(99, 8) * 0.5
    name = store.add(z)
    out = resolve(store, [3, name], 8, truncation=0.5)
    assert torch.equal(out[0], latent_from_seed(3, 8) * 0.5) and torch.equal(out[1], z * 0.5)


def test_seed_lists_accept_latent_names_and_refuse_bad_ones():
    name = "img-0123456789ab"
    assert ref_list(f"3, {name}, 5-6", what="seeds", max_count=8) == [3, name, 5, 6]
    assert ref_list([1, name], what="seeds", max_count=8) == [1, name]
    assert ref_list("0-2", what="seeds", max_count=8) == [0, 1, 2]
    assert check_ref(name) == name and check_ref(7) == 7
    with pytest.raises(LatentError, match="seed"):
        check_ref("7")  # a seed is an integer; strings are latent names only
    assert format_seeds([3, name]) == f"3,{name}" and format_seeds([0, 1, 2]) == "0-2"
    for bad in ("3, img-XYZ", "img-0123456789abc", "img-"):
        with pytest.raises(LatentError, match="latent name"):
            ref_list(bad, what="seeds", max_count=8)
    with pytest.raises(LatentError, match="more than 2"):
        ref_list(f"0-1, {name}", what="seeds", max_count=2)


@pytest.mark.parametrize("text, seed", [("42", 42), (" 7 ", 7), ("4294967295", 4294967295), (3, 3),
                                        ("img-0123456789ab", "img-0123456789ab"), (" img-0123456789ab ", "img-0123456789ab")])
def test_the_current_seed_box_reads_seeds_and_latent_names(text, seed):
    assert seed_text(text) == seed


@pytest.mark.parametrize("text, says", [
    ("abc", "neither a seed (an integer from 0 to 4294967295) nor a latent name"), ("-1", "neither a seed"), ("1.5", "neither"),
    ("", "neither"), ("٣", "neither"), (None, "neither"), (True, "neither"), ("4294967296", "must be an integer from 0 to 4294967295"),
    ("img-0123", "not a latent name; they look like img-0123456789ab"), ("img-0123456789AB", "not a latent name"),
])
def test_the_current_seed_box_refuses_anything_else(text, says):
    with pytest.raises(LatentError, match="current seed") as refused:
        seed_text(text)
    assert says in str(refused.value)


# ----------------------------------------------------------------------------------------------------------------
# service on the tiny generator

def test_projected_latent_works_wherever_a_seed_does(catalog, out):
    result = service.project(catalog, "tiny", _png_bytes(), "fast")
    assert result.name.startswith("img-") and result.prepared.shape == (16, 16, 3) == result.reconstruction.shape
    assert 0 < result.quality["psnr"] < 100
    samples = service.generate(catalog, "tiny", f"0, {result.name}")
    assert samples.seeds == [0, result.name]
    assert np.array_equal(samples.images[1], result.reconstruction)
    assert service.edit(catalog, "tiny", result.name).shape == (16, 16, 3)
    arithmetic = service.arithmetic(catalog, "tiny", result.name, "1", "2")
    assert arithmetic.centre.shape == (16, 16, 3)
    walk = service.interpolate(catalog, "tiny", f"{result.name}, 4", frames=2, loop="once", out=out, strip=False)
    assert np.array_equal(walk.frames[0], result.reconstruction)
    path = service.latent_file(catalog, "tiny", result.name, out=out)
    assert service.latent_upload(catalog, "tiny", path.read_bytes()) == [result.name]


def test_current_seed_needs_a_latent_this_app_keeps_for_the_model(catalog):
    name = catalog.latents.add(latent_from_seed(3, 8))
    assert service.current_seed(catalog, "tiny", "12") == 12 and service.current_seed(catalog, "tiny", name) == name
    assert service.current_seed(catalog, None, "img-0123456789ab") == "img-0123456789ab"  # no model yet: only its form
    with pytest.raises(LatentError, match="unknown here"):
        service.current_seed(catalog, "tiny", "img-0123456789ab")
    with pytest.raises(LatentError, match="z_dim is 8"):
        service.current_seed(catalog, "tiny", catalog.latents.add(torch.zeros(9)))


def test_a_latent_as_current_seed_and_in_the_concept_groups(catalog, out):
    """Everything the header's seed feeds takes a latent name; a latent kept from seed 3 gives seed 3's pixels."""
    three, four = catalog.latents.add(latent_from_seed(3, 8)), catalog.latents.add(latent_from_seed(4, 8))
    assert np.array_equal(service.seed_image(catalog, "tiny", three, 0.7), service.seed_image(catalog, "tiny", 3, 0.7))
    moved = {"sefa-0": 2.0}
    assert np.array_equal(service.edit(catalog, "tiny", three, moved, 0.7), service.edit(catalog, "tiny", 3, moved, 0.7))
    assert np.array_equal(service.concept(catalog, "tiny", three, f"{four}, 1", "2", 1.5, 0.7),
                          service.concept(catalog, "tiny", 3, "4, 1", "2", 1.5, 0.7))
    assert service.concept_length(catalog, "tiny", four, "2") == service.concept_length(catalog, "tiny", "4", "2")
    with pytest.raises(LatentError, match="group A"):
        service.concept(catalog, "tiny", 3, "img-nothex", "2")
    np.testing.assert_array_equal(np.load(latent_npy(catalog, "tiny", three, 0.5, out=out)),
                                  np.load(latent_npy(catalog, "tiny", 3, 0.5, out=out)))


def test_the_edit_snippet_of_a_latent_fetches_its_values(catalog):
    name = catalog.latents.add(latent_from_seed(3, 8))
    snippet = service.edit_snippet(catalog, "tiny", name, {"sefa-0": 2.0}, 0.5, url="http://host:1/")
    compile(snippet, "snippet", "exec")
    assert f"# latent {name} of 'tiny'" in snippet
    assert f".predict('tiny', '{name}', {{'sefa-0': 2.0}}, 0.5, [], api_name=\"/edit\")" in snippet
    assert f"np.load(Client('http://host:1/').predict('tiny', '{name}', api_name=\"/latent\"))" in snippet
    assert "latent_from_seed(3" not in snippet
    assert "z0 = latent_from_seed(3, info.model.z_dim)" in service.edit_snippet(catalog, "tiny", 3, {})


def test_unknown_names_and_bad_files_are_refused(catalog):
    with pytest.raises(LatentError, match="unknown"):
        service.generate(catalog, "tiny", "img-0123456789ab")
    with pytest.raises(LatentError, match="shape"):
        service.latent_upload(catalog, "tiny", save_latents(torch.zeros(2, 9)))
    with pytest.raises(LatentError, match="NaN"):
        service.latent_upload(catalog, "tiny", save_latents(torch.full((8,), float("nan"))))
    with pytest.raises(ImageError, match="not a usable image"):
        service.project(catalog, "tiny", b"not an image")
    with pytest.raises(LatentError, match="mode"):
        service.project(catalog, "tiny", _png_bytes(), "slow")


# ----------------------------------------------------------------------------------------------------------------
# the API

@pytest.fixture(scope="module")
def client(checkpoints_dir, tmp_path_factory, gradio_env):
    from explorer.derived import Catalog
    from explorer.registry import CheckpointRegistry

    with api_client(Catalog(CheckpointRegistry([checkpoints_dir])), tmp_path_factory, "latents") as client:
        yield client


def test_api_project_latent_and_upload(client, tmp_path):
    from gradio_client import handle_file

    image = tmp_path / "me.png"
    image.write_bytes(_png_bytes((64, 48)))
    name, reconstruction, quality = client.predict("tiny", handle_file(str(image)), "fast", api_name="/project")
    assert name.startswith("img-") and set(quality) >= {"psnr"}
    with Image.open(reconstruction) as img:
        assert img.size == (16, 16)
    npy = client.predict("tiny", name, api_name="/latent")
    z = np.load(npy)
    assert z.shape == (8,) and z.dtype == np.float32
    assert client.predict("tiny", handle_file(npy), api_name="/latent_upload") == [name]
    grid, meta = client.predict("tiny", f"{name}, 1", 1.0, api_name="/generate")
    assert meta["seeds"] == [name, 1]
    edited = client.predict("tiny", name, {"sefa-0": 2.0}, 1.0, None, api_name="/edit")
    with Image.open(edited) as img:
        assert img.size == (16, 16)
    for api, args in {"/concept": (name, f"{name}, 1", "2", 1.0, 1.0), "/nearest": (name, 1.0, 2),
                      "/g_features": (name, 1), "/ablate": (name, {"1": [0]})}.items():
        result = client.predict("tiny", *args, api_name=api)
        path = result[0] if isinstance(result, (list, tuple)) else result
        with Image.open(path) as img:
            assert img.size[1] >= 16, api


def test_api_refuses_bad_images_latents_and_names(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(AppError, match="not a usable image"):
        client.predict("tiny", handle_file(str(bad)), "fast", api_name="/project")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full(8, np.nan, np.float32))
    with pytest.raises(AppError, match="NaN"):
        client.predict("tiny", handle_file(str(nan)), api_name="/latent_upload")
    with pytest.raises(AppError, match="unknown"):
        client.predict("tiny", "img-0123456789ab", api_name="/latent")
    with pytest.raises(AppError, match="latent name"):
        client.predict("tiny", "3, img-nothex", 1.0, api_name="/generate")
