"""One family of user errors, one line each, documented exit codes; a bug keeps its traceback."""

import subprocess
import sys

import numpy as np
import pytest

import sfhformer
from sfhformer import errors
from sfhformer.cli import main
from sfhformer.io import write_image

from conftest import GOLDEN, identity_model, photo


def test_every_user_error_is_one_family_and_keeps_its_builtin_base():
    for cls in (errors.ConfigError, errors.CheckpointError, errors.DataError, errors.ImageError):
        assert issubclass(cls, errors.SFHformerError) and issubclass(cls, ValueError)
    assert issubclass(errors.NotFoundError, FileNotFoundError)
    assert issubclass(errors.TrainingError, RuntimeError) and issubclass(errors.OutputError, OSError)
    assert sfhformer.CheckpointError is errors.CheckpointError


def _one_line(capsys, code, argv, *needles):
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"sfhformer {argv[0]}: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def config(tmp_path):
    from test_training import write_config
    return str(write_config(tmp_path, out_dir=str(tmp_path / "run")))


def test_configuration_errors_are_one_line_with_exit_2(capsys, config, tmp_path):
    _one_line(capsys, 2, ["train", config, "train.batch_size=abc"], "train.batch_size: expected an integer, got 'abc'")
    _one_line(capsys, 2, ["train", config, "train.steps=abc"], "train.steps: expected an integer or nothing")
    _one_line(capsys, 2, ["train", config, "train.lr=fast"], "train.lr: expected a number, got 'fast'")
    _one_line(capsys, 2, ["train", config, "data.train.crop=big"], "data.train.crop: expected an integer or nothing")
    _one_line(capsys, 2, ["train", config, "data.train.cropp=3"], "unknown config key 'data.train.cropp'")
    _one_line(capsys, 2, ["train", config, "train.batch_size=0"], "train.batch_size: expected at least 1, got 0")
    _one_line(capsys, 2, ["train", config, "model.num_kernels=three"], "model: invalid SFHformerConfig")
    _one_line(capsys, 2, ["train", config, "data.val.type=fog"], "data.val.type: expected one of synthetic, paired")
    _one_line(capsys, 2, ["train", str(tmp_path / "none.yaml")], "none.yaml: no such config file")
    _one_line(capsys, 2, ["info", "--size", "0"], "--size must be at least 1")
    _one_line(capsys, 2, ["export", "denoise", "-o", str(tmp_path / "x.onnx"), "--size", "0", "0"], "--size")
    _one_line(capsys, 2, ["restore", "x.png", "-o", str(tmp_path), "--weights", "denoise", "--device", "gpu"],
              "unknown device 'gpu'")
    _one_line(capsys, 2, ["restore", "x.png", "-o", str(tmp_path)], "restore needs --weights")
    _one_line(capsys, 2, ["eval", "--pred", str(tmp_path / "p"), "--gt", str(tmp_path)], "p: no such folder")
    _one_line(capsys, 2, ["info", "sfhformer_t", "--set", "num_kernels=x"], "num_kernels must be an integer")


def test_failed_inputs_are_one_line_with_exit_1(capsys, tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    _one_line(capsys, 1, ["spectrum", str(tmp_path / "notes.png"), "-o", str(tmp_path / "s.png")],
              "notes.png: not an image file")
    write_image(tmp_path / "a.png", photo()[:64, :64])
    write_image(tmp_path / "b.png", photo()[:32, :32])
    _one_line(capsys, 1, ["spectrum", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "s.png")],
              "differ in size")


def test_set_values_are_yaml_like_train_overrides(capsys, tmp_path):
    dst = tmp_path / "its.safetensors"
    assert main(["convert", str(GOLDEN / "haze_small_nobn.pth"), str(dst), "--set", "fourier_bn=off"]) == 0
    assert sfhformer.load(dst).config.fourier_bn is False
    from sfhformer.training.config import parse_overrides
    assert parse_overrides(["a=off", "b=1e-3", "c=[16, 32]", "d='off'", "e=yes", "f="]) == \
        {"a": False, "b": 1e-3, "c": [16, 32], "d": "off", "e": True, "f": None}


def test_interrupted_restore_says_what_finished_and_exits_130(capsys, tmp_path, monkeypatch):
    from sfhformer.restore import Restorer
    src = tmp_path / "in"
    for i in range(3):
        write_image(src / f"{i}.png", photo()[:40, :40])
    weights = sfhformer.save(identity_model(), tmp_path / "w.safetensors")
    calls = []
    original = Restorer.restore_picture

    def interrupt_second(self, picture, name="image"):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, picture, name)

    monkeypatch.setattr(Restorer, "restore_picture", interrupt_second)
    assert main(["restore", str(src), "-o", str(tmp_path / "out"), "--weights", str(weights), "--device", "cpu"]) == 130
    assert "interrupted: restored 1 of 3 image(s)" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["0.png"]


def test_an_internal_error_keeps_its_traceback_and_asks_for_a_report(capsys, monkeypatch):
    import sfhformer.models.complexity as complexity

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(complexity, "measure", broken)
    assert main(["info", "sfhformer_t"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: a bug" in err
    assert "internal error" in err and "please report it" in err


def test_an_internal_error_in_one_image_is_not_swallowed(capsys, tmp_path, monkeypatch):
    from sfhformer.restore import Restorer
    write_image(tmp_path / "a.png", photo()[:40, :40])
    weights = sfhformer.save(identity_model(), tmp_path / "w.safetensors")
    monkeypatch.setattr(Restorer, "restore_picture", lambda self, picture, name="image": 1 / 0)
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", str(weights),
                 "--device", "cpu"]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_exit_codes_are_documented_in_the_help():
    r = subprocess.run([sys.executable, "-m", "sfhformer", "--help"], capture_output=True, text=True)
    assert "0 all done, 1 some inputs or the run failed, 2 usage or configuration error, 130 interrupted" in \
        " ".join(r.stdout.split())


def test_api_errors_name_what_was_wrong():
    with pytest.raises(errors.NotFoundError, match="no_such: no such weights file, nor a bundled model name"):
        sfhformer.load("no_such")
    assert np.isfinite(sfhformer.load("denoise").head[0].weight.detach().numpy()).all()


def test_interrupted_training_says_how_to_resume_and_exits_130(capsys, config, monkeypatch):
    import sfhformer.training

    def interrupted(cfg, model=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(sfhformer.training, "train", interrupted)
    assert main(["train", config]) == 130
    err = capsys.readouterr().err
    assert "interrupted;" in err and "checkpoints/last.pt (when written) resumes it" in err
