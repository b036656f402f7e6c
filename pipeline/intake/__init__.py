"""Model intake: one code path from a file (or factory) to a ModelBundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.bundle import ModelBundle, SourceInfo
from pipeline.core.datasets import Dataset, load_dataset
from pipeline.core.errors import ConfigError, IntakeError
from pipeline.core.files import sha256_path
from pipeline.core.tensors import TensorSpec, describe_inputs
from pipeline.intake.card import ModelCard, read_card
from pipeline.intake.keras_intake import load_keras_file, load_saved_model
from pipeline.intake.torch_intake import load_factory, load_pt2

SUPPORTED_FORMATS = (
    "a Keras `.keras` file",
    "a TensorFlow SavedModel directory",
    "a PyTorch `.pt2` file from torch.export.save",
    "a `package.module:factory` reference (optionally with --weights STATE_DICT)",
)


def _unsupported(reference: str, why: str) -> IntakeError:
    listed = "; ".join(SUPPORTED_FORMATS)
    return IntakeError(f"Cannot take model '{reference}': {why}. Supported: {listed}.")


def _open(reference: str, weights: Path | None,
          input_specs: tuple[TensorSpec, ...] | None) -> tuple[str, str, Any, tuple[TensorSpec, ...]]:
    path = Path(reference)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise _unsupported(reference, "the directory holds no saved_model.pb")
        return ("tensorflow", "saved_model", *load_saved_model(path))
    if path.suffix == ".keras":
        if not path.is_file():
            raise IntakeError(f"Model file {path} does not exist. Train one with `pipeline train digits-cnn --framework keras`.")
        return ("keras", "keras", *load_keras_file(path))
    if path.suffix == ".pt2":
        if not path.is_file():
            raise IntakeError(f"Model file {path} does not exist. Train one with `pipeline train digits-cnn --framework torch`.")
        return ("torch", "pt2", *load_pt2(path))
    if ":" in reference and not path.exists():
        return ("torch", "factory", *load_factory(reference, weights, input_specs))
    if path.suffix in (".pt", ".pth", ".pkl", ".bin"):
        raise _unsupported(reference, f"'{path.suffix}' files are pickled checkpoints, which are never unpickled")
    if not path.exists():
        raise _unsupported(reference, "no such file or directory")
    raise _unsupported(reference, f"unrecognised format '{path.suffix or path.name}'")


def shape_as_specs(input_shape: tuple[int, ...], layout: str = "NCHW") -> tuple[TensorSpec, ...]:
    """`--input-shape` (one float input) as an input spec list."""
    return (TensorSpec("input", tuple(input_shape), "float32", layout if len(input_shape) == 4 else "NC"),)


def apply_input_specs(specs: tuple[TensorSpec, ...], given: tuple[TensorSpec, ...] | None,
                      reference: str) -> tuple[TensorSpec, ...]:
    """Fill unknown (None) non-batch dims from `--input-shape`/`--input-spec`; refuse a contradicting one.

    Given specs match the model's inputs by name, or by position when there is one input (or names differ
    only because `--input-shape` names none).
    """
    if given is None:
        open_dims = [spec for spec in specs if any(d is None for d in spec.shape[1:])]
        if open_dims:
            raise IntakeError(
                f"Model '{reference}' has inputs with dynamic dimensions ({describe_inputs(open_dims)}); fix them with "
                f"--input-spec, e.g. --input-spec {','.join(_example_spec(spec) for spec in specs)} "
                "(or --input-shape 1,64,64,3 for one image input)."
            )
        return specs
    by_name = {spec.name: spec for spec in given}
    if len(given) != len(specs) or (len(specs) > 1 and set(by_name) != {spec.name for spec in specs}):
        raise IntakeError(f"The input description ({describe_inputs(given)}) does not match the model's inputs "
                          f"({describe_inputs(specs)}); give one name:shape:dtype per input.")
    filled = []
    for spec, other in zip(specs, [by_name[s.name] for s in specs] if len(specs) > 1 else given, strict=True):
        if len(other.shape) != len(spec.shape) or any(
                known is not None and known != want for known, want in zip(spec.shape[1:], other.shape[1:], strict=True)):
            raise IntakeError(
                f"The given shape {list(other.shape)} does not match the model's input {spec.describe()} ({spec.layout}); "
                "give the shape the model was built for, batch first."
            )
        filled.append(TensorSpec(spec.name, (spec.shape[0], *other.shape[1:]), spec.dtype, spec.layout))
    return tuple(filled)


def _example_spec(spec: TensorSpec) -> str:
    dims = "x".join("1" if i == 0 and d is None else "128" if d is None else str(d) for i, d in enumerate(spec.shape))
    return f"{spec.name}:{dims}:{spec.dtype}"


def _card_data(card: ModelCard, layout: str) -> tuple[Dataset, Dataset, Dataset]:
    """The card dataset's (eval, calibration, train) splits in `layout`."""
    splits = load_dataset(card.dataset, seed=card.seed)
    return splits.test.in_layout(layout), splits.calibration.in_layout(layout), splits.train.in_layout(layout)


def load_model(
    reference: str,
    *,
    weights: Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    input_specs: tuple[TensorSpec, ...] | None = None,
) -> ModelBundle:
    """Open a model reference into a ModelBundle; data comes from its card when it has one.

    `input_shape` describes one float input; `input_specs` (from `--input-spec`) any number of them.
    Raises IntakeError for missing, corrupt or unsupported models and
    ConfigError for a bad factory reference or input description.
    """
    if input_shape is not None and input_specs is not None:
        raise ConfigError("Give --input-shape (one float input) or --input-spec (any inputs), not both.")
    given = input_specs or (shape_as_specs(input_shape) if input_shape is not None else None)
    framework, fmt, model, specs = _open(reference, weights, given)
    specs = apply_input_specs(specs, given, reference)
    path = Path(reference)
    digest = sha256_path(path) if path.exists() else sha256_path(weights) if weights else ""
    source = SourceInfo(framework=framework, format=fmt, path=str(path), sha256=digest)
    card = read_card(path) if path.exists() else None
    if card is None:
        return ModelBundle(framework=framework, model=model, inputs=specs, source=source)
    specs = tuple(TensorSpec(s.name, s.shape, s.dtype, card.input_layout if len(s.shape) == 4 else s.layout)
                  for s in specs)
    eval_data, calibration, train = _card_data(card, card.input_layout)
    bundle = ModelBundle(framework=framework, model=model, inputs=specs, source=source, task=card.task,
                         labels=card.labels)
    return bundle.with_data(eval_data=eval_data, calibration_data=calibration, train_data=train)
