"""UI handlers hand Gradio files, not arrays: Gradio rewrites an array's cache file each time the same image comes
back, and a browser fetching it meanwhile gets a short read."""
from __future__ import annotations

import numpy as np
from PIL import Image

from explorer.outputs import OutputDir
from explorer.ui.context import as_files


def test_images_anywhere_in_a_result_become_png_files_with_the_same_pixels(tmp_path):
    out = OutputDir(tmp_path)
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    grey = np.zeros((4, 4), np.uint8)
    centre, gallery, note, update = as_files((rgb, [(grey, "seed 1"), (rgb, "seed 2")], "3 images", {"visible": True}), out)
    assert np.array_equal(np.asarray(Image.open(centre)), rgb)
    assert [caption for _, caption in gallery] == ["seed 1", "seed 2"]
    assert np.array_equal(np.asarray(Image.open(gallery[0][0])), grey)
    assert (note, update) == ("3 images", {"visible": True})
    assert len({centre, gallery[1][0]}) == 2  # the same image twice: two files, neither ever rewritten


def test_other_arrays_and_values_pass_through(tmp_path):
    table = np.zeros((3, 3), np.float32)
    assert as_files(table, OutputDir(tmp_path)) is table
    assert as_files(None, OutputDir(tmp_path)) is None
