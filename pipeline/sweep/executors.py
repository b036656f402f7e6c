"""Executors run independent sweep cells; the driver alone writes the results store."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pipeline.core.errors import UnknownNameError
from pipeline.core.registry import unknown_name_message
from pipeline.sweep.cells import OnFailure, failed_call


class Executor(Protocol):
    """Runs `fn(*args)` for each args tuple; yields (index, result) as each finishes.

    A call the executor loses (a crashed worker, a lost task) yields `on_failure(args, error, executor)`.
    """

    name: str

    def map(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]], exclusive_cpu: bool = False,
            on_failure: OnFailure | None = None) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


def init_export_worker(parent_pid: int, threads: int) -> None:
    """Pool initializer: share the cores between workers, keep the frameworks quiet, and die with a killed sweep.

    Thread counts and log levels are set before TensorFlow or PyTorch load (two workers with a thread per
    core each would oversubscribe); each cell sends what they print to its own log (`cells.export_log`).
    PR_SET_PDEATHSIG (Linux) stops an orphan from finishing an export while the resumed sweep redoes the same cell.
    """
    import ctypes
    import signal

    from pipeline.core.console import quiet_frameworks, quiet_python

    for variable in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(variable, str(threads))
    quiet_frameworks()
    quiet_python()

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: orphans finish their cell and exit
        return
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


class LocalExecutor:
    """This machine: exports on `workers` processes side by side, benchmarks one at a time.

    Benchmarks (`exclusive_cpu`) run in turn from this process, each in its own pinned worker, so two
    measurements never share a CPU. Other calls go to a pool of spawned processes (one per usable
    core by default; `workers=1` runs them here, one after another).
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or len(os.sched_getaffinity(0))
        self._pool: Any = None

    def map(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]], exclusive_cpu: bool = False,
            on_failure: OnFailure | None = None) -> Iterator[tuple[int, Any]]:
        if exclusive_cpu or self.workers <= 1 or len(calls) <= 1:
            for index, args in enumerate(calls):
                yield index, fn(*args)
            return
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        on_failure = on_failure or failed_call
        pool = self._ensure_pool()
        futures = {pool.submit(fn, *args): index for index, args in enumerate(calls)}
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    result = future.result()
                except BrokenProcessPool as exc:  # a worker died (crash, out of memory): that cell failed
                    self._pool = None
                    result = on_failure(calls[index], f"export worker died: {exc}", self.name)
                yield index, result
        finally:
            for future in futures:  # stopped early (Ctrl-C, an error): start nothing new
                future.cancel()

    def _ensure_pool(self) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: this process may already hold TensorFlow/PyTorch thread pools
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=init_export_worker,
                                             initargs=(os.getpid(), max(1, len(os.sched_getaffinity(0)) // self.workers)))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


EXECUTOR_NAMES = ("local", "ray")


def make_executor(name: str, address: str | None = None, workers: int | None = None) -> Executor:
    """The named executor; 'ray' connects to `address` (or starts a local instance with `workers` CPUs).

    `workers`: exports side by side (default: one per usable core).
    """
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        from pipeline.sweep.ray_executor import RayExecutor

        return RayExecutor(address, num_cpus=workers)
    raise UnknownNameError(unknown_name_message("executor", name, list(EXECUTOR_NAMES)))
