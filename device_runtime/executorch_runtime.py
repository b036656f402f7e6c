"""ExecuTorch runtime (`executorch.runtime`): runs `.pte` programs, XNNPACK-delegated or portable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.base import Availability
from pipeline.core.errors import ArtifactError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.registry import unknown_name_message

DELEGATES = ("xnnpack", "portable")
BACKEND_NAMES = {"xnnpack": "XnnpackBackend"}


@dataclass
class ExecuTorchSession:
    """One loaded `forward` method; batches run sample by sample at the program's batch size."""

    method: Any
    delegate: str
    batch: int

    def run(self, x: np.ndarray) -> np.ndarray:
        import torch

        outputs = []
        for start in range(0, len(x), self.batch):
            chunk = torch.tensor(np.asarray(x[start : start + self.batch], dtype=np.float32))
            outputs.append(self.method.execute((chunk,))[0].numpy().copy())  # runtime may reuse its buffer
        return np.concatenate(outputs)

    def close(self) -> None:
        self.method = None


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
        from executorch.runtime import Runtime

        try:
            program = Runtime.get().load_program(Path(model_path))
            method = program.load_method("forward")
        except (RuntimeError, ValueError) as exc:
            raise ArtifactError(
                f"ExecuTorch could not load {model_path}: {exc}. The file is truncated, corrupt or not a "
                ".pte program; re-export it."
            ) from None
        shape = method.metadata.input_tensor_meta(0).sizes()
        return ExecuTorchSession(method=method, delegate=delegate, batch=int(shape[0]))
