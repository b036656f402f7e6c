"""Pruning stages: unstructured magnitude pruning (Keras and PyTorch) and structured channel pruning (PyTorch).

Importing this module registers 'prune-magnitude' and 'prune-channels' in quantize.stages.STAGES;
frameworks are imported only when a stage runs. Both fine-tune on the bundle's training split
(`quantize.finetune`: cross-entropy with labels, distillation without) unless fine_tune_epochs=0.
"""

from quantize.pruning.magnitude import MagnitudePruningConfig, prune_keras, prune_torch
from quantize.pruning.structured import KERAS_REASON, ChannelPruningConfig, prune_channels_torch
from quantize.stages import STAGES, StageSpec

STAGES.register(
    MagnitudePruningConfig.stage, StageSpec(MagnitudePruningConfig, {"keras": prune_keras, "torch": prune_torch})
)
# the keras handler only refuses, with the reason (no maintained structured-pruning library for Keras)
STAGES.register(
    ChannelPruningConfig.stage, StageSpec(ChannelPruningConfig, {"torch": prune_channels_torch},
                                         refusals={"keras": KERAS_REASON})
)

from quantize.pruning.parse import PRUNE_FORMS, parse_prune  # noqa: E402  (after the stages exist)

__all__ = ["PRUNE_FORMS", "ChannelPruningConfig", "MagnitudePruningConfig", "parse_prune"]
