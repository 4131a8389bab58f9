"""Peer architectures from the ``spandrel`` package, imported without ``spandrel/__init__``
(which imports torchvision, and no torchvision wheel loads beside the CPU torch here)."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types


def _stub_package(name: str) -> None:
    """Register ``name`` as a bare package over its real folder, without running its __init__."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name) if "." not in name else None
    if spec is None:
        parent, _, child = name.rpartition(".")
        _stub_package(parent)
        path = [f"{p}/{child}" for p in sys.modules[parent].__path__]
    else:
        path = list(spec.submodule_search_locations)
    module = types.ModuleType(name)
    module.__path__ = path
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__spec__.submodule_search_locations = path
    sys.modules[name] = module


def arch_module(dotted: str) -> types.ModuleType:
    """Import e.g. ``spandrel.architectures.NAFNet.__arch.NAFNet_arch`` alone."""
    if "spandrel" not in sys.modules and importlib.util.find_spec("spandrel") is None:
        raise ImportError("the peer benchmarks need the spandrel package: pip install --no-deps spandrel")
    _stub_package(dotted.rpartition(".")[0])
    return importlib.import_module(dotted)


# The bundled models' peer (benchmarks/quality.py, speed.py's nafnet_w16): about 1.6 M parameters.
NAFNET_W16 = dict(width=16, middle=2, enc=(1, 1, 1, 1), dec=(1, 1, 1, 1))


def nafnet(width: int = 16, middle: int = 1, enc: tuple[int, ...] = (1, 1, 1, 1),
           dec: tuple[int, ...] = (1, 1, 1, 1)):
    """NAFNet (Chen et al., ECCV 2022) from spandrel."""
    module = arch_module("spandrel.architectures.NAFNet.__arch.NAFNet_arch")
    return module.NAFNet(img_channel=3, width=width, middle_blk_num=middle, enc_blk_nums=list(enc),
                         dec_blk_nums=list(dec))


def restormer(**kwargs):
    """Restormer (Zamir et al., CVPR 2022) from spandrel-extra-arches (needs einops), with its
    defaults: width 48, blocks 4-6-6-8, 4 refinement blocks (26.1 M parameters)."""
    if importlib.util.find_spec("spandrel_extra_arches") is None or importlib.util.find_spec("einops") is None:
        raise ImportError("the Restormer peer needs: pip install --no-deps spandrel spandrel-extra-arches; "
                          "pip install einops")
    _stub_package("spandrel")  # its architecture file imports spandrel.util
    module = arch_module("spandrel_extra_arches.architectures.Restormer.__arch.restormer_arch")
    return module.Restormer(**kwargs)
