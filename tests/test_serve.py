"""sfhformer serve: the JSON API through the framework's test client (the page itself:
test_serve_browser.py)."""

import io
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

import sfhformer  # noqa: E402
from sfhformer.cli import main  # noqa: E402
from sfhformer.io import read_image, write_image  # noqa: E402
from sfhformer.serve.app import create_app  # noqa: E402

from conftest import identity_model, photo  # noqa: E402


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    sfhformer.save(identity_model(), folder / "same.safetensors")
    (folder / "notes.pth").write_bytes(b"not weights")  # skipped with a note, not offered
    return folder


LOCAL = "http://127.0.0.1:8000"  # without a token the server answers requests for this machine only


@pytest.fixture
def client(models_dir):
    with TestClient(create_app(models_dir, device="cpu", max_upload_mb=1, max_queue=4), base_url=LOCAL) as c:
        yield c


def _png(arr) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def _wait(client, job_id, headers=None, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if state["state"] in ("done", "error"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def _restore(client, data: bytes, name="a.png", model="same.safetensors", headers=None, **fields):
    files = {"image": (name, data, "application/octet-stream")}
    if "clean" in fields:
        files["clean"] = ("clean.png", fields.pop("clean"), "image/png")
    return client.post("/api/restore", files=files, data={"model": model, **fields}, headers=headers)


def test_health_models_and_schema(client):
    assert client.get("/api/health").json()["status"] == "ok"
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert {"denoise", "deblur", "same.safetensors"} <= set(models) and "notes.pth" not in models
    assert models["denoise"]["tile"] == 128 and models["denoise"]["tile_overlap"] == 32
    schema = client.get("/openapi.json").json()
    assert {"/api/restore", "/api/jobs/{job_id}", "/api/jobs/{job_id}/result", "/api/jobs/{job_id}/spectrum",
            "/api/models", "/api/health"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404  # no CDN assets


@pytest.mark.parametrize("kind", ["rgb8", "gray", "rgba", "gray_alpha", "deep16", "jpeg", "tiff_gray", "webp", "bmp",
                                  "gif"])
def test_every_kind_restore_handles_comes_back_as_restore_writes_it(kind, client, tmp_path):
    rgb = photo("chelsea")[:48, :64]
    path = tmp_path / {"jpeg": "p.jpg", "tiff_gray": "p.tif", "webp": "p.webp", "bmp": "p.bmp",
                       "gif": "p.gif"}.get(kind, "p.png")
    if kind in ("jpeg", "webp", "bmp"):
        Image.fromarray(rgb).save(path, quality=90) if kind != "bmp" else Image.fromarray(rgb).save(path)
    elif kind == "gif":  # a palette image
        Image.fromarray(rgb).quantize(64).save(path)
    elif kind == "gray_alpha":
        Image.fromarray(np.dstack([rgb[..., 0], np.full(rgb.shape[:2], 90, np.uint8)]), "LA").save(path)
    else:
        pixels = {"rgb8": rgb, "gray": rgb[..., 0], "rgba": rgb, "deep16": rgb.astype(np.uint16) * 257,
                  "tiff_gray": rgb[..., 1]}[kind]
        write_image(path, pixels, np.full(rgb.shape[:2], 90, np.uint8) if kind == "rgba" else None)
    response = _restore(client, path.read_bytes(), name=path.name)
    assert response.status_code == 202, response.text
    state = _wait(client, response.json()["id"])
    assert state["state"] == "done" and state["progress"]["done"] == state["progress"]["total"] >= 1
    got = client.get(f"/api/jobs/{state['id']}/result")
    assert got.status_code == 200
    (tmp_path / "served").mkdir()
    served = tmp_path / "served" / state["filename"]
    served.write_bytes(got.content)
    assert main(["restore", str(path), "-o", str(tmp_path / "cli"), "--weights",
                 str(client.app.fastapi.state.worker.models["same.safetensors"].path), "--device", "cpu",
                 "--suffix", "_restored"]) == 0
    expected = read_image(tmp_path / "cli" / state["filename"])
    ours = read_image(served)
    assert np.array_equal(ours.pixels, expected.pixels) and ours.pixels.dtype == expected.pixels.dtype
    assert (ours.alpha is None) == (expected.alpha is None)
    for which in ("input", "output"):
        preview = client.get(f"/api/jobs/{state['id']}/preview/{which}")
        assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (64, 48)


def test_clean_reference_gives_metrics_and_spectrum_draws(client):
    clean = photo("chelsea")[:64, :64]
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    response = _restore(client, _png(noisy), clean=_png(clean), model="denoise", tile="0")
    state = _wait(client, response.json()["id"])
    assert state["state"] == "done", state
    m = state["metrics"]
    assert m["psnr"] > m["input_psnr"] + 3 and m["ssim"] > m["input_ssim"]
    spectrum = client.get(f"/api/jobs/{state['id']}/spectrum")
    assert spectrum.status_code == 200 and spectrum.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(spectrum.content)).size[0] > 300


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"hello, not an image" * 10, "not an image file"),
    (_png(photo("chelsea")[:40, :40])[:300], "truncated or corrupt"),
])
def test_bad_uploads_get_400_with_the_reason_and_the_server_keeps_serving(client, data, reason):
    response = _restore(client, data, name="upload.png")
    assert response.status_code == 400 and reason in response.json()["detail"]
    assert "upload.png" in response.json()["detail"] and "/tmp" not in response.json()["detail"]
    assert client.get("/api/health").status_code == 200


