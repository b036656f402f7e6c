"""What both QAT backends share: the training split (or a DataError naming the fix)."""

from __future__ import annotations

from pipeline.core.bundle import ModelBundle
from pipeline.core.datasets import Dataset
from quantize.config import QatInt8Config
from quantize.finetune import TRAIN_DATA_FORM, required_training_data


def qat_training_data(bundle: ModelBundle, config: QatInt8Config) -> Dataset:
    """The bundle's training split; DataError saying what to do when there is none."""
    return required_training_data(
        bundle,
        needs=f"Quantization '{config.mode}' fine-tunes the model for {config.fine_tune_epochs} epoch(s) with fake "
              "quantization and needs training data",
        fix=f"Pass {TRAIN_DATA_FORM}, use a model trained with `pipeline train` (its card names the dataset, whose "
            "train split is used), or choose --quantize int8 (post-training static quantization, which needs only "
            "calibration samples).")
