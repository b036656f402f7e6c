"""The terminal and the frameworks' chatter: log levels set before frameworks import, native output sent to a log.

TensorFlow, XLA, PyTorch, torchao and ExecuTorch print from C++ to the process's file descriptors 1 and 2, where
Python's logging cannot reach; only pointing those descriptors at a file keeps that output off the terminal.
`output_to(log)` does so for a block and yields a stream on the real stdout for the pipeline's own lines.
The CLI sets the verbosity in the environment, so its worker processes (export pool, benchmark workers) follow it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import TextIO

VERBOSITY_ENV = "PIPELINE_VERBOSITY"
VERBOSITIES = ("quiet", "normal", "verbose")
# Read by the frameworks when they import (C++ logging, gRPC/absl, converter progress bars): errors stay, for the
# logs a failure shows. A value the user set is kept; `-v` sets none of them.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
    "LITERT_TORCH_SHOW_PROGRESS": "n",
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning",
}
QUIET_LOGGERS = ("torchao", "torch", "tensorflow", "absl", "onnx2tf", "tf2onnx", "jax", "executorch")


def verbosity() -> str:
    """'quiet', 'normal' or 'verbose', as the CLI set it for this process and its workers."""
    value = os.environ.get(VERBOSITY_ENV, "normal")
    return value if value in VERBOSITIES else "normal"


def set_verbosity(level: str) -> None:
    """Record the verbosity for this process and every worker it starts."""
    os.environ[VERBOSITY_ENV] = level


def quiet_frameworks(env: MutableMapping[str, str] | None = None) -> None:
    """Set the frameworks' log levels in `env` (default: this process's), before they import; not in verbose mode."""
    env = os.environ if env is None else env
    if env.get(VERBOSITY_ENV) == "verbose":
        return
    for name, value in QUIET_ENVIRONMENT.items():
        env.setdefault(name, value)


def quiet_python() -> None:
    """Python-level chatter of this process: deprecation notices and framework loggers below ERROR."""
    if verbosity() == "verbose":
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def real_output() -> bool:
    """Whether sys.stdout and sys.stderr are this process's descriptors 1 and 2 (not a test's capture)."""
    try:
        return sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()


@contextlib.contextmanager
def output_to(log: Path, append: bool = True) -> Iterator[TextIO]:
    """Point descriptors 1 and 2 at `log` for the block (native prints, Python prints, warnings, logging).

    Yields a line-buffered stream on the stdout that was there before, for the pipeline's own lines. The
    descriptors are restored on the way out, before any error is reported.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    _flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o644)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield terminal
    finally:
        _flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (fd, *saved):
            os.close(descriptor)
        terminal.close()


@contextlib.contextmanager
def cell_output(log: Path) -> Iterator[None]:
    """A sweep cell's framework output goes to its own `log` (rewritten each run); in verbose mode, to the terminal."""
    if verbosity() == "verbose":
        yield
        return
    try:
        with output_to(log, append=False):
            yield
    finally:
        with contextlib.suppress(OSError):
            if log.stat().st_size == 0:
                log.unlink()


def tail(path: Path, lines: int = 10) -> list[str]:
    """The last `lines` non-empty lines of a log file ([] when it is absent)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]
