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


def identity_model():
    """A small paper model whose output equals its input exactly (its head is zero)."""
    import sfhformer
    model = sfhformer.SFHformer(sfhformer.SFHformerConfig(**SMALL["paper_k1"]))
    with torch.no_grad():
        for p in model.head.parameters():
            p.zero_()
    return model.eval()


def active_model(preset="sfhformer_t", seed=0):
    """A random model whose blocks all act (non-zero beta/gamma): it changes images globally."""
    import sfhformer
    torch.manual_seed(seed)
    model = sfhformer.create_model(preset)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(std=0.3)
    return model.eval()


def tiny_active_model(seed=0):
    """A tiny paper model (widths 8/16/32, K=4) whose blocks all act: fast, and it changes images."""
    import sfhformer
    torch.manual_seed(seed)
    model = sfhformer.SFHformer(sfhformer.SFHformerConfig(widths=(8, 16, 32), up_widths=(16, 8), num_kernels=4))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(std=0.3)
    return model.eval()


def photo(name="chelsea"):
    """A real photograph shipped with scikit-image, (H, W, 3) uint8 (or (H, W) for gray ones)."""
    import skimage.data
    return getattr(skimage.data, name)()
