"""The `--prune` spelling shared by the CLI, recipes and the Python API."""

from __future__ import annotations

from pipeline.core.errors import ConfigError
from quantize.stages import STAGES, StageConfig

PRUNE_FORMS = "--prune 0.5 (magnitude sparsity) or --prune channels:0.3 (structured channel ratio)"
PRUNE_KINDS = ("magnitude", "channels")  # the KIND of 'KIND:AMOUNT'; a bare AMOUNT is magnitude


def parse_prune(text: str, fine_tune_epochs: int | None = None) -> StageConfig:
    """'0.5' -> magnitude pruning to 50% sparsity; 'channels:0.3' -> remove 30% of channels.

    `fine_tune_epochs` (`--finetune-epochs`) overrides the stage's default; 0 prunes once, without training
    data. Raises ConfigError for an unknown spelling or an invalid amount or epoch count.
    """
    kind, _, value = text.rpartition(":")
    try:
        amount = float(value)
    except ValueError:
        raise ConfigError(f"--prune '{text}' is not understood; use {PRUNE_FORMS}.") from None
    options = {} if fine_tune_epochs is None else {"fine_tune_epochs": fine_tune_epochs}
    if kind in ("", "magnitude"):
        return STAGES.get("prune-magnitude").config_cls(sparsity=amount, **options)
    if kind == "channels":
        return STAGES.get("prune-channels").config_cls(ratio=amount, **options)
    raise ConfigError(f"--prune kind '{kind}' is unknown; use {PRUNE_FORMS}.")
