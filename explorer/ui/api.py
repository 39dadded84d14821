"""The public API (gradio_client): one endpoint per action, stable names, images at the model's native size.

The UI's own events are private (they return display values); these endpoints return PNG/GIF/MP4 files and plain
JSON. Type hints become the endpoint schemas, so this module must not use ``from __future__ import annotations``.
Example: ``Client(url).predict("celeba-64", 42, {"sefa-0": 2.0}, api_name="/edit")`` -> path of a 64x64 PNG.
"""
from typing import Callable, Optional, Union

from gradio.data_classes import FileData

from .. import service
from ..derived import Catalog
from ..outputs import OutputDir
from .context import add_endpoints
from .fairness import VisitorBudget


def register_api(catalog: Catalog, out: OutputDir, *, concurrency_limit: int, budget: Optional[VisitorBudget] = None) -> None:
    """Add the endpoints to the Blocks being built (call inside ``with gr.Blocks()``); with a ``budget``, the image
    endpoints count against their caller's share of generator time."""

    def file(path) -> FileData:
        return FileData(path=str(path))

    def png(img, stem: str) -> FileData:
        return file(out.png(img, stem))

    def models() -> list[dict]:
        """Every model: name, dataset, arch, image_size, channels, z_dim, training step."""
        return service.models(catalog)

    def directions(model: str) -> list[str]:
        """Direction names of a model, for /edit: sefa-0.., pca-0.., then classes/attributes (e.g. Smiling, digit-7)."""
        return service.directions(catalog, model)

    def generate(model: str, seeds: str = "0-15", truncation: float = 1.0) -> tuple[FileData, dict]:
        """Samples for a seed list ("0-15", "3,7,42" or "random"; at most {MAX_GENERATE_SEEDS}) as one PNG grid of
        native-size tiles without padding, and {{"seeds", "columns", "rows", "tile_size"}}: tile i is at row
        i // columns, column i % columns."""
        samples = service.generate(catalog, model, seeds, truncation)
        columns = service.grid_columns(len(samples.seeds))
        meta = {"seeds": samples.seeds, "columns": columns, "rows": -(-len(samples.seeds) // columns),
                "tile_size": list(samples.images.shape[1:3])}
        return png(samples.grid(columns), f"{model}-{service.format_seeds(samples.seeds)[:40]}"), meta

    def edit(model: str, seed: Union[int, str], amounts: Optional[dict[str, float]] = None, truncation: float = 1.0,
             keep_fixed: Optional[list[str]] = None) -> FileData:
        """The image of a seed moved along directions: amounts {{direction name: amount}} (at most
        {MAX_AMOUNT_ENTRIES}), |amount| <= {MAX_AMOUNT:g} (unit vectors in z). keep_fixed: direction names to hold still
        (each moved direction is made orthogonal to them)."""
        return png(service.edit(catalog, model, seed, amounts, truncation, keep_fixed), f"{model}-seed{seed}-edit")

    def arithmetic(model: str, seeds_a: str, seeds_b: str, seeds_c: str, noise: float = 0.25, noise_seed: int = 0,
                   truncation: float = 1.0) -> tuple[FileData, FileData, FileData]:
        """Y = mean(A) - mean(B) + mean(C) over 1-{MAX_GROUP_SEEDS} seeds per group: (G(Y), the paper's 3x3 grid of
        G(Y) and 8 variants Y + U(-noise, noise) drawn with noise_seed, noise <= {MAX_NOISE:g}, the same arithmetic
        in pixel space)."""
        result = service.arithmetic(catalog, model, seeds_a, seeds_b, seeds_c, noise, noise_seed, truncation)
        stem = f"{model}-arithmetic"
        return png(result.centre, stem), png(result.grid, stem + "-grid"), png(result.pixel, stem + "-pixels")

    def arithmetic_preset(model: str, preset: str, count: int = 3) -> dict[str, list[int]]:
        """Exemplar seeds {{"A", "B", "C"}} (1-{MAX_PRESET_COUNT} each) for a named preset, picked by the attribute
        classifier among seeds 0-{PRESET_SEARCH_LAST} (face models), whose results G(Y) it has rated."""
        return service.arithmetic_preset(catalog, model, preset, count)

    def concept(model: str, seed: Union[int, str], seeds_a: str, seeds_b: str, amount: float = 1.0, truncation: float = 1.0) -> FileData:
        """A seed moved by amount along the unit concept vector mean(A) - mean(B) (e.g. A smiling, B neutral)."""
        return png(service.concept(catalog, model, seed, seeds_a, seeds_b, amount, truncation), f"{model}-seed{seed}-concept")

    def interpolate(model: str, keyframes: str, frames: int = 16, method: str = "slerp", fps: float = 12.0,
                    loop: str = "loop", truncation: float = 1.0) -> tuple[FileData, FileData]:
        """A walk through keyframe seeds (2-{MAX_KEYFRAMES}): frames per segment (1-{MAX_FRAMES_PER_SEGMENT}, at most
        {MAX_TOTAL_FRAMES} in all), method slerp|linear, loop: "loop" (back to the first), "pingpong" or "once".
        Returns (GIF looping forever at native size, MP4 enlarged by nearest neighbour to >= {MP4_MIN_SIDE} px)."""
        result = service.interpolate(catalog, model, keyframes, frames, method, fps, loop, truncation, out=out, strip=False)
        return file(result.gif_path), file(result.mp4_path)

    def nearest(model: str, seed: Union[int, str], truncation: float = 1.0, k: int = 8) -> tuple[FileData, list[dict]]:
        """The k (1-{MAX_NEAREST}) training images nearest to the seed's sample in pixel space: a PNG row (query
        first) and [{{"index", "distance"}}] (RMS, grey levels). Needs the model's training data on the server."""
        result = service.nearest(catalog, model, seed, truncation, k)
        return png(result.row(), f"{model}-seed{seed}-nearest"), [{"index": i, "distance": d}
                                                                  for i, d in zip(result.indices, result.distances)]

    # listings unmetered (directions may wait for the background worker: not the caller's compute)
    add_endpoints([with_limits(fn) for fn in (models, directions)], concurrency_limit=concurrency_limit)
    add_endpoints([with_limits(fn) for fn in (generate, edit, arithmetic, arithmetic_preset, concept, interpolate, nearest)],
                  concurrency_limit=concurrency_limit, budget=budget)


def with_limits(fn: Callable) -> Callable:
    """Fill an endpoint docstring's {LIMIT} placeholders from explorer.service, so the documented limits are the
    enforced ones."""
    fn.__doc__ = (fn.__doc__ or "").format(**service.LIMITS)
    return fn
