"""The work behind ``sfhformer serve``: the models a server offers, and restoration jobs run one at a
time per device from a bounded queue, their files kept in a temporary folder for a while."""

from __future__ import annotations

import queue
import shutil
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SFHformerError
from ..io import output_suffix, read_image, rgb_pixels, write_image

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")


@dataclass
class ModelEntry:
    """A model the server offers: a bundled one, or a file of ``--models DIR`` (only those:
    a request names a model by id, never by path)."""

    id: str
    label: str
    task: str
    preset: str | None
    source: str
    path: Path  # the weights file (a bundled model's inside the package)
    tile: int | None
    tile_overlap: int
    max_pixels: int

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "task": self.task, "preset": self.preset, "source": self.source,
                "tile": self.tile, "tile_overlap": self.tile_overlap, "max_pixels": self.max_pixels,
                "ensemble": False}


def discover_models(models_dir: str | Path | None) -> dict[str, ModelEntry]:
    """The bundled models and every weights file in ``models_dir`` (not its sub-folders)."""
    from ..models import load, preset_name
    from ..pretrained import WEIGHTS_DIR, available
    from ..restore import DEFAULT_MAX_PIXELS, DEFAULT_TILE_OVERLAP

    entries: dict[str, ModelEntry] = {}
    for name, bundled in available().items():
        path = WEIGHTS_DIR / bundled.file  # the package's file: a folder of that name here must not win
        model = load(path)
        entries[name] = ModelEntry(name, f"{name}: {bundled.description}", bundled.description.split(", ", 1)[-1],
                                   preset_name(model.config), "bundled", path, bundled.tile, bundled.tile_overlap,
                                   DEFAULT_MAX_PIXELS)
    if models_dir is not None:
        folder = Path(models_dir)
        if not folder.is_dir():
            raise ConfigError(f"{folder}: --models names no folder")
        for path in sorted(folder.iterdir()):
            if not (path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES) or path.name in entries:
                continue
            try:
                config = load(path).config
            except SFHformerError as e:
                print(f"note: {path.name} is not offered: {e}")
                continue
            preset = preset_name(config)
            entries[path.name] = ModelEntry(path.name, f"{path.name}: {preset or config.family} ({config.family} family)",
                                            "as trained", preset, "file", path, None, DEFAULT_TILE_OVERLAP,
                                            DEFAULT_MAX_PIXELS)
    return entries


@dataclass
class Job:
    id: str
    folder: Path
    model: str
    options: dict[str, Any]
    input_name: str
    input_format: str
    width: int
    height: int
    has_clean: bool
    state: str = "queued"
    done: int = 0
    total: int = 1
    error: str | None = None
    metrics: dict[str, float | None] | None = None
    result: Path | None = None
    finished: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def filename(self) -> str:
        return f"{self.input_name}_restored{output_suffix(self.input_format)}"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "progress": {"done": self.done, "total": self.total},
                "error": self.error, "metrics": self.metrics, "filename": self.filename, "width": self.width,
                "height": self.height}


class QueueFull(Exception):
    pass


class Worker:
    """Runs jobs one at a time on one device from a bounded queue; finished jobs are kept for
    ``keep_minutes``, then their files are deleted. ``close()`` deletes everything."""

    def __init__(self, models: dict[str, ModelEntry], device: str, max_queue: int, keep_minutes: float) -> None:
        import tempfile

        self.models, self.device, self.keep_seconds = models, device, keep_minutes * 60
        self.root = Path(tempfile.mkdtemp(prefix="sfhformer-serve-"))
        self.jobs: dict[str, Job] = {}
        self.queue: queue.Queue[Job] = queue.Queue(maxsize=max_queue)
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sfhformer-worker", daemon=True)
        self._thread.start()

    # -- the request side ------------------------------------------------------------------

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def submit(self, job: Job) -> None:
        with self._lock:
            self.jobs[job.id] = job
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            self._forget(job.id)
            raise QueueFull from None

    def get(self, job_id: str) -> Job | None:
        self.expire()
        with self._lock:
            return self.jobs.get(job_id)

    def expire(self) -> None:
        now = time.time()
        with self._lock:
            old = [j.id for j in self.jobs.values() if j.finished is not None and now - j.finished > self.keep_seconds]
        for job_id in old:
            self._forget(job_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)  # a running job ends first
        shutil.rmtree(self.root, ignore_errors=True)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            job = self.jobs.pop(job_id, None)
        if job is not None:
            shutil.rmtree(job.folder, ignore_errors=True)

    # -- the worker side -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.queue.get(timeout=0.5)
            except queue.Empty:
                self.expire()
                continue
            job.state = "running"
            try:
                self._restore(job)
                job.state = "done"
            except SFHformerError as e:
                job.error, job.state = str(e).replace(str(job.folder) + "/", ""), "error"
            except Exception as e:  # a bug: the job says so, the log keeps its traceback, the server goes on
                traceback.print_exc()
                job.error, job.state = f"internal error ({type(e).__name__}), please report it", "error"
            finally:
                job.finished = time.time()

    def _model(self, model_id: str):
        if model_id not in self._loaded:
            from ..models import load

            entry = self.models[model_id]
            self._loaded[model_id] = load(entry.path).fuse()
        return self._loaded[model_id]

    def _restore(self, job: Job) -> None:
        from ..metrics import score
        from ..restore import Restorer

        entry = self.models[job.model]
        options = {"tile": entry.tile, "default_tile_overlap": entry.tile_overlap, "max_pixels": entry.max_pixels,
                   **job.options}

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        restorer = Restorer(self._model(job.model), device=self.device, on_progress=progress, **options)
        picture = read_image(job.folder / "input")
        restored = restorer.restore_picture(picture, job.input_name)
        job.result = write_image(job.folder / f"result{output_suffix(picture.format)}", restored.pixels,
                                 restored.alpha)
        write_image(job.folder / "preview_input.png", _preview(picture.pixels))
        write_image(job.folder / "preview_output.png", _preview(restored.pixels))
        if job.has_clean:
            clean = rgb_pixels(read_image(job.folder / "clean").pixels)
            out, given = rgb_pixels(restored.pixels), rgb_pixels(picture.pixels)
            try:  # the restoration stands even if it cannot be scored (an image under SSIM's 11 px)
                p, s = score(out, clean, name="the clean reference")
                ip, iss = score(given, clean, name="the clean reference")
                job.metrics = {"psnr": p if p != float("inf") else None, "ssim": s,
                               "input_psnr": ip if ip != float("inf") else None, "input_ssim": iss}
            except SFHformerError:
                job.metrics = None


def _preview(pixels):
    """8-bit RGB for a browser (16-bit and float images shown at 8 bits)."""
    from ..metrics import to_uint8_array

    return rgb_pixels(to_uint8_array(pixels))
