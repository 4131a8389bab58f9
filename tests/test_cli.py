"""The info and convert commands."""

import shutil
import subprocess
import sys

import pytest

import sfhformer
from sfhformer.cli import main
from sfhformer.models.complexity import fft_macs, measure

from conftest import GOLDEN


def test_info_prints_params_and_macs(capsys):
    assert main(["info", "sfhformer_t"]) == 0
    out = capsys.readouterr().out
    assert "1,527,369" in out and "sfhformer_t" in out and "FFTs counted analytically" in out
    gmacs = float(out.splitlines()[1].split()[6])
    assert 9.5 < gmacs < 10.5


def test_info_every_preset_json(capsys):
    import json
    assert main(["info", "--json", "--size", "64"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == list(sfhformer.PRESETS)
    assert all(r["macs"] == r["conv_macs"] + r["fft_macs"] + r["mixing_macs"] for r in rows)


def test_fft_count_is_the_radix2_formula():
    assert fft_macs(1, 4, 4) == 80  # 1.25 * 16 * log2(16)
    assert fft_macs(2, 8, 4) == 2 * 1.25 * 32 * 5


def test_conv_macs_scale_with_area():
    model = sfhformer.create_model("sfhformer_t")
    a, b = measure(model, (64, 64)), measure(model, (128, 128))
    # spatial convs scale with H*W, spectral ones with H*(W//2+1), the channel attention's not at all
    assert 3.9 * a.conv_macs < b.conv_macs < 4 * a.conv_macs
    assert b.fft_macs > 4 * a.fft_macs  # n log n
    assert a.params == 1_527_369


def test_info_with_override(capsys):
    assert main(["info", "sfhformer_t", "--set", "num_kernels=4", "--size", "64"]) == 0
    assert " 4 " in capsys.readouterr().out.splitlines()[1]


def test_unknown_model_is_one_line_error(capsys):
    assert main(["info", "no_such_thing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no_such_thing" in err and "nor a preset" in err


def test_convert_command(tmp_path, capsys):
    dst = tmp_path / "its.safetensors"
    assert main(["convert", str(GOLDEN / "haze_small_nobn.pth"), str(dst), "--set", "fourier_bn=false"]) == 0
    assert sfhformer.load(dst).config.fourier_bn is False
    assert main(["convert", str(GOLDEN / "haze_small_nobn.pth"), str(dst)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_convert_bad_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 100)
    assert main(["convert", str(bad), str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.pth" in err and err.count("\n") == 0
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.skipif(shutil.which("sfhformer") is None, reason="console script not installed")
def test_console_script_is_installed():
    r = subprocess.run(["sfhformer", "info", "lol_s", "--size", "32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "1,056,171" in r.stdout


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "sfhformer", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "sfhformer" in r.stdout
