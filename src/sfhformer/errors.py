"""The errors a user can cause: one family, each printed by the CLI as one line.

Everything else that escapes is a bug in this package: the CLI keeps its traceback and asks
for a report. Subclasses also derive from the built-in exception a caller would expect
(``ValueError``, ``FileNotFoundError``, ...), so ``except ValueError`` keeps working.

``exit_code`` is what ``sfhformer`` returns when the error ends a command:
0 all done, 1 some inputs or the run failed, 2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class SFHformerError(Exception):
    """Base of every error a user can cause; the message says what and where."""

    exit_code = EXIT_USAGE


class ConfigError(SFHformerError, ValueError):
    """A configuration, option or argument that cannot be used (unknown key, wrong type,
    impossible value)."""


class NotFoundError(SFHformerError, FileNotFoundError):
    """A file, folder, bundled model or optional package that was named does not exist."""


class CheckpointError(SFHformerError, ValueError):
    """A weights file that cannot be read or does not fit the model; the message names the file."""


class DataError(SFHformerError, ValueError):
    """Dataset folders that do not form the pairs their layout promises."""


class ImageError(SFHformerError, ValueError):
    """An image that cannot be read or written; the message names the file and the problem."""

    exit_code = EXIT_FAILED


class OutputError(SFHformerError, OSError):
    """An output (report, checkpoint, export) that cannot be written: permissions, disk full."""

    exit_code = EXIT_FAILED


class TrainingError(SFHformerError, RuntimeError):
    """Training cannot go on (diverged loss, an unusable checkpoint); the message says why and
    what is kept."""

    exit_code = EXIT_FAILED


class ModelError(SFHformerError, RuntimeError):
    """A model computed values that cannot be an image (NaN or Inf): broken weights, or an
    overflow in reduced precision."""

    exit_code = EXIT_FAILED


class OutOfMemoryError(SFHformerError, RuntimeError):
    """The device ran out of memory even at the smallest tiles, one at a time."""

    exit_code = EXIT_FAILED
