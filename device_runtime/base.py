"""The runtime interface every backend implements: availability, load, run, close."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from device_runtime.device_scripts.edge_bench import measure, run_batch
from device_runtime.inputs import InputSignature
from pipeline.core.records import DelegationReport


@dataclass(frozen=True)
class Availability:
    """Whether a runtime/delegate can run here, and if not, why."""

    ok: bool
    reason: str = ""


class Session(Protocol):
    """A loaded artifact ready to run on one delegate."""

    delegate: str

    @property
    def delegate_used(self) -> str:
        """The delegate or backend that really holds the graph, read from the runtime after loading."""
        ...

    def run_outputs(self, feed: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Every output for a batch: `feed` maps the source model's input names to batches, in its input order
        (a single array for a single-input model). Inputs are matched to the artifact's by name where the names
        agree, else by position; integer and boolean inputs keep their values (cast to the artifact's integer
        type), float inputs are (de)quantized as the artifact needs. Outputs come back as float32 (integer
        outputs as their values), in the artifact's output order."""
        ...

    def run(self, x: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """The output of a single-output model for a batch (`run_outputs` for a model with several)."""
        ...

    def input_signature(self) -> InputSignature:
        """The first input's shape, element type and value range, read from the runtime after loading."""
        ...

    def benchmark(self, x: np.ndarray, labels: np.ndarray | None, protocol: Any) -> dict[str, Any]:
        """Time runs with the harness protocol (`edge_bench.Protocol`); returns the result fields."""
        ...

    def close(self) -> None: ...


class Runtime(Protocol):
    """Loads artifacts of one format."""

    name: str
    target: str  # the export target whose artifacts it runs
    delegates: tuple[str, ...]
    default_delegate: str
    packages: tuple[str, ...]  # Python packages whose versions a result records

    def is_available(self, delegate: str) -> Availability: ...

    def delegation_report(self, model_path: Path) -> DelegationReport | None:
        """Which ops the default delegate takes, or None where only the converter knows (its report is used)."""
        ...

    def load(self, model_path: Path, delegate: str, threads: int | None = None) -> Session: ...


@dataclass
class ProgramSession:
    """A session over one of the on-device script's programs (`edge_bench.py`), shared by LiteRT and ExecuTorch."""

    program: Any
    load_ms: float = 0.0

    @property
    def delegate(self) -> str:
        return self.program.delegate_used

    @property
    def delegate_used(self) -> str:
        """The delegate that holds the graph, read from the runtime after loading (never from the request)."""
        return self.program.delegate_used

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a float batch at the program's batch size; integer I/O is (de)quantized by the program."""
        return run_batch(self.program, x)

    def benchmark(self, x: np.ndarray, labels: np.ndarray | None, protocol: Any) -> dict[str, Any]:
        """Time single-sample runs with the harness protocol (the on-device script's `measure`)."""
        return measure(self.program, x, labels, protocol, self.load_ms)

    def close(self) -> None:
        self.program.close()
