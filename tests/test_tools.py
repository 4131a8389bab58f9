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
