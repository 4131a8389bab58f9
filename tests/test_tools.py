"""tools/seeded_defects.py stays applicable: every text it replaces is still in the source (its
full run, which applies each defect and runs the tests meant to catch it, takes minutes)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_seeded_defect_still_finds_its_text():
    spec = importlib.util.spec_from_file_location("seeded_defects", ROOT / "tools" / "seeded_defects.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert len(tool.DEFECTS) >= 17
    for name, (edits, args) in tool.DEFECTS.items():
        for file, old, _ in edits:
            assert old in (tool.SRC / file).read_text(), f"{name}: {file} no longer contains {old!r}"
        assert (ROOT / args[0]).is_file(), name


def test_float16_copy_keeps_the_weights_and_names_the_float32_file(tmp_path):
    """tools/float16_copy.py, which retires an earlier bundled version: float16 tensors, the
    float32 file's digest in the metadata, the same bytes on every run, and a model that
    computes what the float32 one does to float16's rounding."""
    import hashlib

    import pytest
    import torch
    from safetensors import safe_open

    import sfhformer
    from conftest import tiny_active_model

    spec = importlib.util.spec_from_file_location("float16_copy", ROOT / "tools" / "float16_copy.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    src = sfhformer.save(tiny_active_model(), tmp_path / "w.safetensors", {"name": "tiny"})
    digest, worst = tool.float16_copy(src, tmp_path / "a.safetensors")
    again, _ = tool.float16_copy(src, tmp_path / "b.safetensors")
    assert digest == again == hashlib.sha256((tmp_path / "a.safetensors").read_bytes()).hexdigest()
    assert 0 < worst < 1e-2
    with safe_open(tmp_path / "a.safetensors", "pt") as f:
        meta = f.metadata()
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert meta["float32_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest() and meta["name"] == "tiny"
    assert dtypes == {torch.float16, torch.int64}  # BatchNorm's counters stay integers
    x = torch.rand(1, 3, 32, 32)
    full, half = sfhformer.load(src), sfhformer.load(tmp_path / "a.safetensors")
    assert next(half.parameters()).dtype == torch.float32
    with torch.no_grad():
        diff = (full(x) - half(x)).abs().max().item()
    assert 0 < diff < 1e-2
    with pytest.raises(ValueError, match="already a float16 copy"):
        tool.float16_copy(tmp_path / "a.safetensors", tmp_path / "c.safetensors")
    model = tiny_active_model()
    with torch.no_grad():
        next(model.parameters())[0] = 1e6
    big = sfhformer.save(model, tmp_path / "big.safetensors")
    with pytest.raises(ValueError, match="beyond float16"):
        tool.float16_copy(big, tmp_path / "d.safetensors")
    assert not (tmp_path / "d.safetensors").exists()
