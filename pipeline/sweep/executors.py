"""Executors run independent sweep cells; the driver alone writes the results store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pipeline.errors import UnknownNameError
from pipeline.registry import unknown_name_message


class Executor(Protocol):
    """Runs `fn(*args)` for each args tuple; yields (index, result) as each finishes."""

    name: str

    def map(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]], exclusive_cpu: bool = False) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """One cell after another in this process (benchmarks still run in their own worker)."""

    name = "local"

    def map(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]], exclusive_cpu: bool = False) -> Iterator[tuple[int, Any]]:
        for index, args in enumerate(calls):
            yield index, fn(*args)

    def close(self) -> None:
        pass


EXECUTOR_NAMES = ("local", "ray")


def make_executor(name: str, address: str | None = None) -> Executor:
    """The named executor; 'ray' connects to `address` (or starts a local instance)."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from pipeline.sweep.ray_executor import RayExecutor

        return RayExecutor(address)
    raise UnknownNameError(unknown_name_message("executor", name, list(EXECUTOR_NAMES)))
