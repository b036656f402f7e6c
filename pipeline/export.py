"""Export orchestration: exporter -> validation in the real runtime -> manifest, written atomically."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import DataError, UnsupportedRouteError
from pipeline.core.files import sha256_file, staged_directory, write_json_atomic
from pipeline.core.manifest import MANIFEST_FILE
from pipeline.core.records import DelegationReport
from pipeline.export_manifest import build_manifest
from pipeline.layer_errors import DEBUG_FILE, DEBUG_SAMPLES, compare_tflite
from pipeline.validation import ValidationResult, validate
from quantize import QuantizationConfig
from quantize.stages import StageConfig


@dataclass(frozen=True)
class ExportResult:
    """Where the artifact went, its manifest, and whether validation passed."""

    out_dir: Path
    manifest: dict[str, Any]

    @property
    def validation_passed(self) -> bool | None:
        return self.manifest["validation"].get("passed")


def _check_stage(stage: StageConfig, framework: str) -> None:
    from quantize.stages import STAGES

    if why := STAGES.get(stage.stage).refusal(stage.stage, framework):
        raise UnsupportedRouteError(why)


def check_route(exporter: Any, framework: str, quantization: QuantizationConfig) -> None:
    """Raise UnsupportedRouteError if `exporter` cannot take `framework`, or no handler expresses `quantization` on that route."""
    from exporters import handler_for
    from quantize import check_keep_float_route

    if framework not in exporter.routes:
        routes = ", ".join(f"{fw} -> {exporter.target}" for fw in exporter.routes)
        raise UnsupportedRouteError(
            f"No route from {framework} to {exporter.target}. Routes to {exporter.target}: {routes}. "
            "See `pipeline routes`."
        )
    handler_for(quantization.mode, framework, exporter.target)
    check_keep_float_route(quantization, framework, exporter.target)


def _signature(session: Any) -> dict[str, Any]:
    """The artifact's inputs and outputs as its runtime reports them (where the runtime can say)."""
    describe = getattr(session, "io_signature", None)
    return describe() if describe is not None else {}


EVAL_FILE = "eval.npz"
EVAL_SAMPLES = 256


def write_eval_samples(path: Path, data: Any) -> dict[str, Any]:
    """Save up to EVAL_SAMPLES real inputs (and labels) beside the artifact for benchmarks on any device."""
    import numpy as np

    subset = data.take(EVAL_SAMPLES)
    arrays = dict(subset.inputs) if subset.y is None else {**subset.inputs, "y": subset.y}
    np.savez_compressed(path, **arrays)
    return {"file": path.name, "samples": len(subset), "dataset": subset.name, "layout": subset.layout,
            "inputs": list(subset.inputs), "sha256": sha256_file(path)}


def flag_fallbacks(delegation: DelegationReport, quantization: QuantizationConfig) -> DelegationReport:
    """Add a warning when a quantized model has ops the delegate did not take."""
    if quantization.mode != "none" and delegation.delegate != "none" and delegation.ops_not_delegated:
        ops = ", ".join(delegation.ops_not_delegated)
        delegation = replace(delegation, warning=(
            f"{quantization.mode} model has ops outside the {delegation.delegate} delegate ({ops}); "
            "they run on slower fallback kernels and can make it slower than float."
        ))
    return delegation


