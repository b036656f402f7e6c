"""One error hierarchy for everything a user can get wrong.

The CLI prints these as one paragraph and exits with code 2; any other
exception is a bug: the CLI says so, keeps its traceback in a log and exits 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class PipelineError(Exception):
    """Base of every error caused by input the user can fix."""


class ConfigError(PipelineError):
    """A configuration value is invalid (out of range, wrong type, inconsistent)."""


class UnknownNameError(PipelineError):
    """A name (target, mode, zoo model, ...) is not registered."""


class UnsupportedRouteError(PipelineError):
    """A source framework cannot reach a target, or a target cannot express an option."""


class IntakeError(PipelineError):
    """A model file is missing, corrupt or of a format that is not supported."""


class DataError(PipelineError):
    """Evaluation or calibration data is missing or has the wrong shape or dtype."""


class ExportError(PipelineError):
    """A converter failed on the model (for example an op it cannot take)."""


class OutputMismatchError(PipelineError):
    """An exported artifact disagrees with its source model beyond tolerance."""


class RuntimeUnavailableError(PipelineError):
    """A runtime or delegate cannot run on this machine."""


class ArtifactError(PipelineError):
    """An exported artifact is missing, truncated or corrupt."""


def first_line(exc: BaseException, limit: int = 500) -> str:
    """The first non-blank line of `exc`'s message (its type name when there is none), cut to `limit` characters."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:limit]


class FileSystemError(PipelineError):
    """Reading or writing a file failed: a permission, a full disk, a path that vanished."""


# What converters, tracers and loaders raise for a model they cannot take: their own error classes derive
# from these (torch's UserError and OnnxExporterError from RuntimeError). Libraries whose errors derive
# from Exception directly (TensorFlow's OpError and ConverterError, onnx2fx) add them at the call site.
CONVERSION_ERRORS: tuple[type[Exception], ...] = (
    ValueError, TypeError, RuntimeError, NotImplementedError, AssertionError, KeyError, IndexError, AttributeError,
)


def filesystem_error(exc: OSError, doing: str) -> FileSystemError:
    """A FileSystemError naming the path and the system's reason (not a problem with the model)."""
    where = exc.filename or "a file"
    return FileSystemError(f"{doing} failed on the file system, not on the model: {where}: {exc.strerror or exc}. "
                           "Check that the path exists and is writable and that the disk has space, then retry.")


@contextmanager
def converter_errors(to_error: Callable[[Exception], PipelineError], doing: str,
                     *also: type[Exception]) -> Iterator[None]:
    """Translate a failure of a converter step: what it raises for the model becomes `to_error(exc)`, an OSError a
    FileSystemError; anything else is a bug and propagates with its traceback."""
    try:
        yield
    except PipelineError:
        raise
    except OSError as exc:
        raise filesystem_error(exc, doing) from None
    except (*CONVERSION_ERRORS, *also) as exc:
        raise to_error(exc) from None


def tensorflow_errors() -> tuple[type[Exception], ...]:
    """TensorFlow's failures that do not derive from the built-in ones (imports TensorFlow)."""
    import tensorflow as tf
    from tensorflow.lite.python.convert_phase import ConverterError

    return tf.errors.OpError, ConverterError


def write_traceback(log: Path, exc: BaseException) -> Path:
    """Append `exc`'s traceback to `log` (created with its folder) and return the path."""
    import traceback
    from datetime import UTC, datetime

    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        handle.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        handle.write("".join(traceback.format_exception(exc)))
    return log


def internal_error_message(exc: BaseException, log: Path) -> str:
    """One line for a bug: what was raised and where its traceback is (it is not the input's fault)."""
    return (f"internal error ({type(exc).__name__}: {first_line(exc, 300)}); this is a bug in the pipeline, not a "
            f"problem with your input. The traceback is in {log}.")
