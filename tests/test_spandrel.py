"""The spandrel integration (sfhformer.integrations.spandrel): after install(), spandrel's own
ModelLoader loads the authors' checkpoints of every family and our safetensors files, detects
them by keys and shapes without taking other architectures' files, and runs them as our model.

spandrel imports torchvision when it is imported (its LaMa and RestoreFormer architectures use
torchvision.transforms.functional). Where ``import torchvision`` fails (as here: the only
torchvision wheel for torch 2.13 on this machine's index is a CUDA build whose compiled operators
do not load with the CPU torch), this module puts a stand-in torchvision in sys.modules while it
imports spandrel, and takes it out again: InterpolationMode, rotate and normalize, the last two
raising if called. No test here uses LaMa or RestoreFormer. Without spandrel (or einops, which it
needs), the module is skipped.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import types
from pathlib import Path

import pytest
import torch

import sfhformer
from sfhformer.models import PRESETS, SFHformer, authors_key_map, get_preset

GOLDEN = Path(__file__).parent / "golden"
WEIGHTS = Path(sfhformer.__file__).parent / "weights"


@contextlib.contextmanager
def _torchvision_stand_in():
    def unavailable(*args, **kwargs):
        raise NotImplementedError("stand-in torchvision of tests/test_spandrel.py")

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode, functional.rotate, functional.normalize = InterpolationMode, unavailable, unavailable
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms
    modules = {"torchvision": torchvision, "torchvision.transforms": transforms,
               "torchvision.transforms.functional": functional}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _import_spandrel():
    try:
        import torchvision  # noqa: F401
        context = contextlib.nullcontext()
    except Exception:  # noqa: BLE001 -- missing, or a build for another torch (its operators fail to register)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        context = _torchvision_stand_in()
    with context:
        import spandrel
        try:
            from spandrel_extra_arches import EXTRA_REGISTRY
        except ImportError:
            EXTRA_REGISTRY = None
        from sfhformer.integrations import spandrel as integration
    return spandrel, EXTRA_REGISTRY, integration


try:
    spandrel, EXTRA_REGISTRY, integration = _import_spandrel()
except ImportError as e:
    pytest.skip(f"spandrel cannot be imported, even with a stand-in torchvision ({e}); "
                f"pip install --no-deps spandrel einops", allow_module_level=True)

from spandrel import ImageModelDescriptor, ModelLoader, ModelTiling

from sfhformer.errors import CheckpointError

SMALL_TAGS = ["16-32-64nf", "1-1-1-1-1b"]
# file -> (tags, tiling); the reference is sfhformer.load(file).fuse()
FILES = {
    "haze_small_bn.pth": (["haze", "custom", *SMALL_TAGS], ModelTiling.DISCOURAGED),
    # the ITS-style golden file: detection cannot tell, so it loads with the Fourier BN on (OTS)
    "haze_small_nobn.pth": (["haze", "custom", *SMALL_TAGS], ModelTiling.DISCOURAGED),
    "lol_s.pth": (["lol", "lol_s"], ModelTiling.DISCOURAGED),
    "paper_small_g4.pth": (["paper", "custom", *SMALL_TAGS, "K4"], ModelTiling.SUPPORTED),
    "paper_t_g1.pth": (["paper", "sfhformer_t"], ModelTiling.SUPPORTED),
    "denoise.safetensors": (["paper", "sfhformer_t"], ModelTiling.SUPPORTED),  # denoise@1
    "denoise_v2.safetensors": (["paper", "sfhformer_t"], ModelTiling.SUPPORTED),  # float16
    "denoise_v3.safetensors": (["paper", "sfhformer_t"], ModelTiling.SUPPORTED),  # float16
    "denoise_v4.safetensors": (["paper", "sfhformer_t"], ModelTiling.SUPPORTED),  # float16
    "denoise_v5.safetensors": (["paper", "sfhformer_t"], ModelTiling.SUPPORTED),  # float16
    "denoise_v6.safetensors": (["paper", "sfhformer_t"], ModelTiling.SUPPORTED),  # float16
    "denoise_v7.safetensors": (["paper", "sfhformer_t"], ModelTiling.SUPPORTED),
    "deblur.safetensors": (["paper", "sfhformer_t", "K4"], ModelTiling.SUPPORTED),  # deblur@1, float16
    "deblur_v2.safetensors": (["paper", "sfhformer_t", "K4"], ModelTiling.SUPPORTED),
    # our conversion of the ITS-style file: no Fourier BN in its keys, so detected as such
    "its.safetensors": (["haze", "custom", *SMALL_TAGS, "no-fourier-bn"], ModelTiling.DISCOURAGED),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every file of FILES: the golden authors' checkpoints, the bundled weights, and the
    ITS-style golden file converted as the docs tell ITS users to."""
    paths = {name: GOLDEN / name for name in FILES if name.endswith(".pth")}
    paths.update({name: WEIGHTS / name for name in FILES if name.endswith(".safetensors") and name != "its.safetensors"})
    its = tmp_path_factory.mktemp("spandrel") / "its.safetensors"
    sfhformer.save(sfhformer.load(GOLDEN / "haze_small_nobn.pth", fourier_bn=False), its)
    paths["its.safetensors"] = its
    return paths


