"""`pipeline.export(...)`: an in-memory model or a model reference to a validated artifact."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.api.artifact import Artifact
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ConfigError, DataError, OutputMismatchError
from pipeline.core.tensors import describe_inputs

ARTIFACTS_DIR = "artifacts"


def _configs(exporter: Any, quantize: Any, options: dict[str, Any]) -> tuple[Any, Any]:
    """The quantization config and the target's config, each taking the options that are its fields."""
    from quantize import QuantizationConfig, quantization_config
    from quantize.techniques import QUANTIZATION_MODES

    quant_cls = type(quantize) if isinstance(quantize, QuantizationConfig) else QUANTIZATION_MODES.get(quantize)
    quant_fields = {f.name for f in dataclasses.fields(quant_cls)} if not isinstance(quantize, QuantizationConfig) else set()
    target_fields = {f.name for f in dataclasses.fields(exporter.config_cls)}
    unknown = sorted(set(options) - quant_fields - target_fields)
    if unknown:
        valid = sorted(quant_fields | target_fields)
        raise ConfigError(
            f"Unknown option(s) {', '.join(unknown)} for target {exporter.target} with quantize="
            f"'{quant_cls.mode}'. Valid options: {', '.join(valid) or '(none)'}."
        )
    quantization = quantize if isinstance(quantize, QuantizationConfig) else quantization_config(
        quantize, **{k: v for k, v in options.items() if k in quant_fields})
    try:
        config = exporter.config_cls(**{k: v for k, v in options.items() if k in target_fields})
    except TypeError as exc:
        raise ConfigError(f"Invalid options for target {exporter.target}: {exc}.") from None
    return quantization, config


def _stages(prune: Any) -> list[Any]:
    """`prune` as stage configs: None, a spelling ('0.5', 'channels:0.3'), a sparsity number, or a StageConfig."""
    from quantize.pruning import parse_prune
    from quantize.stages import StageConfig

    if prune is None:
        return []
    if isinstance(prune, StageConfig):
        return [prune]
    if isinstance(prune, (str, int, float)) and not isinstance(prune, bool):
        return [parse_prune(str(prune))]
    raise ConfigError(f"prune={prune!r} is not understood; pass 0.5 (magnitude sparsity), 'channels:0.3' "
                      "(structured), or a pruning config (quantize.MagnitudePruningConfig, ChannelPruningConfig).")


def _bundle(model: Any, *, example_inputs: Any, input_shape: tuple[int, ...] | None, layout: str | None,
            weights: str | Path | None, name: str | None) -> ModelBundle:
    """A model reference (path or 'module:factory') through intake, anything else as an in-memory model."""
    from pipeline.intake import load_model
    from pipeline.intake.memory import bundle_from_object

    if isinstance(model, (str, Path)):
        bundle = load_model(str(model), weights=Path(weights) if weights else None,
                            input_shape=tuple(input_shape) if input_shape else None)
        if layout is not None:
            bundle = replace(bundle, inputs=tuple(replace(spec, layout=layout) if len(spec.shape) == 4 else spec
                                                  for spec in bundle.inputs))
        return bundle
    if weights is not None:
        raise ConfigError("weights= applies to a 'package.module:factory' reference; an in-memory model already "
                          "holds its weights.")
    return bundle_from_object(model, example_inputs=example_inputs,
                              input_shape=tuple(input_shape) if input_shape else None, layout=layout, name=name)


def _check_data(bundle: ModelBundle, quantization: Any, stages: list[Any], validate: bool) -> None:
    """DataError, in the API's terms, for data a step will need and the model does not have."""
    shape = describe_inputs(bundle.inputs)
    if validate and bundle.eval_data is None:
        raise DataError(f"{bundle.source.path} has no evaluation data, so the artifact cannot be validated: pass "
                        f"eval_data=(x, y) (inputs {shape}, images in the model's layout, integer labels), "
                        "or validate=False to skip validation (the manifest then says so).")
    if quantization.needs_calibration and bundle.calibration_data is None:
        raise DataError(f"{quantization.mode} quantization needs calibration data: pass calibration=x (a few hundred "
                        f"real inputs: {shape}), or choose quantize='dynamic-int8', which needs none.")
    trains = [f"quantize='{quantization.mode}'"] if getattr(quantization, "fine_tune_epochs", 0) else []
    trains += [f"prune stage '{s.stage}'" for s in stages if getattr(s, "fine_tune_epochs", 0)]
    if trains and bundle.train_data is None:
        raise DataError(f"{' and '.join(trains)} fine-tune(s) the model and need training data: pass "
                        f"train_data=(x, y) (inputs {shape}; integer labels for a classifier, or no labels to "
                        "fine-tune towards the model's own outputs), or prune one-shot with fine_tune_epochs=0.")


def _auto_keep_float(options: dict[str, Any]) -> int | None:
    """K of keep_float='auto:K' (taken out of `options`, resolved once the model is loaded), else None; a name
    list stays in `options` as the config's keep_float."""
    value = options.get("keep_float")
    if isinstance(value, str):
        from pipeline.selective import parse_keep_float

        names, auto = parse_keep_float(value)
        if auto:
            del options["keep_float"]
            return auto
        options["keep_float"] = names
    elif isinstance(value, list):
        options["keep_float"] = tuple(value)
    return None


