"""``sfhformer serve``: a local web app and JSON API to restore and inspect images.

    app = create_app(models_dir="weights/", device="auto", token=None)   # an ASGI app
    uvicorn.run(app, host="127.0.0.1", port=8000)

The page (``static/``) uses nothing but the API below; ``/openapi.json`` describes it. Limits:
one worker on the device runs jobs from a bounded queue (full: 503 with Retry-After); uploads
above ``max_upload_mb`` are refused with 413 while they stream in, chunked ones too; results
are kept ``keep_minutes`` after they finish. With a token, every API call and the schema need
it in the ``X-Token`` header (compared in constant time). Without one the server is for this
machine only: requests must name it as ``localhost``, ``127.0.0.1`` or ``::1`` (a web page
whose domain was made to point here, "DNS rebinding", names its own domain and is refused), and
a request that changes something (POST) must come from the page's own origin when the browser
says where it comes from (a form on another site posting here, "CSRF", is refused). The server
leaves the process allocator at its defaults: a long-running process must not keep its peak
memory.
"""

import hmac
import json
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Imported here, not inside create_app: FastAPI reads the handlers' annotations from this module.
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import SFHformerError
from .jobs import Job, QueueFull, Worker, discover_models

STATIC = Path(__file__).parent / "static"
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _hostname(host: str) -> str:
    """``127.0.0.1:8000`` -> ``127.0.0.1``, ``[::1]:8000`` -> ``::1``."""
    return urlsplit(f"//{host}").hostname or ""


class Guard:
    """The ASGI layer around the app: the Host and Origin checks of a local server, the token on
    /api/* and /openapi.json, and the upload limit, counted on the bytes as they arrive (the
    framework would read the whole body before a handler could look)."""

    def __init__(self, app, token: "str | None", max_bytes: int, hosts: "tuple[str, ...] | None" = None) -> None:
        self.app, self.token, self.max_bytes, self.hosts = app, token, max_bytes, hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, headers = scope["path"], dict(scope["headers"])
        if self.hosts is not None:
            host = headers.get(b"host", b"").decode("latin-1")
            if _hostname(host) not in self.hosts:
                return await _json(send, 403, {"detail": f"this server answers only requests for {', '.join(self.hosts)}"
                                                         f", not {host!r} (start it with a --token to serve others)"})
            origin = headers.get(b"origin")
            if scope["method"] not in ("GET", "HEAD") and origin is not None \
                    and urlsplit(origin.decode("latin-1")).netloc != host:
                return await _json(send, 403, {"detail": f"a request from another site ({origin.decode('latin-1')}) "
                                                         f"is refused: use this server's own page"})
        if self.token is not None and (path.startswith("/api/") or path == "/openapi.json"):
            given = headers.get(b"x-token", b"")
            if not hmac.compare_digest(given, self.token.encode()):
                return await _json(send, 401, {"detail": "this server needs its token (X-Token header)"})
        if scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _json(send, 413, {"detail": self._too_large()})
        received, refused = 0, False

        async def counted_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # answer now, and tell the app the client went away
                    refused = True
                    await _json(send, 413, {"detail": self._too_large()})
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:  # after the 413, whatever the app answers is dropped
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    def _too_large(self) -> str:
        return f"the upload is larger than this server's limit of {self.max_bytes / 2**20:g} MB (--max-upload-mb)"