@pytest.fixture(scope="module", autouse=True)
def installed():
    integration.install()
    return spandrel.MAIN_REGISTRY


def _inputs(name: str) -> list[torch.Tensor]:
    """The golden input where there is one (else a random image of its shape), and a small
    odd-sized image (the network pads it, to 16 px for the low-light family)."""
    io = GOLDEN / name.replace(".pth", ".io.pt")
    g = torch.Generator().manual_seed(0)
    first = torch.load(io, weights_only=True)["input"] if io.exists() else torch.rand(1, 3, 48, 80, generator=g)
    return [first, torch.rand(1, 3, 13, 21, generator=g)]


def _registries():
    yield spandrel.MAIN_REGISTRY
    if EXTRA_REGISTRY is not None:
        yield EXTRA_REGISTRY


def _claimed_by(state: dict) -> list[str]:
    """Every architecture (spandrel's, its extra ones, ours) whose detect() takes ``state``."""
    return sorted({a.architecture.id for registry in _registries() for a in registry.architectures() if a.detect(state)})


# ---------------------------------------------------------------------------------------------
# install()
# ---------------------------------------------------------------------------------------------

def test_install_is_idempotent_and_detects_first():
    assert integration.install() == []  # the fixture installed it already
    with pytest.raises(spandrel.DuplicateArchitectureError):
        integration.install(ignore_duplicates=False)
    order = [a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures("detection")]
    assert order[0] == "SFHformer" and order.count("SFHformer") == 1
    assert len(order) > 30  # spandrel's own are all still there

    registry = spandrel.ArchRegistry()
    assert [a.architecture.id for a in integration.install(registry=registry)] == ["SFHformer"]


# ---------------------------------------------------------------------------------------------
# Loading our files and the authors' through spandrel
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FILES))
def test_loads_through_spandrel_as_our_model(name, files):
    path = files[name]
    tags, tiling = FILES[name]
    descriptor = ModelLoader().load_from_file(path)

    assert isinstance(descriptor, ImageModelDescriptor)
    assert isinstance(descriptor.model, SFHformer) and not descriptor.model.training
    assert descriptor.architecture.id == "SFHformer" and descriptor.architecture.name == "SFHformer"
    assert descriptor.purpose == "Restoration" and descriptor.scale == 1
    assert (descriptor.input_channels, descriptor.output_channels) == (3, 3)
    assert descriptor.size_requirements.none  # minimum 0, multiple_of 1: spandrel never pads
    assert descriptor.tiling == tiling
    assert descriptor.supports_half and descriptor.supports_bfloat16
    assert descriptor.tags == tags

    reference = sfhformer.load(path).fuse()
    for x in _inputs(name):
        with torch.no_grad():
            expected = reference(x)
            raw = descriptor.model(x)
        out = descriptor(x)  # spandrel's call: pads per size_requirements (never), clamps to [0, 1]
        assert out.shape == x.shape
        assert (raw - expected).abs().max().item() <= 1e-4
        assert (out - expected.clamp(0, 1)).abs().max().item() <= 1e-4


def test_converted_its_file_gives_the_authors_its_output(files):
    """The authors' ITS-style output (Fourier BN skipped) through spandrel, from the converted
    file; the unconverted one gives the OTS-style output instead."""
    io = torch.load(GOLDEN / "haze_small_nobn.io.pt", weights_only=True)
    authors = io["output"].clamp(0, 1)
    converted = ModelLoader().load_from_file(files["its.safetensors"])(io["input"])
    assert (converted - authors).abs().max().item() <= 1e-4
    unconverted = ModelLoader().load_from_file(files["haze_small_nobn.pth"])(io["input"])
    assert (unconverted - authors).abs().max().item() > 1e-3


def test_saved_model_state_dict_loads_again(files, tmp_path):
    """A loaded model's state dict saved back (our key names, no config), as tools that save a
    spandrel model write it, loads again as the same model."""
    for name in ("lol_s.pth", "deblur.safetensors", "its.safetensors"):
        descriptor = ModelLoader().load_from_file(files[name])
        saved = tmp_path / f"{name}.resaved.pth"
        torch.save(descriptor.model.state_dict(), saved)
        again = ModelLoader().load_from_file(saved)
        assert again.tags == descriptor.tags
        x = _inputs(name)[0]
        assert torch.equal(again(x), descriptor(x))


