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

    @property
    def inputs(self) -> tuple[Any, ...]:
        """The model's inputs (`TensorSpec`: name, shape, dtype, layout), from the manifest."""
        from pipeline.core.tensors import TensorSpec

        return tuple(TensorSpec.from_json(spec) for spec in self.manifest.get("input_signature") or [])

    def run(self, inputs: Any, *, runtime: str | None = None, delegate: str | None = None) -> Any:
        """Outputs of the artifact in its runtime (default: the one `bench` uses, with its default delegate).

        `inputs`: a batch for a single-input model, or a dict of input name -> batch (the manifest's
        `input_signature`; images in the model's layout); samples without the batch dimension get outputs
        without it. Returns the output array of a single-output model, else a dict of output name -> array.
        The session is closed before returning. Raises DataError for inputs of the wrong name, shape or
        dtype, ConfigError for a runtime that cannot run this target.
        """
        import numpy as np

        from device_runtime import RUNTIMES, default_runtime, runtimes_for
        from pipeline.core.tensors import bind_feed

        runtime = runtime or default_runtime(self.target)
        if runtime not in runtimes_for(self.target):
            raise ConfigError(f"Runtime {runtime} cannot run a {self.target} artifact; use "
                              f"{', '.join(runtimes_for(self.target))}.")
        impl = RUNTIMES.get(runtime)
        specs = self.inputs
        arrays = inputs if isinstance(inputs, dict) else {specs[0].name if len(specs) == 1 else "x": inputs}
        arrays = {name: np.asarray(value) for name, value in arrays.items()}
        single = len(specs) > 0 and all(
            spec.name in arrays and arrays[spec.name].ndim == len(spec.shape) - 1 for spec in specs)
        if single:
            arrays = {name: value[None] for name, value in arrays.items()}
        feed = bind_feed(specs, arrays, "inputs")
        session = impl.load(self.model_file, delegate or impl.default_delegate)
        try:
            outputs = [np.asarray(out) for out in session.run_outputs(feed)]
        finally:
            session.close()
        outputs = [out[0] for out in outputs] if single else outputs
        if len(outputs) == 1:
            return outputs[0]
        names = [spec.get("name", f"output_{i}") for i, spec in enumerate(self.manifest.get("output_signature") or [])]
        return {names[i] if i < len(names) else f"output_{i}": out for i, out in enumerate(outputs)}

    def __repr__(self) -> str:
        passed = self.validation.get("passed")
        verdict = "not validated" if passed is None else "validation passed" if passed else "validation FAILED"
        return f"Artifact({str(self.path)!r}, target={self.target!r}, size_bytes={self.size_bytes}, {verdict})"
