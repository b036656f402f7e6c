"""ExecuTorch runtime (`executorch.runtime`): runs `.pte` programs, XNNPACK-delegated or portable."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.base import Availability, ProgramSession
from device_runtime.device_scripts.edge_bench import Protocol, PteProgram
from pipeline.core.errors import ArtifactError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.registry import unknown_name_message

DELEGATES = ("xnnpack", "portable")
BACKEND_NAMES = {"xnnpack": "XnnpackBackend"}


class ExecuTorchSession(ProgramSession):
    """A loaded `.pte` program (the on-device script's `PteProgram`) behind the runtime interface."""

    @property
    def threads_applied(self) -> bool:
        return self.program.threads_applied

    def benchmark(self, feed: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None,
                  protocol: Protocol) -> dict[str, Any]:
        """The harness protocol's result, plus whether the requested thread count took."""
        return {**super().benchmark(feed, labels, protocol), "threads_applied": self.threads_applied}


class ExecuTorchRuntime:
    """Loads `.pte` files with ExecuTorch's Python runtime bindings."""

    name = "executorch"
    delegates = DELEGATES
    target = "executorch"
    default_delegate = "xnnpack"
    packages: tuple[str, ...] = ("executorch", "torch")

    def is_available(self, delegate: str) -> Availability:
        if delegate not in DELEGATES:
            return Availability(False, unknown_name_message("ExecuTorch delegate", delegate, list(DELEGATES)))
        try:
            from executorch.runtime import Runtime
        except ImportError as exc:
            return Availability(False, f"executorch is not installed ({exc}); run `make setup`.")
        backend = BACKEND_NAMES.get(delegate)
        if backend and not Runtime.get().backend_registry.is_available(backend):
            return Availability(False, f"{backend} is not compiled into this ExecuTorch runtime build.")
        return Availability(True)

    def delegation_report(self, model_path: Path) -> None:
        """None: a `.pte` does not list what its delegate replaced; the lowering's report (in the manifest) does."""
        return None

    def load(self, model_path: Path, delegate: str = "xnnpack", threads: int | None = None) -> ExecuTorchSession:
        """Load `forward` from `model_path`; raises ArtifactError for a corrupt program."""
        availability = self.is_available(delegate)
        if not availability.ok:
            raise (UnknownNameError if delegate not in DELEGATES else RuntimeUnavailableError)(availability.reason)
        if not Path(model_path).is_file():
            raise ArtifactError(f"ExecuTorch program {model_path} does not exist; export one with `pipeline export MODEL --target executorch`.")
        started = time.perf_counter()
        try:
            program = PteProgram(Path(model_path), threads, delegate)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise ArtifactError(
                f"ExecuTorch could not load {model_path}: {exc}. The file is truncated, corrupt or not a "
                ".pte program; re-export it."
            ) from None
        return ExecuTorchSession(program, load_ms=(time.perf_counter() - started) * 1000)