def export_bundle(
    bundle: ModelBundle,
    target: str,
    quantization: QuantizationConfig,
    out_dir: Path,
    *,
    config: Any = None,
    stages: Sequence[StageConfig] = (),
    run_validation: bool = True,
    tolerances: Mapping[str, float] | None = None,
    debug_layers: bool = False,
    annotations: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Export `bundle` to `target` in `out_dir`, validate it in its runtime and write the manifest.

    `stages` (pruning, ...) run first, in order, on the in-memory model; validation then
    compares the artifact with the optimized model, and each stage's effect is recorded.
    Validation judges the outputs by `bundle.task` ('auto' inspects them) within the mode's tolerances,
    `tolerances` overriding any of them by name. `debug_layers` adds the per-layer error ranking against a float
    export of the same model (`layer_debug` in the manifest, and debug.json beside it). `annotations` are added to
    the manifest as they are (how a choice was made, e.g. the layers `--keep-float auto:K` picked).
    Nothing appears at `out_dir` unless every step succeeds; a failed validation still
    writes the artifact, with `validation.passed` false.
    """
    from device_runtime import RUNTIMES
    from exporters import EXPORTERS
    from exporters.coverage import quantization_coverage

    exporter = EXPORTERS.get(target)
    config = config if config is not None else exporter.config_cls()
    check_route(exporter, bundle.framework, quantization)
    if run_validation and bundle.eval_data is None:
        raise DataError(
            f"{bundle.source.path} has no evaluation data, so the artifact cannot be validated: pass "
            "--eval-data FILE.npz (one array per input name, 'x' for a single input, optional labels 'y'), "
            "or --no-validate to skip validation (the manifest then says so)."
        )
    from quantize.stages import apply_stages

    for stage in stages:  # fail on an impossible combination before any slow work
        _check_stage(stage, bundle.framework)
    stage_started = time.perf_counter()
    bundle, applied = apply_stages(bundle, list(stages))
    stage_seconds = time.perf_counter() - stage_started
    bundle = bundle.with_outputs()
    with staged_directory(out_dir, marker=MANIFEST_FILE) as staging:
        started = time.perf_counter()
        output = exporter.export(bundle, staging, quantization, config)
        export_seconds = time.perf_counter() - started
        runtime = RUNTIMES.get(exporter.runtime)
        delegation = output.delegation or runtime.delegation_report(staging / output.model_file)
        session = runtime.load(staging / output.model_file, delegate=output.validation_delegate)
        validation: ValidationResult | None = None
        try:
            if run_validation:
                validation = validate(bundle, session, quantization.mode, exporter.runtime, overrides=tolerances)
            signature = _signature(session)
        finally:
            session.close()
        manifest = build_manifest(
            target=target, bundle=bundle, output=output, out_dir=staging,
            validation=validation, export_seconds=export_seconds, signature=signature,
            delegation=flag_fallbacks(delegation, quantization).to_json() if delegation else {}, config=config,
            coverage=quantization_coverage(target, staging / output.model_file, quantization.mode,
                                          getattr(quantization, "keep_float", ())),
        )
        if applied:
            manifest["stages"] = [{"name": a.config["stage"], "config": a.config, "effect": a.effect,
                                   "tool": a.effect.get("tool", "")} for a in applied] + manifest["stages"]
            manifest["stage_seconds"] = round(stage_seconds, 3)
        if bundle.eval_data is not None:
            manifest["eval_data"] = write_eval_samples(staging / EVAL_FILE, bundle.eval_data)
        if debug_layers:
            manifest["layer_debug"] = rank_layers(bundle, target, staging / output.model_file, quantization)
            if not manifest["layer_debug"].get("skipped"):
                write_json_atomic(staging / DEBUG_FILE, manifest["layer_debug"])
        manifest.update(annotations or {})
        write_json_atomic(staging / MANIFEST_FILE, manifest)
    return ExportResult(out_dir=out_dir, manifest=manifest)


LAYER_RANKING_TARGETS = ("tflite", "executorch")
NO_LAYER_RANKING = {
    "executorch": "its ranking rebuilds the PT2E program of a PyTorch int8 or dynamic-int8 export and reads every op's "
                  "output from a portable-kernel run's ETDump (with XNNPACK every layer runs inside one delegate "
                  "call, whose ETDump keeps only the call's inputs and outputs)",
}
NO_LAYER_RANKING.update({
    "tfjs": "a graph model can return inner nodes (execute with their names), but matching them to the source and "
            "dequantizing its 8-bit weights per node is not built; rank the same model's .tflite instead",
    "onnx": "ONNX Runtime hands out an inner tensor once it is made a graph output, but matching QDQ tensors to the "
            "float graph is not built; rank the same model's .tflite instead",
})
LAYER_RANKING_MODES = {"executorch": ("int8", "dynamic-int8")}  # targets that rank only some modes
LAYER_RANKING_FRAMEWORKS = {"executorch": ("torch",)}  # ... or only some source frameworks


def ranking_refusal(target: str, mode: str, framework: str = "") -> str:
    """Why an artifact of `target` quantized in `mode` (from a `framework` model, where given) gets no per-layer
    ranking ('' when it can)."""
    if mode == "none":
        return "a float artifact has no quantization error to rank"
    if target not in LAYER_RANKING_TARGETS:
        why = NO_LAYER_RANKING.get(target, "its runtime does not hand out intermediate tensors here")
        return f"per-layer ranking covers {', '.join(LAYER_RANKING_TARGETS)} artifacts only; {target}: {why}"
    modes, frameworks = LAYER_RANKING_MODES.get(target), LAYER_RANKING_FRAMEWORKS.get(target)
    if modes is not None and mode not in modes:
        return f"per-layer ranking of {target} artifacts covers {', '.join(modes)}, not {mode}: {NO_LAYER_RANKING[target]}"
    if framework and frameworks is not None and framework not in frameworks:
        return (f"per-layer ranking of {target} artifacts follows {', '.join(frameworks)} modules, and a {framework} "
                f"model reaches {target} through a bridge whose program has none of its layer names")
    return ""


def rank_layers(bundle: ModelBundle, target: str, model_file: Path, quantization: QuantizationConfig,
                feed: Mapping[str, Any] | None = None, samples: int = DEBUG_SAMPLES) -> dict[str, Any]:
    """Per-layer error of the quantized `model_file` against a float reference, on `feed` (default: the bundle's
    evaluation inputs): an fp32 .tflite export of `bundle` for .tflite; for .pte, the export's PT2E program rebuilt
    from `bundle` and `quantization` and run on portable kernels against `bundle`'s float program (see
    pipeline.layer_errors_executorch). {'skipped': True, 'reason': ...} where it cannot be ranked."""
    import tempfile

    from quantize import quantization_config

    why = ranking_refusal(target, quantization.mode, bundle.framework) or (
        "the model has no evaluation data to run" if feed is None and bundle.eval_data is None else "")
    if why:
        return {"skipped": True, "reason": why}
    feed = feed if feed is not None else bundle.eval_data.take(samples).inputs
    if target == "executorch":
        return _rank_executorch(bundle, quantization, feed, samples)
    with tempfile.TemporaryDirectory(prefix="float-reference-") as tmp:
        reference = export_bundle(bundle, "tflite", quantization_config("none"), Path(tmp) / "reference",
                                  run_validation=False)
        result = compare_tflite(model_file, reference.out_dir / reference.manifest["model_file"], feed, samples)
    return {**result, "reference": {"target": "tflite", "quantize": "none", "route": reference.manifest["route"],
                                    "source": bundle.source.path}}


def _rank_executorch(bundle: ModelBundle, quantization: QuantizationConfig, feed: Mapping[str, Any],
                     samples: int) -> dict[str, Any]:
    """compare_executorch on `feed`; calibrated on the evaluation samples where the bundle has no calibration data
    (a note says so: the export's own calibration samples are then not known)."""
    from pipeline.core.datasets.base import Dataset
    from pipeline.layer_errors_executorch import compare_executorch

    notes = []
    if getattr(quantization, "needs_calibration", False) and bundle.calibration_data is None:
        layout = bundle.inputs[0].layout if bundle.inputs else "NCHW"
        bundle = bundle.with_data(calibration_data=Dataset("evaluation samples", dict(feed), None, layout))
        notes.append("the source has no calibration data, so the program was rebuilt calibrated on the evaluation "
                     "samples; its ranges can differ from the export's")
    result = compare_executorch(bundle, quantization, feed, samples)
    return {**result, **({"notes": notes} if notes else {}),
            "reference": {"target": "torch", "quantize": "none", "route": "torch.export (float program, PyTorch)",
                          "source": bundle.source.path}}
