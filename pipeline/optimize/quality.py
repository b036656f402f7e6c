"""One number for how much an artifact lost against its source, in points, read from its manifest's validation."""

from __future__ import annotations

import math
from typing import Any

# how each output role's loss reads in points (1 point = 0.01 of the measure)
DROP_MEASURES = {
    "classification": "accuracy drop (labels), else 1 - top-1 agreement",
    "embedding": "1 - mean cosine similarity",
    "dense": "relative L2 error",
}


def output_drop(metrics: dict[str, Any]) -> tuple[float, str]:
    """(points lost, the measure) of one validated output: accuracy points where labels were judged, else the
    agreement, cosine or relative error; +inf for an output that could not be measured."""
    if metrics.get("accuracy_drop") is not None:
        return 100.0 * metrics["accuracy_drop"], "accuracy drop"
    if metrics.get("top1_agreement") is not None:
        return 100.0 * (1.0 - metrics["top1_agreement"]), "1 - top-1 agreement"
    if metrics.get("cosine_mean") is not None:
        return 100.0 * (1.0 - metrics["cosine_mean"]), "1 - cosine mean"
    if metrics.get("relative_l2") is not None:
        return 100.0 * metrics["relative_l2"], "relative L2"
    return math.inf, "not measured"


def quality_drop(manifest: dict[str, Any]) -> tuple[float, str]:
    """The worst output's loss in points and its measure; (+inf, why) when the artifact was not validated."""
    validation = manifest.get("validation") or {}
    outputs = validation.get("outputs") or []
    if validation.get("skipped") or not outputs:
        return math.inf, "not validated"
    drops = [output_drop(out.get("metrics") or {}) for out in outputs]
    return max(drops, key=lambda drop: drop[0])