@pytest.mark.parametrize("dtype, mean_tol, max_tol", [(torch.float16, 1e-3, 1e-2), (torch.bfloat16, 5e-3, 5e-2)])
@pytest.mark.parametrize("name", ["haze_small_bn.pth", "lol_s.pth", "deblur.safetensors"])
def test_reduced_precision_stays_close(name, dtype, mean_tol, max_tol, files):
    """supports_half / supports_bfloat16 are claimed on what this measures (on CPU): the model
    runs in that dtype, its output keeps the dtype, is finite and close to float32's."""
    x = _inputs(name)[0][:1]  # one image: float16 / bfloat16 convolutions are slow on CPU
    reference = ModelLoader().load_from_file(files[name])(x)
    descriptor = ModelLoader().load_from_file(files[name]).to(dtype)
    out = descriptor(x.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    err = (out.float() - reference).abs()
    assert err.mean().item() <= mean_tol and err.max().item() <= max_tol, (err.mean().item(), err.max().item())


# ---------------------------------------------------------------------------------------------
# Detection: ours and nothing else, theirs still theirs
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FILES))
def test_no_other_architecture_claims_our_files(name, files):
    state = ModelLoader().load_state_dict_from_file(files[name])
    assert _claimed_by(state) == ["SFHformer"]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_detected_in_both_namings(preset):
    """A freshly initialised model of every preset, in our key names and in the authors' (the
    authors' real ITS file keeps the unused Fourier BN, and so reads as OTS: see the golden
    haze_small_nobn above; without it, as here, it reads as ITS)."""
    config = get_preset(preset)
    model = SFHformer(config)
    ours = model.state_dict()
    names = authors_key_map(model)
    theirs = {names[k]: v for k, v in ours.items()}
    assert integration.config_of(ours) == (config, True)
    assert integration.config_of(theirs) == (config, False)
    assert _claimed_by(ours) == _claimed_by(theirs) == ["SFHformer"]
    assert integration._tags(config) == [config.family, preset]
    dehaze_or_low_light = preset.startswith(("haze_", "lol_"))
    assert integration._tiling(config) == (ModelTiling.DISCOURAGED if dehaze_or_low_light else ModelTiling.SUPPORTED)


def _others():
    from spandrel.architectures import (
        DAT,
        ESRGAN,
        FFTformer,
        MixDehazeNet,
        NAFNet,
        RetinexFormer,
        SCUNet,
        SwinIR,
    )
    return {  # small configs of a few of spandrel's architectures (restoration and SR)
        "ESRGAN": lambda: ESRGAN.ESRGAN(num_filters=16, num_blocks=2, scale=4),
        "SwinIR": lambda: SwinIR.SwinIR(embed_dim=12, depths=[1], num_heads=[2], window_size=4, img_size=16),
        "NAFNet": lambda: NAFNet.NAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]),
        "SCUNet": lambda: SCUNet.SCUNet(config=[1] * 7, dim=16),
        "DAT": lambda: DAT.DAT(embed_dim=12, depth=[1], num_heads=[2], split_size=[2, 4], upscale=2),
        # FFT-based like ours, and with a key of the authors' names (patch_embed.proj.weight)
        "FFTformer": lambda: FFTformer.FFTformer(dim=8, num_blocks=[1, 1, 1], num_refinement_blocks=1),
        "MixDehazeNet": lambda: MixDehazeNet.MixDehazeNet(embed_dims=[8, 16, 32, 16, 8], depths=[1, 1, 1, 1, 1]),
        "RetinexFormer": lambda: RetinexFormer.RetinexFormer(n_feat=8, stage=1, num_blocks=[1, 1, 1]),
    }


@pytest.mark.parametrize("arch", list(_others()))
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_other_architectures_still_detected(arch, tmp_path):
    torch.manual_seed(0)
    state = _others()[arch]().state_dict()
    assert not integration.detect(state)
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    assert ModelLoader().load_from_file(path).architecture.id == arch


def test_near_misses_are_not_ours():
    """Exact fit: one tensor missing or mis-shaped, or only the names of ours, is not SFHformer;
    loading it anyway says what does not fit."""
    state = ModelLoader().load_state_dict_from_file(GOLDEN / "paper_t_g1.pth")
    assert integration.detect(state)

    missing = {k: v for k, v in state.items() if k != "layer3.blocks.1.ffn.conv1_2.0.weight"}
    assert not integration.detect(missing)
    with pytest.raises(CheckpointError, match="conv1_2"):
        integration.SFHformerArch().load(missing)

    misshaped = {**state, "skip1.bias": torch.zeros(7)}
    assert not integration.detect(misshaped)
    with pytest.raises(CheckpointError, match="mis-shaped"):
        integration.SFHformerArch().load(misshaped)

    names_only = {k: torch.zeros(1) for k in ("embed.weight", "fuse1.weight", "fuse2.weight", "head.0.weight")}
    assert not integration.detect(names_only)
    assert not integration.detect({})
    assert not integration.detect({"patch_embed.proj.weight": "not a tensor", "skip1.weight": None,
                                   "skip2.weight": 1, "patch_unembed.proj.0.weight": []})


def test_nonfinite_weights_are_refused():
    state = dict(ModelLoader().load_state_dict_from_file(WEIGHTS / "denoise.safetensors"))
    state["head.0.weight"] = state["head.0.weight"].clone()
    state["head.0.weight"][0, 0, 0, 0] = float("nan")
    assert integration.detect(state)  # the architecture is ours; the weights are not usable
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        spandrel.MAIN_REGISTRY.load(state)
