"""explorer.downloads: the Generate grid's .zip holds the very PNGs `dcgan sample --out DIR/` writes, and the latent
.npy is the seed contract's vector."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from dcgan import cli
from dcgan.errors import ConfigError, LatentError
from dcgan.latent import latent_from_seed, truncate
from explorer import service
from explorer.downloads import grid_zip, latent_npy


@pytest.mark.parametrize("model", ["tiny", "tiny-grey"])
def test_the_grid_zip_holds_the_clis_per_seed_pngs_byte_for_byte(catalog, out, checkpoints_dir, tmp_path, model):
    path = grid_zip(catalog, model, "3,7,42,7", 0.8, out=out)  # 7 twice: one file
    folder = tmp_path / "cli"
    assert cli.main(["sample", str(checkpoints_dir / model), "--seeds", "3,7,42", "--truncation", "0.8", "--out", f"{folder}/"]) == 0
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["seed-000003.png", "seed-000007.png", "seed-000042.png"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        for name in archive.namelist():
            assert archive.read(name) == (folder / name).read_bytes(), name

        grid = service.generate(catalog, model, "3,7,42", 0.8)  # what the Generate tab shows, tile by tile
        for seed, tile in zip(grid.seeds, grid.images):
            img = np.asarray(Image.open(io.BytesIO(archive.read(f"seed-{seed:06d}.png"))))
            assert np.array_equal(img, service.squeeze(tile)), seed
            assert img.shape[:2] == (16, 16)  # native size


@pytest.mark.parametrize("psi", [1.0, 0.8])
def test_the_latent_npy_is_the_seed_contracts_vector(catalog, out, psi):
    z = np.load(latent_npy(catalog, "tiny", 123, psi, out=out))
    assert z.dtype == np.float32 and z.shape == (8,)
    assert np.array_equal(z, truncate(latent_from_seed(123, 8), psi).numpy())
    if psi == 1.0:
        assert np.array_equal(z, latent_from_seed(123, 8).numpy())


def test_downloads_check_their_inputs_as_the_endpoints_do(catalog, out):
    with pytest.raises(LatentError, match="seeds"):
        grid_zip(catalog, "tiny", "0-99", 1.0, out=out)
    with pytest.raises(ConfigError, match="truncation"):
        latent_npy(catalog, "tiny", 1, 2.0, out=out)
    with pytest.raises(LatentError, match="seed"):
        latent_npy(catalog, "tiny", -1, 1.0, out=out)
