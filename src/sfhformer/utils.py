"""Small helpers shared across the package."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    An interrupted write leaves ``path`` as it was (absent or the previous version), never
    half-written. ``suffix`` keeps an extension on the temporary name for writers that
    choose the format from it. The file gets the mode the umask gives (some writers create
    0600 files). An OS error (permissions, a full disk, a file where a folder should be)
    becomes one :class:`~sfhformer.errors.OutputError` naming ``path``.

    Raises:
        OutputError: ``path`` cannot be written.
    """
    from .errors import OutputError, SFHformerError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if isinstance(e, SFHformerError):
            raise
        raise OutputError(f"{path}: cannot be written ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def shorten_list(items: Sequence[object], shown: int = 5) -> str:
    """``"a, b, c, ... (7 more)"``: the first ``shown`` items of a list that may be long."""
    head = ", ".join(map(str, items[:shown]))
    return head + (f", ... ({len(items) - shown} more)" if len(items) > shown else "")


def pad_bottom_right(x, height: int, width: int):
    """Pad a (..., H, W) tensor at the bottom and right to at least ``height`` x ``width``:
    reflect where the image is larger than the padding, else replicate (reflection needs it)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = max(height - h, 0), max(width - w, 0)
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    batched = x if x.ndim == 4 else x[None]
    out = F.pad(batched, (0, pw, 0, ph), mode=mode)
    return out if x.ndim == 4 else out[0]


def _umask() -> int:
    """The process's umask, read without setting it (os.umask can only set it, and a library must
    not change the process even for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


_KEEPING_FREED_MEMORY = False


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the system.

    Why: glibc serves every block above a threshold (at most 32 MB) with its own ``mmap`` and
    unmaps it when freed, so the next tensor of that size starts on fresh pages that the
    kernel must fault in and zero. Inference on large images allocates many such tensors;
    on a 2-core CPU at 512x512 this page faulting took 70% of sfhformer_s's time
    (``python benchmarks/speed.py`` measures both settings). ``mallopt(M_MMAP_MAX, 0)`` serves
    large blocks from the heap and ``mallopt(M_TRIM_THRESHOLD, ...)`` keeps the heap from
    shrinking, so freed blocks are reused. The setting is process-wide, and the process keeps
    its peak memory until it exits. Same as starting Python with the environment variables
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>``.

    Returns True when the setting is in effect, False where the C library is not glibc
    (macOS, Windows, musl), where it does nothing.
    """
    global _KEEPING_FREED_MEMORY
    if _KEEPING_FREED_MEMORY:
        return True
    libc = _glibc()
    if libc is None:
        return False
    import ctypes
    m_trim_threshold, m_mmap_max = -1, -4  # from <malloc.h>
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(m_trim_threshold, 2**31 - 1) == 1 and mallopt(m_mmap_max, 0) == 1
    _KEEPING_FREED_MEMORY = ok
    return ok


def release_freed_memory() -> None:
    """Give the memory that :func:`keep_freed_memory` keeps back to the system (glibc's
    ``malloc_trim``), e.g. between the tiles of a large image: blocks freed by one tile would
    otherwise fragment the heap as the next one allocates, and the process would keep growing.
    Does nothing unless :func:`keep_freed_memory` is in effect."""
    if _KEEPING_FREED_MEMORY:
        _glibc().malloc_trim(0)


@functools.cache
def _glibc():
    """The process's C library when it is glibc (whose malloc the two functions above tune),
    else None."""
    import ctypes
    import platform
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
