"""A generator as ONNX (`dcgan export CK --onnx g.onnx`): input ``z`` [N, z_dim] float32 with a dynamic batch, output
``x`` [N, C, H, W] in [-1, 1]; checked against torch with onnxruntime. Needs the `onnx` extra (onnx, onnxscript,
onnxruntime): torch's dynamo exporter writes it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import DCGANError
from .io import atomic_write_bytes
from .latent import latents_from_seeds

log = logging.getLogger(__name__)

OPSET = 18
TOLERANCE = 1e-3       # largest |onnxruntime - torch| accepted, pixels in [-1, 1]
CHECK_SEEDS = range(64)
INSTALL_HINT = "install the ONNX tools: pip install 'dcgan-explorer[onnx]'"


def export_onnx(G: nn.Module, path: Path | str, *, z_dim: int, metadata: dict[str, Any] | None = None) -> Path:
    """Write G (eval mode, float32) as an ONNX model with a dynamic batch; ``metadata`` goes into its
    metadata_props as JSON strings (the model config, so a reader knows z_dim without our code)."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter needs it; a clear message beats its import error)
    except ImportError as exc:
        raise DCGANError(f"--onnx: {INSTALL_HINT}") from exc
    G = G.float().eval()
    z = torch.zeros(2, z_dim)
    program = torch.onnx.export(G, (z,), dynamo=True, input_names=["z"], output_names=["x"], opset_version=OPSET,
                                dynamic_shapes={"z": {0: torch.export.Dim("batch")}}, verbose=False)
    model = program.model_proto
    onnx.helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    onnx.checker.check_model(model)
    path = Path(path)
    atomic_write_bytes(model.SerializeToString(), path)
    return path


def onnx_max_error(path: Path | str, G: nn.Module, *, z_dim: int, seeds=CHECK_SEEDS) -> float:
    """Largest |onnxruntime(z) - G(z)| over the latents of ``seeds`` (dcgan.latent), run as one batch."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise DCGANError(f"--onnx: checking the export needs onnxruntime; {INSTALL_HINT}") from exc
    z = latents_from_seeds(list(seeds), z_dim)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x_onnx = session.run(["x"], {"z": z.numpy()})[0]
    with torch.no_grad():
        x_torch = G.float().eval()(z).numpy()
    if x_onnx.shape != x_torch.shape:
        raise DCGANError(f"{path}: onnxruntime gave shape {x_onnx.shape}, torch {x_torch.shape}")
    return float(abs(x_onnx - x_torch).max())


def export_checked(G: nn.Module, path: Path | str, *, z_dim: int, metadata: dict[str, Any] | None = None) -> float:
    """export_onnx, then onnx_max_error on CHECK_SEEDS; a DCGANError (and no file) if it exceeds TOLERANCE."""
    path = export_onnx(G, path, z_dim=z_dim, metadata=metadata)
    error = onnx_max_error(path, G, z_dim=z_dim)
    if not error <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise DCGANError(f"{path}: onnxruntime differs from torch by {error:.2e} (limit {TOLERANCE:g}); the export was removed")
    return error
