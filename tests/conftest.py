import json
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden"

# Small configs of each family, for fast tests.
SMALL = {
    "paper_k1": dict(family="paper", widths=(8, 16, 32), up_widths=(16, 8), depths=(1, 1, 1, 1, 1)),
    "paper_k4": dict(family="paper", widths=(8, 16, 32), up_widths=(16, 8), depths=(1, 1, 1, 1, 1),
                     num_kernels=4),
    "haze": dict(family="haze", widths=(8, 16, 32), up_widths=(16, 8), depths=(1, 1, 1, 1, 1)),
    "haze_nobn": dict(family="haze", widths=(8, 16, 32), up_widths=(16, 8), depths=(1, 1, 1, 1, 1),
                      fourier_bn=False),
    "lol": dict(family="lol", widths=(8, 16, 32), up_widths=(16, 8), depths=(1, 1, 1, 1, 1)),
}


@pytest.fixture(scope="session")
def golden_index():
    return json.loads((GOLDEN / "index.json").read_text())


@pytest.fixture(scope="session")
def official_presets():
    return json.loads((GOLDEN / "official_presets.json").read_text())


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
