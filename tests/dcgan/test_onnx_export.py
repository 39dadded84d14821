"""`dcgan export CK --onnx`: the shipped generators as ONNX with a dynamic batch, equal to torch within 1e-3 under onnxruntime."""
import json
from pathlib import Path

import pytest
import torch

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from dcgan import onnx_export  # noqa: E402
from dcgan.checkpoints import load_generator  # noqa: E402
from dcgan.cli import main  # noqa: E402
from dcgan.config import ModelConfig  # noqa: E402
from dcgan.errors import DCGANError  # noqa: E402
from dcgan.latent import latents_from_seeds  # noqa: E402
from dcgan.models import build_generator  # noqa: E402

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


@pytest.mark.parametrize("name", ["mnist", "celeba-64"])
def test_cli_exports_a_shipped_generator_that_onnxruntime_reproduces(name, tmp_path, capsys):
    out = tmp_path / f"{name}.onnx"
    assert main(["export", str(CHECKPOINTS / name), "--onnx", str(out)]) == 0
    assert "onnxruntime matches torch" in capsys.readouterr().out
    model = onnx.load(out)
    assert min(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    G, meta = load_generator(CHECKPOINTS / name)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["model"])["z_dim"] == meta.model.z_dim and json.loads(props["info"])["dataset"] == meta.info["dataset"]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1] == meta.model.z_dim and isinstance(session.get_inputs()[0].shape[0], str)  # dynamic batch
    z = latents_from_seeds(list(range(64)), meta.model.z_dim)
    with torch.no_grad():
        expected = G(z).numpy()
    for batch in (z[:1], z[:5], z):  # shapes other than the one traced
        got = session.run(["x"], {"z": batch.numpy()})[0]
        assert got.shape == (len(batch), meta.model.channels, meta.model.image_size, meta.model.image_size)
        assert abs(got - expected[: len(batch)]).max() <= onnx_export.TOLERANCE


def test_keras_architecture_exports_too(tmp_path):
    model = ModelConfig(arch="keras", image_size=28, channels=1, z_dim=8, ngf=8, ndf=8)
    torch.manual_seed(0)
    G = build_generator(model).eval()
    error = onnx_export.export_checked(G, tmp_path / "k.onnx", z_dim=8)
    assert error <= onnx_export.TOLERANCE


def test_a_mismatching_export_is_removed(tmp_path, monkeypatch):
    """The check is real: an export onnxruntime does not reproduce is refused and deleted."""
    G = build_generator(ModelConfig(image_size=16, channels=3, z_dim=8, ngf=8, ndf=8)).eval()
    monkeypatch.setattr(onnx_export, "onnx_max_error", lambda *a, **k: 0.5)
    with pytest.raises(DCGANError, match="differs from torch by 5.00e-01"):
        onnx_export.export_checked(G, tmp_path / "bad.onnx", z_dim=8)
    assert not (tmp_path / "bad.onnx").exists()


def test_onnx_refuses_options_that_do_not_apply(capsys, tmp_path):
    assert main(["export", str(CHECKPOINTS / "mnist"), "--onnx", str(tmp_path / "g.onnx"), "--fp16"]) == 2
    assert "drop --fp16" in capsys.readouterr().err and not (tmp_path / "g.onnx").exists()