def test_decompression_bomb_unknown_model_and_bad_options_are_400(client, monkeypatch):
    assert _restore(client, _png(photo()[:32, :32]), model="../../etc/passwd").status_code == 400
    assert "tile overlap" in _restore(client, _png(photo()[:32, :32]), tile="32", tile_overlap="30").json()["detail"]
    data = _png(photo()[:64, :64])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 64x64 image is now a bomb
    response = _restore(client, data)
    assert response.status_code == 400 and "decompression bomb" in response.json()["detail"]


def test_uploads_over_the_limit_are_413_even_chunked(client):
    big = np.random.default_rng(0).integers(0, 255, (800, 800, 3), dtype=np.uint8)  # ~1.9 MB of PNG > 1 MB
    assert _restore(client, _png(big)).status_code == 413

    def chunks():  # no Content-Length: the limit must hold while the body streams
        boundary = b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
        yield boundary
        for _ in range(40):
            yield b"\0" * 65536
        yield b"\r\n--x--\r\n"

    response = client.post("/api/restore", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "limit of 1 MB" in response.json()["detail"]


def test_a_full_queue_answers_503_with_retry_after(models_dir, monkeypatch):
    from sfhformer.serve import jobs
    gate = __import__("threading").Event()
    original = jobs.Worker._restore
    monkeypatch.setattr(jobs.Worker, "_restore", lambda self, job: gate.wait(30) or original(self, job))
    with TestClient(create_app(models_dir, device="cpu", max_queue=2), base_url=LOCAL) as client:
        codes = [_restore(client, _png(photo()[:32, :32])).status_code for _ in range(5)]
        busy = _restore(client, _png(photo()[:32, :32]))
        gate.set()
    assert codes[:3] == [202, 202, 202] and 503 in codes  # one running, two waiting, then full
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"


def test_token_is_needed_on_every_api_call_and_the_schema(models_dir):
    with TestClient(create_app(models_dir, device="cpu", token="s3cret")) as client:
        for path in ("/api/health", "/api/models", "/openapi.json", "/api/jobs/x"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"X-Token": "wrong"}).status_code == 401, path
        assert _restore(client, _png(photo()[:32, :32])).status_code == 401
        good = {"X-Token": "s3cret"}
        assert client.get("/api/health", headers=good).status_code == 200
        job = _restore(client, _png(photo()[:32, :32]), headers=good)
        assert job.status_code == 202 and _wait(client, job.json()["id"], good)["state"] == "done"
        assert client.get("/").status_code == 200  # the page is public; its calls carry the token


def test_results_expire_and_temporary_files_do_not_outlive_the_server(models_dir):
    app = create_app(models_dir, device="cpu", keep_minutes=0)
    root = app.fastapi.state.worker.root
    with TestClient(app, base_url=LOCAL) as client:
        job = _restore(client, _png(photo()[:32, :32])).json()["id"]
        _wait_gone = time.time() + 30
        while client.get(f"/api/jobs/{job}").status_code != 404 and time.time() < _wait_gone:
            time.sleep(0.05)
        assert client.get(f"/api/jobs/{job}").status_code == 404
        assert root.is_dir() and not any(root.iterdir())
    assert not root.exists()


def test_without_a_token_only_this_machine_and_its_own_page_are_answered(client, models_dir):
    """DNS rebinding (another site's domain pointed at 127.0.0.1) and CSRF (another site's form
    posting here) are refused; the page's own calls, with its own Origin, are not."""
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example:8000", "127.0.0.1.evil.example", ""):
        response = client.get("/api/health", headers={"Host": host})
        assert response.status_code == 403 and "only requests for localhost" in response.json()["detail"], host
    image = _png(photo()[:32, :32])
    response = _restore(client, image, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and "another site (https://evil.example)" in response.json()["detail"]
    assert _restore(client, image, headers={"Origin": "null"}).status_code == 403  # sandboxed frames, files
    job = _restore(client, image, headers={"Origin": LOCAL})
    assert job.status_code == 202 and _wait(client, job.json()["id"])["state"] == "done"
    assert client.get("/api/health", headers={"Origin": "https://evil.example"}).status_code == 200  # reads: CORS
    # with a token any host is answered (a proxy may rename it); another site cannot send the token
    with TestClient(create_app(models_dir, device="cpu", token="t")) as tokened:
        assert tokened.get("/api/health", headers={"X-Token": "t"}).status_code == 200
    with TestClient(create_app(models_dir, device="cpu", token="t", local_only=True)) as both:
        assert both.get("/api/health", headers={"X-Token": "t"}).status_code == 403


def test_serve_refuses_a_public_address_without_a_token(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "give a --token" in capsys.readouterr().err


def test_options_the_server_cannot_honour_are_refused(client, models_dir, tmp_path, monkeypatch):
    assert "larger than this server's budget" in _restore(client, _png(photo()[:32, :32]), tile="100000").json()["detail"]
    small = _png(photo()[:32, :32])
    response = _restore(client, small, clean=_png(photo()[:40, :40]))
    assert response.status_code == 400 and "must be the same size" in response.json()["detail"]
    with pytest.raises(sfhformer.errors.ConfigError, match="--queue must be at least 1"):
        create_app(models_dir, device="cpu", max_queue=0)
    # a folder named like a bundled model in the working directory does not replace it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "denoise").mkdir()
    with TestClient(create_app(None, device="cpu"), base_url=LOCAL) as other:
        assert any(m["id"] == "denoise" for m in other.get("/api/models").json()["models"])
