"""The eval command: folders of restored images, and a model over paired data."""

import csv
import json

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

import sfhformer
from sfhformer.cli import main
from sfhformer.io import write_image

from conftest import identity_model, photo


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for name in ("chelsea", "coffee"):
        clean = photo(name)[:128, :160]
        write_image(tmp_path / "gt" / f"{name}.png", clean)
        noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
        write_image(tmp_path / "pred" / f"{name}.tif", noisy)  # extension may differ
    return tmp_path


def test_eval_folders_prints_and_writes_reports(folders, capsys):
    code = main(["eval", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"), "--csv",
                 str(folders / "r.csv"), "--json", str(folders / "r.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "chelsea" in out and "coffee" in out and "mean" in out and "RGB, crop border 0" in out
    rows = list(csv.DictReader(open(folders / "r.csv")))
    assert [r["name"] for r in rows] == ["chelsea", "coffee"]
    from sfhformer.io import read_image
    gt, pred = read_image(folders / "gt" / "chelsea.png").pixels, read_image(folders / "pred" / "chelsea.tif").pixels
    assert float(rows[0]["psnr"]) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=255), abs=1e-4)
    summary = json.loads((folders / "r.json").read_text())["summary"]
    assert summary["images"] == 2 and summary["y_channel"] is False
    assert summary["mean_psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]))


def test_eval_folders_y_channel_and_crop(folders, capsys):
    assert main(["eval", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"), "--y-channel",
                 "--crop-border", "4"]) == 0
    assert "Y channel (BT.601), crop border 4" in capsys.readouterr().out


def test_eval_missing_prediction_is_listed(folders, capsys):
    (folders / "pred" / "coffee.tif").unlink()
    assert main(["eval", "--pred", str(folders / "pred"), "--gt", str(folders / "gt")]) == 2
    assert "no prediction for 1 ground-truth image(s)" in capsys.readouterr().err


def test_eval_model_on_paired_data(folders, tmp_path, capsys):
    root = tmp_path / "bench"
    (folders / "pred").rename(tmp_path / "input_tmp")
    (root).mkdir()
    (tmp_path / "input_tmp").rename(root / "input")
    (folders / "gt").rename(root / "target")
    weights = sfhformer.save(identity_model(), tmp_path / "id.safetensors")
    code = main(["eval", "--weights", str(weights), "--data", str(root), "--device", "cpu",
                 "--json", str(tmp_path / "e.json"), "--save-images", str(tmp_path / "saved")])
    assert code == 0
    summary = json.loads((tmp_path / "e.json").read_text())["summary"]
    # an identity model scores exactly what its input scores
    assert summary["mean_psnr"] == pytest.approx(summary["mean_input_psnr"], abs=1e-9)
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["chelsea.png", "coffee.png"]


def test_eval_needs_a_source(capsys):
    assert main(["eval", "--pred", "x"]) == 2
    assert "--pred DIR --gt DIR" in capsys.readouterr().err


def test_eval_has_restores_tiling_options_and_tile_0_runs_whole_images(folders, monkeypatch, capsys):
    """The bundled denoiser tiles in 128 px by default; ``--tile 0`` runs whole images."""
    import sfhformer.restore as restore
    calls = []
    original = restore.forward_tiled
    monkeypatch.setattr(restore, "forward_tiled", lambda *a, **k: calls.append(1) or original(*a, **k))
    base = ["eval", "--weights", "denoise", "--data", str(folders), "--device", "cpu"]
    (folders / "input").mkdir()
    (folders / "target").mkdir()
    write_image(folders / "input" / "a.png", photo()[:160, :160])
    write_image(folders / "target" / "a.png", photo()[:160, :160])
    assert main(base) == 0 and calls
    calls.clear()
    assert main(base + ["--tile", "0"]) == 0 and not calls
    assert main(base + ["--tile", "96", "--tile-overlap", "16", "--max-pixels", "5000"]) == 0 and calls
    capsys.readouterr()
