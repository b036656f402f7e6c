"""The runtime interface every backend implements: availability, load, run, close."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from device_runtime.device_scripts.edge_bench import FeedMismatch, measure, run_batch
from device_runtime.inputs import InputSignature, signature_of
from pipeline.core.errors import DataError
from pipeline.core.records import DelegationReport
from pipeline.core.tensors import single_output


@dataclass(frozen=True)
class Availability:
    """Whether a runtime/delegate can run here, and if not, why; `device` names what it runs on where the runtime
    reports it (a GPU delegate's adapter)."""

    ok: bool
    reason: str = ""
    device: str = ""


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
        outputs as their values), in the artifact's output order (TFLite and TF.js: by signature name, output_0,
        output_1, ...; ExecuTorch: the program's)."""
        ...

    def run(self, x: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """The output of a single-output model for a batch (`run_outputs` for a model with several)."""
        ...

    def input_signatures(self) -> tuple[InputSignature, ...]:
        """Every input's name, shape, element type and value range, read from the runtime after loading."""
        ...

    def benchmark(self, feed: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None,
                  protocol: Any) -> dict[str, Any]:
        """Time single-sample runs of `feed` with the harness protocol (`edge_bench.Protocol`); returns the result
        fields (accuracy only with labels and a single output)."""
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

    def run_outputs(self, feed: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Every output for a feed of any number of samples (see `Session.run_outputs`); DataError when the feed
        does not fit the artifact's inputs."""
        try:
            return run_batch(self.program, feed)
        except FeedMismatch as exc:
            raise DataError(f"{exc}; the artifact's inputs are {self.describe_inputs()}.") from None

    def run(self, x: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """The output of a single-output model; DataError naming the outputs of a model with several."""
        return single_output(self.run_outputs(x), [t.name or f"output {i}" for i, t in enumerate(self.program.outputs)])

    def benchmark(self, feed: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None,
                  protocol: Any) -> dict[str, Any]:
        """Time single-sample runs with the harness protocol (the on-device script's `measure`)."""
        try:
            return measure(self.program, feed, labels, protocol, self.load_ms)
        except FeedMismatch as exc:
            raise DataError(f"{exc}; the artifact's inputs are {self.describe_inputs()}.") from None

    def input_signatures(self) -> tuple[InputSignature, ...]:
        """Every input as the loaded program reports it (name, shape, element type, value range)."""
        return tuple(signature_of(tensor) for tensor in self.program.inputs)

    def io_signature(self) -> dict[str, list[dict[str, Any]]]:
        """The artifact's inputs and outputs as its runtime reports them: name (None where the artifact keeps
        none), shape, dtype, and scale/zero_point where quantized. The export records it as `artifact_signature`."""
        return {"inputs": [t.to_json() for t in self.program.inputs],
                "outputs": [t.to_json() for t in self.program.outputs]}

    def describe_inputs(self) -> str:
        return "; ".join(f"{t.name or f'#{i}'}: {list(t.shape)} {t.dtype}" for i, t in enumerate(self.program.inputs))

    def close(self) -> None:
        self.program.close()
