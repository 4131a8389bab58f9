"""Export to ONNX (run by ONNX Runtime) and TorchScript, checked on a real photograph."""

import numpy as np
import pytest
import torch

import sfhformer
from sfhformer.cli import main

from conftest import photo, tiny_active_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return sfhformer.save(tiny_active_model(), tmp_path_factory.mktemp("w") / "w.safetensors")


@pytest.fixture(scope="module")
def image():
    x = photo("chelsea")[100:196, 150:278]  # 96 x 128, a real photograph
    return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255


def reference(weights, image):
    with torch.no_grad():
        return sfhformer.load(weights)(image)


@pytest.mark.parametrize("dft", ["auto", "operator"])
def test_onnx_runtime_matches_pytorch(weights, image, tmp_path, dft):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    assert main(["export", str(weights), "--format", "onnx", "--size", "96", "128", "-o",
                 str(tmp_path / "m.onnx"), "--dft", dft]) == 0
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    # a fixed size computes the FFTs as matrix products unless the DFT operator is asked for
    assert ("DFT" in ops) == (dft == "operator") != ("MatMul" in ops)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": image.numpy()})
    ref = reference(weights, image).numpy()
    assert np.abs(out - ref).max() <= 1e-4
    assert np.abs(ref - image.numpy()).max() > 0.05  # the model does change the photograph


def test_matrix_dft_needs_a_fixed_size(weights, tmp_path, capsys):
    assert main(["export", str(weights), "--dft", "matrix", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--size" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_without_a_size_runs_at_any_size(weights, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(weights), "--format", "onnx", "-o", str(tmp_path / "any.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "any.onnx"), providers=["CPUExecutionProvider"])
    assert [str(d) for d in session.get_inputs()[0].shape[2:]] == ["height", "width"]
    for h, w in [(96, 128), (67, 93), (101, 16)]:  # odd sizes too: padding and the Nyquist column vary
        x = torch.from_numpy(photo("coffee")[:h, :w]).permute(2, 0, 1)[None].float() / 255
        (out,) = session.run(None, {"image": x.numpy()})
        assert out.shape == (1, 3, h, w)
        assert np.abs(out - reference(weights, x).numpy()).max() <= 1e-4, (h, w)


def test_torchscript_matches_pytorch(weights, image, tmp_path):
    assert main(["export", str(weights), "--format", "torchscript", "--size", "96", "128", "-o",
                 str(tmp_path / "m.pt")]) == 0
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        assert (scripted(image) - reference(weights, image)).abs().max() <= 1e-4


def test_export_refuses_to_overwrite(weights, tmp_path, capsys):
    (tmp_path / "m.onnx").write_text("keep me")
    assert main(["export", str(weights), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "m.onnx").read_text() == "keep me"
