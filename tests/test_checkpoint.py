"""Reading weights files: wrappers, prefixes, and every way a file can be wrong."""

import json
import pickle

import pytest
import torch

import sfhformer
from sfhformer import CheckpointError

from conftest import GOLDEN

PAPER = GOLDEN / "paper_small_g4.pth"


def authors_state():
    return torch.load(PAPER, weights_only=True)["state_dict"]


def reference_output(model):
    io = torch.load(GOLDEN / "paper_small_g4.io.pt", weights_only=True)
    with torch.no_grad():
        return model(io["input"]), io["output"]


@pytest.mark.parametrize("wrap", ["bare", "no_prefix", "params", "params_ema", "nested_model"])
def test_wrappers_and_prefixes(wrap, tmp_path):
    state = authors_state()
    bare = {k.removeprefix("module."): v for k, v in state.items()}
    obj = {"bare": state, "no_prefix": bare, "params": {"params": bare},
           "params_ema": {"params_ema": bare, "iter": 5}, "nested_model": {"model": {"state_dict": state}}}[wrap]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    out, ref = reference_output(sfhformer.load(path))
    assert (out - ref).abs().max() <= 1e-4


def test_fp16_checkpoint_loads_into_float32(tmp_path):
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in authors_state().items()}
    torch.save({"state_dict": state}, tmp_path / "half.pth")
    model = sfhformer.load(tmp_path / "half.pth")
    assert next(model.parameters()).dtype == torch.float32


def test_missing_file():
    # load() also takes bundled names, so a missing file is "neither a file nor a name"
    with pytest.raises(sfhformer.errors.NotFoundError, match=r"nope\.pth: no such weights file, nor a bundled"):
        sfhformer.load("nope.pth")


def test_empty_file(tmp_path):
    (tmp_path / "e.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"e\.pth: empty file"):
        sfhformer.load(tmp_path / "e.pth")


@pytest.mark.parametrize("name", ["t.pth", "t.safetensors"])
def test_truncated_file(name, tmp_path):
    if name.endswith(".safetensors"):
        sfhformer.save(sfhformer.load(PAPER), tmp_path / "full.safetensors")
        data = (tmp_path / "full.safetensors").read_bytes()
    else:
        data = PAPER.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{name}: not a readable .* \(truncated or corrupt\?\)") as e:
        sfhformer.load(tmp_path / name)
    assert "\n" not in str(e.value)


def test_text_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pth").write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError, match=r"notes\.pth: "):
        sfhformer.load(tmp_path / "notes.pth")


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_objects_are_never_unpickled(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(CheckpointError, match=r"evil\.pth: .*refusing to unpickle"):
        sfhformer.load(path)
    assert "this must never run" not in capsys.readouterr().out


def test_foreign_state_dict_is_named_as_such(tmp_path):
    torch.save({"state_dict": {"conv1.weight": torch.zeros(4, 3, 3, 3)}}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match=r"resnet\.pth: not an SFHformer checkpoint.*patch_embed"):
        sfhformer.load(tmp_path / "resnet.pth")


def test_no_state_dict(tmp_path):
    torch.save({"epoch": 3}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match=r"meta\.pth: holds no state dict"):
        sfhformer.load(tmp_path / "meta.pth")


def test_damaged_checkpoint_lists_missing_unexpected_and_misshaped(tmp_path):
    state = authors_state()
    del state["module.layer2.blocks.0.ffn.conv1_2.0.weight"]
    del state["module.skip1.bias"]
    state["module.layer1.blocks.0.extra.weight"] = torch.zeros(3)
    state["module.layer3.blocks.0.mixer.ca.1.weight"] = torch.zeros(5, 5, 1, 1)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        sfhformer.load(tmp_path / "bad.pth")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'bad.pth'}: does not fit")
    assert "2 missing (layer2.blocks.0.ffn.conv1_2.0.weight, skip1.bias)" in msg
    assert "1 unexpected (layer1.blocks.0.extra.weight)" in msg
    assert "layer3.blocks.0.mixer.ca.1.weight (5, 5, 1, 1) vs (64, 128, 1, 1)" in msg


def test_wrong_preset_is_reported_with_key_lists():
    with pytest.raises(CheckpointError, match=r"does not fit preset 'sfhformer_s': \d+ missing .*mis-shaped"):
        sfhformer.load(PAPER, preset="sfhformer_s")


def test_preset_selects_haze_its_bn_switch():
    io = torch.load(GOLDEN / "haze_small_nobn.io.pt", weights_only=True)
    model = sfhformer.load(GOLDEN / "haze_small_nobn.pth", fourier_bn=False)
    assert not model.config.fourier_bn
    with torch.no_grad():
        assert (model(io["input"]) - io["output"]).abs().max() <= 1e-4


def test_invalid_override_names_the_file():
    with pytest.raises(CheckpointError, match=r"paper_small_g4\.pth: .*num_kernels"):
        sfhformer.load(PAPER, num_kernels=3)


def test_our_pth_with_config(tmp_path):
    model = sfhformer.load(PAPER)
    torch.save({"config": model.config.to_dict(), "model": model.state_dict()}, tmp_path / "ours.pth")
    out, ref = reference_output(sfhformer.load(tmp_path / "ours.pth"))
    assert (out - ref).abs().max() <= 1e-4
    torch.save({"model": model.state_dict()}, tmp_path / "noconfig.pth")
    with pytest.raises(CheckpointError, match="no stored config; pass a preset"):
        sfhformer.load(tmp_path / "noconfig.pth")


def test_convert_then_load_gives_the_same_output(tmp_path):
    sfhformer.convert(GOLDEN / "lol_s.pth", tmp_path / "lol.safetensors")
    io = torch.load(GOLDEN / "lol_s.io.pt", weights_only=True)
    with torch.no_grad():
        out = sfhformer.load(tmp_path / "lol.safetensors")(io["input"])
    assert (out - io["output"]).abs().max() <= 1e-4


def test_hugging_face_folder_round_trip_and_model_card(tmp_path, capsys):
    import yaml

    from sfhformer.cli import main
    from sfhformer.restore import Restorer
    model = sfhformer.create_model("sfhformer_t")
    folder = model.save_pretrained(tmp_path / "my-model", recipe="configs/x.yaml", metrics={"psnr": 30.5})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["library_name"] == "sfhformer" and header["pipeline_tag"] == "image-to-image"
    assert header["license"] == "mit" and "sfhformer_t" in header["tags"]
    assert header["sfhformer"]["recipe"] == "configs/x.yaml" and header["sfhformer"]["metrics"] == {"psnr": 30.5}
    assert json.loads((folder / "config.json").read_text())["preset"] == "sfhformer_t"
    loaded = sfhformer.load(folder)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert Restorer.from_pretrained(folder, device="cpu").model.fused
    # the CLI: convert an authors' file into a folder, then use the folder as --weights
    assert main(["convert", str(GOLDEN / "lol_s.pth"), str(tmp_path / "lol-folder"), "--to-folder"]) == 0
    assert sfhformer.load(tmp_path / "lol-folder").config.family == "lol"
    header = yaml.safe_load((tmp_path / "lol-folder" / "README.md").read_text().split("---\n")[1])
    assert header["sfhformer"]["source"].endswith("lol_s.pth")
    assert main(["info", str(tmp_path / "lol-folder"), "--size", "32"]) == 0
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty: is a folder without model\.safetensors"):
        sfhformer.load(tmp_path / "empty")