async def _json(send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def create_app(models_dir: "str | Path | None" = None, device: str = "auto", token: "str | None" = None,
               max_upload_mb: float = 50, keep_minutes: float = 30, max_queue: int = 8,
               local_only: "bool | None" = None) -> "Guard":
    """The server as an ASGI app (``uvicorn.run(app, ...)``, or FastAPI's test client).

    ``local_only``: answer only requests addressed to this machine (Host ``localhost``,
    ``127.0.0.1``, ``::1``) and refuse POSTs whose ``Origin`` is another site; default: when there
    is no token (with one, another site cannot send it, and a proxy may rename the host)."""
    from ..restore import resolve_device

    from ..errors import ConfigError

    if max_queue < 1 or max_upload_mb <= 0 or keep_minutes < 0:
        raise ConfigError(f"--queue must be at least 1, --max-upload-mb above 0 and --keep-minutes at least 0; "
                          f"got {max_queue}, {max_upload_mb:g}, {keep_minutes:g}")
    device = str(resolve_device(device))
    models = discover_models(models_dir)
    worker: Worker | None = None

    @asynccontextmanager
    async def lifespan(_app):
        yield
        if worker is not None:
            worker.close()

    app = FastAPI(title="sfhformer", version=_version(), docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Restore images with SFHformer; inspect what the network did in frequency.")
    worker = Worker(models, device, max_queue, keep_minutes)
    app.state.worker = worker

    def job_or_404(job_id: str) -> Job:
        job = worker.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} (unknown, or expired after {keep_minutes:g} minutes)")
        return job

    def finished(job_id: str) -> Job:
        job = job_or_404(job_id)
        if job.state != "done":
            raise HTTPException(409, f"job {job_id} is {job.state}" + (f": {job.error}" if job.error else ""))
        return job

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "device": device, "queued": worker.queue.qsize(), "max_queue": max_queue}

    @app.get("/api/models")
    def list_models() -> dict[str, Any]:
        return {"models": [m.public() for m in models.values()]}

    @app.post("/api/restore", status_code=202)
    def restore(image: UploadFile = File(...), model: str = Form(...), clean: UploadFile | None = File(None),
                tile: int | None = Form(None), tile_overlap: int | None = Form(None),
                ensemble: bool = Form(False)) -> dict[str, Any]:
        from ..io import read_image
        from ..restore import Restorer

        if model not in models:
            raise HTTPException(400, f"unknown model {model!r}; this server offers {', '.join(models)}")
        budget = models[model].max_pixels
        if tile and tile * tile > budget:  # a tile is run whole: it must fit the pixel budget
            raise HTTPException(400, f"tile {tile} is larger than this server's budget of {budget} pixels a pass "
                                     f"(at most {int(budget ** 0.5)})")
        options: dict[str, Any] = {"ensemble": ensemble}
        if tile is not None:
            options["tile"] = tile or None  # 0: whole images up to the pixel budget
        if tile_overlap is not None:
            options["tile_overlap"] = tile_overlap
        job_id, folder = worker.new_folder()
        try:
            try:
                Restorer(_Nothing(), device="cpu", **{"default_tile_overlap": models[model].tile_overlap,
                                                      "tile": models[model].tile, **options})  # options valid?
                (folder / "input").write_bytes(image.file.read())
                picture = read_image(folder / "input")  # refuse bad images now, with the reason
                if clean is not None and clean.filename:
                    (folder / "clean").write_bytes(clean.file.read())
                    reference = read_image(folder / "clean")
                    if reference.pixels.shape[:2] != picture.pixels.shape[:2]:
                        raise HTTPException(400, f"the clean reference is {reference.pixels.shape[1]}x"
                                                 f"{reference.pixels.shape[0]}, the image {picture.pixels.shape[1]}x"
                                                 f"{picture.pixels.shape[0]}: they must be the same size")
            except SFHformerError as e:
                raise HTTPException(400, str(e).replace(str(folder / "input"), image.filename or "the image")
                                    .replace(str(folder / "clean"), "the clean reference")) from None
            h, w = picture.pixels.shape[:2]
            job = Job(job_id, folder, model, options, Path(image.filename or "image").stem, picture.format, w, h,
                      clean is not None and bool(clean.filename))
            worker.submit(job)
        except QueueFull:  # the worker has already forgotten the job and removed its folder
            raise HTTPException(503, f"the server is busy ({max_queue} images queued); try again shortly",
                                headers={"Retry-After": "5"}) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return {"id": job_id, "state": job.state}

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str) -> dict[str, Any]:
        return job_or_404(job_id).public()

    @app.get("/api/jobs/{job_id}/result")
    def result(job_id: str):
        job = finished(job_id)
        return FileResponse(job.result, filename=job.filename)

    @app.get("/api/jobs/{job_id}/preview/{which}")
    def preview(job_id: str, which: str):
        if which not in ("input", "output"):
            raise HTTPException(404, "preview is input or output")
        return FileResponse(finished(job_id).folder / f"preview_{which}.png", media_type="image/png")

    @app.get("/api/jobs/{job_id}/spectrum")
    def spectrum(job_id: str):
        job = finished(job_id)
        path = job.folder / "spectrum.png"
        with job.lock:
            if not path.exists():
                _draw_spectrum(job, path)
        return Response(path.read_bytes(), media_type="image/png")

    if STATIC.is_dir():
        @app.get("/", include_in_schema=False)
        def page():
            return FileResponse(STATIC / "index.html")

        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    local = token is None if local_only is None else local_only
    guarded = Guard(app, token, int(max_upload_mb * 2**20), LOOPBACK if local else None)
    guarded.fastapi = app  # tests and callers reach the framework's app here
    return guarded


class _Nothing:
    """A stand-in network: only the options of a Restorer are checked with it."""

    def to(self, device):
        return self

    def eval(self):
        return self


def _draw_spectrum(job: Job, path: Path) -> None:
    from ..io import read_image
    from ..spectrum import spectrum_figure
    from ..utils import atomic_path

    fig = spectrum_figure(read_image(job.folder / "preview_output.png").pixels,
                          read_image(job.folder / "preview_input.png").pixels, ("restored", "input"))
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")


def _version() -> str:
    from .. import __version__

    return __version__