def _name_of(model: Any, name: str | None) -> str:
    """The artifact directory's stem: `name`, a reference's file stem or factory, or the in-memory model's name."""
    from pipeline.intake.memory import model_name

    if not name and isinstance(model, (str, Path)):
        text = str(model)
        name = text.rpartition(":")[2] if ":" in text and not Path(text).exists() else Path(text).stem
    name = name or model_name(model)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.").lower() or "model"


def fresh_dir(parent: Path, stem: str) -> Path:
    """`parent/stem`, or `parent/stem-2`, `-3`, ... when it is taken."""
    candidate, number = parent / stem, 1
    while candidate.exists():
        number += 1
        candidate = parent / f"{stem}-{number}"
    return candidate


def export(
    model: Any,
    target: str,
    quantize: Any = "none",
    *,
    prune: Any = None,
    eval_data: Any = None,
    calibration: Any = None,
    train_data: Any = None,
    example_inputs: Any = None,
    input_shape: tuple[int, ...] | None = None,
    layout: str | None = None,
    weights: str | Path | None = None,
    validate: bool = True,
    task: str | None = None,
    tolerance: dict[str, float] | None = None,
    name: str | None = None,
    out: str | Path | None = None,
    workspace: str | Path = "workspace",
    **options: Any,
) -> Artifact:
    """Export `model` to `target` ('tflite', 'tfjs', 'executorch'), validate it in its runtime, return the Artifact.

    `model`: a `keras.Model`, a `torch.nn.Module` (with `example_inputs`, or `input_shape`), a
    `torch.export.ExportedProgram`, or a reference as the CLI takes it (a `.keras`/`.pt2` path, a SavedModel
    directory, or 'package.module:factory' with `weights` and `input_shape`). `quantize`: a mode name
    (see `routes()`) or a quantization config; `prune`: 0.5, 'channels:0.3' or a pruning config.
    Data (`eval_data` for validation, `calibration` for int8, `train_data` for QAT and pruning fine-tunes):
    an array of inputs, a tuple (x, y), a dict {input name: array, ..., 'y': labels} ('x' for a single input),
    or an .npz path, images in the model's layout (`layout`; default NCHW for 4-D PyTorch inputs, NHWC for
    Keras). A model trained with `pipeline train` brings its own data. A model with several inputs takes
    `example_inputs` as a tuple (positional) or dict (named) of batches. `task` ('classification',
    'embedding', 'regression'; default: the card's, else 'auto') decides how validation judges the outputs;
    `tolerance` overrides any of the mode's validation tolerances by name (e.g. {'min_cosine_mean': 0.98}). `options`: fields of the mode's config (e.g. calibration_samples, per_channel,
    keep_float=('conv2d_1',) or keep_float='auto:2': layers left in float, see `pipeline debug`) or the target's
    (delegate for executorch, shard_size_bytes for tfjs). `name` labels an in-memory model in the manifest
    and the results (default: a Keras model's name, else its class name). `out` defaults to a fresh
    directory `WORKSPACE/artifacts/NAME-TARGET-MODE` (`-2`, `-3`, ... when taken).

    Raises a PipelineError subclass for anything the caller can fix: UnknownNameError (target, mode),
    ConfigError (an unknown option, a missing input shape), IntakeError (a model it cannot take), DataError,
    UnsupportedRouteError, ExportError; OutputMismatchError when validation fails (the artifact is still
    written, for inspection, and is the error's `artifact`).
    """
    from exporters import EXPORTERS
    from pipeline.export import check_route, export_bundle
    from pipeline.intake.data import with_user_data
    from pipeline.validation import check_task, parse_tolerances

    exporter = EXPORTERS.get(target)  # a bad name fails before any model is loaded
    auto = _auto_keep_float(options)
    quantization, config = _configs(exporter, quantize, options)
    if auto and not hasattr(quantization, "keep_float"):
        raise ConfigError(f"keep_float applies to int8, dynamic-int8, weight-int8 and qat-int8; quantize="
                          f"'{quantization.mode}' has no layers to keep in float.")
    stages = _stages(prune)
    bundle = _bundle(model, example_inputs=example_inputs, input_shape=input_shape, layout=layout, weights=weights,
                     name=name)
    check_route(exporter, bundle.framework, quantization)
    overrides = parse_tolerances([f"{k}={v}" for k, v in (tolerance or {}).items()])
    if task is not None:
        bundle = replace(bundle, task=check_task(task))
    bundle = with_user_data(bundle, eval_data=eval_data, calibration=calibration, train_data=train_data)
    _check_data(bundle, quantization, stages, validate)
    out_dir = Path(out) if out is not None else fresh_dir(
        Path(workspace) / ARTIFACTS_DIR, f"{_name_of(model, name)}-{target}-{quantization.mode}")
    annotations = {}
    if auto:
        from pipeline.selective import resolve_auto

        names, annotations["selective_quantization"] = resolve_auto(bundle, target, quantization, auto, stages,
                                                                    scratch=Path(workspace))
        quantization = replace(quantization, keep_float=names)
    result = export_bundle(bundle, target, quantization, out_dir, config=config, stages=stages, run_validation=validate,
                           tolerances=overrides, annotations=annotations)
    artifact = Artifact(result.out_dir, result.manifest)
    if result.validation_passed is False:
        error = OutputMismatchError(
            f"The {target} artifact disagrees with its source model beyond the {quantization.mode} tolerance: "
            f"{'; '.join(result.manifest['validation'].get('failures', []))}. It was written to {out_dir} "
            "(validation.passed = false) for inspection."
        )
        error.artifact = artifact  # type: ignore[attr-defined]
        raise error
    return artifact
