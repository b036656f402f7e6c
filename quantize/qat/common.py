"""What both QAT backends share: the training split (or a DataError naming the fix) and the effect record."""

from __future__ import annotations

from typing import Any

from pipeline.core.bundle import ModelBundle
from pipeline.core.datasets import Dataset
from pipeline.core.errors import DataError
from quantize.config import QatInt8Config


def qat_training_data(bundle: ModelBundle, config: QatInt8Config) -> Dataset:
    """The bundle's labelled training split; DataError saying what to do when there is none."""
    data = bundle.train_data
    if data is None or data.y is None or len(data) == 0:
        what = "no training data" if data is None else f"training data '{data.name}' without labels"
        raise DataError(
            f"Quantization '{config.mode}' fine-tunes the model for {config.fine_tune_epochs} epoch(s) with "
            f"fake quantization and needs labelled training data, but {bundle.source.path or 'the model'} has "
            f"{what}. Use a model trained with `pipeline train` (its card names the dataset, whose train split "
            "is used), or choose --quantize int8 (post-training static quantization, which needs only "
            "calibration samples)."
        )
    bundle.input_spec.check_batch(data.x, "training data")
    return data


def qat_effect(tool: str, config: QatInt8Config, data: Dataset, before: float | None, after: float | None,
               seconds: float) -> dict[str, Any]:
    """The manifest's record of a QAT run: accuracy before/after the fine-tune and its cost."""
    return {
        "tool": tool,
        "train_samples": len(data),
        "accuracy_before": before,
        "accuracy_after": after,
        "fine_tune_epochs": config.fine_tune_epochs,
        "fine_tune_seconds": round(seconds, 3),
    }
