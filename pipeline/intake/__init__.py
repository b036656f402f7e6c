"""Model intake: one code path from a file (or factory) to a ModelBundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
from pipeline.core.datasets import Dataset, load_dataset
from pipeline.core.errors import IntakeError
from pipeline.core.files import sha256_path
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


def _open(reference: str, weights: Path | None, input_shape: tuple[int, ...] | None) -> tuple[str, str, Any, TensorSpec]:
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
        return ("torch", "factory", *load_factory(reference, weights, input_shape))
    if path.suffix in (".pt", ".pth", ".pkl", ".bin"):
        raise _unsupported(reference, f"'{path.suffix}' files are pickled checkpoints, which are never unpickled")
    if not path.exists():
        raise _unsupported(reference, "no such file or directory")
    raise _unsupported(reference, f"unrecognised format '{path.suffix or path.name}'")


def _apply_input_shape(spec: TensorSpec, input_shape: tuple[int, ...] | None, reference: str) -> TensorSpec:
    """Fill unknown (None) non-batch dims from --input-shape; refuse a contradicting shape."""
    if input_shape is None:
        if any(d is None for d in spec.shape[1:]):
            raise IntakeError(
                f"Model '{reference}' has unknown input dimensions {list(spec.shape)}; pass --input-shape, e.g. 1,64,64,3."
            )
        return spec
    if len(input_shape) != len(spec.shape) or any(
        known is not None and known != given for known, given in zip(spec.shape[1:], input_shape[1:], strict=True)
    ):
        raise IntakeError(
            f"--input-shape {','.join(map(str, input_shape))} does not match the model's input "
            f"{list(spec.shape)} ({spec.layout}); give the shape the model was built for, batch first."
        )
    return TensorSpec(spec.name, (spec.shape[0], *input_shape[1:]), spec.dtype, spec.layout)


def _card_data(card: ModelCard, layout: str) -> tuple[Dataset, Dataset, Dataset]:
    """The card dataset's (eval, calibration, train) splits in `layout`."""
    splits = load_dataset(card.dataset, seed=card.seed)
    return splits.test.in_layout(layout), splits.calibration.in_layout(layout), splits.train.in_layout(layout)


def load_model(
    reference: str,
    *,
    weights: Path | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> ModelBundle:
    """Open a model reference into a ModelBundle; data comes from its card when it has one.

    Raises IntakeError for missing, corrupt or unsupported models and
    ConfigError for a bad factory reference or input shape.
    """
    framework, fmt, model, spec = _open(reference, weights, input_shape)
    spec = _apply_input_shape(spec, input_shape, reference)
    path = Path(reference)
    digest = sha256_path(path) if path.exists() else sha256_path(weights) if weights else ""
    source = SourceInfo(framework=framework, format=fmt, path=str(path), sha256=digest)
    card = read_card(path) if path.exists() else None
    if card is None:
        return ModelBundle(framework=framework, model=model, input_spec=spec, source=source)
    spec = TensorSpec(spec.name, spec.shape, spec.dtype, card.input_layout)
    eval_data, calibration, train = _card_data(card, card.input_layout)
    bundle = ModelBundle(framework=framework, model=model, input_spec=spec, source=source,
                         task=card.task, labels=card.labels, train_data=train)
    return bundle.with_data(eval_data=eval_data, calibration_data=calibration)
