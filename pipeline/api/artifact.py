"""An exported artifact as the Python API returns it: its manifest, and a way to run it in its runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.manifest import read_manifest


@dataclass(frozen=True)
class Artifact:
    """An artifact directory written by an export (model file(s), `eval.npz`, `manifest.json`)."""

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> Artifact:
        """The artifact at `path`; ArtifactError if it has no readable manifest."""
        path = Path(path)
        return cls(path, read_manifest(path))

    @property
    def target(self) -> str:
        return str(self.manifest["target"])

    @property
    def model_file(self) -> Path:
        """The file the runtime loads (`.tflite`, `.pte`, or TF.js `model.json`)."""
        return self.path / self.manifest["model_file"]

    @property
    def validation(self) -> dict[str, Any]:
        """The manifest's `validation`: samples, max/mean abs error, top-1 agreement, accuracies, `passed`."""
        return dict(self.manifest.get("validation") or {})

    @property
    def delegation(self) -> dict[str, Any]:
        """The manifest's `delegation`: ops the delegate takes and those left on fallback kernels."""
        return dict(self.manifest.get("delegation") or {})

    @property
    def size_bytes(self) -> int:
        """Bytes of every artifact file together (`size_bytes_gzip` in the manifest for the compressed size)."""
        return int(self.manifest["size_bytes"])

    def run(self, inputs: Any, *, runtime: str | None = None, delegate: str | None = None) -> Any:
        """Outputs of the artifact in its runtime (default: the one `bench` uses, with its default delegate).

        `inputs` is a float batch in the model's layout (the manifest's `input_signature`); one sample without
        the batch dimension gets one output row back. The session is closed before returning. Raises DataError
        for inputs of the wrong shape, ConfigError for a runtime that cannot run this target.
        """
        import numpy as np

        from device_runtime import RUNTIMES, default_runtime, runtimes_for
        from pipeline.core.bundle import TensorSpec

        runtime = runtime or default_runtime(self.target)
        if runtime not in runtimes_for(self.target):
            raise ConfigError(f"Runtime {runtime} cannot run a {self.target} artifact; use "
                              f"{', '.join(runtimes_for(self.target))}.")
        impl = RUNTIMES.get(runtime)
        signature = (self.manifest.get("input_signature") or [{}])[0]
        spec = TensorSpec(signature.get("name", "input"), tuple(signature.get("shape", ())),
                          signature.get("dtype", "float32"), signature.get("layout", "NHWC"))
        x = np.asarray(inputs)
        single = x.ndim == len(spec.shape) - 1
        batch = (x[None] if single else x).astype(np.float32, copy=False) if np.issubdtype(x.dtype, np.floating) else x
        spec.check_batch(batch, "inputs")
        session = impl.load(self.model_file, delegate or impl.default_delegate)
        try:
            outputs = np.asarray(session.run(batch))
        finally:
            session.close()
        return outputs[0] if single else outputs

    def __repr__(self) -> str:
        passed = self.validation.get("passed")
        verdict = "not validated" if passed is None else "validation passed" if passed else "validation FAILED"
        return f"Artifact({str(self.path)!r}, target={self.target!r}, size_bytes={self.size_bytes}, {verdict})"
