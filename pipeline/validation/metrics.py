"""How far an artifact's output is from its source's, from the two arrays alone (no model, no session)."""

from __future__ import annotations

import numpy as np

NEIGHBOURS = 5  # neighbours per sample compared by `neighbour_agreement`
SQNR_CAP_DB = 200.0  # identical outputs (and an all-zero source) would be +-inf, which JSON cannot hold
_BLOCK = 512  # rows of the similarity matrix held at once


def non_finite(values: np.ndarray) -> int:
    """How many values are NaN or infinite."""
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (numerically stable)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def errors(source: np.ndarray, artifact: np.ndarray) -> dict[str, float]:
    """Largest and mean absolute difference, in the outputs' units."""
    error = np.abs(artifact - source)
    return {"max_abs_error": float(error.max(initial=0.0)), "mean_abs_error": float(error.mean()) if error.size else 0.0}


def classification(source: np.ndarray, artifact: np.ndarray, probabilities: bool,
                   labels: np.ndarray | None) -> dict[str, float]:
    """Errors on probabilities (softmax of logits unless `probabilities`), top-1 agreement, accuracies with labels."""
    if not probabilities:
        source, artifact = softmax(source), softmax(artifact)
    metrics = {**errors(source, artifact),
               "top1_agreement": float(np.mean(source.argmax(-1) == artifact.argmax(-1)))}
    if labels is not None:
        metrics["source_accuracy"] = float(np.mean(source.argmax(-1) == labels))
        metrics["artifact_accuracy"] = float(np.mean(artifact.argmax(-1) == labels))
        metrics["accuracy_drop"] = metrics["source_accuracy"] - metrics["artifact_accuracy"]
    return metrics


def _unit_rows(values: np.ndarray) -> np.ndarray:
    rows = values.reshape(len(values), -1)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def cosines(source: np.ndarray, artifact: np.ndarray) -> np.ndarray:
    """Each sample's cosine similarity to the source's (1 when both are zero vectors, 0 when one is)."""
    ours, theirs = _unit_rows(source), _unit_rows(artifact)
    both_zero = ~ours.any(axis=1) & ~theirs.any(axis=1)
    return np.clip(np.where(both_zero, 1.0, np.sum(ours * theirs, axis=1)), -1.0, 1.0)


def _nearest(unit: np.ndarray, start: int, stop: int, k: int) -> np.ndarray:
    """Indices of the `k` most cosine-similar other samples of rows start..stop (ties broken by index)."""
    similarity = unit[start:stop] @ unit.T
    similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def neighbour_agreement(source: np.ndarray, artifact: np.ndarray, k: int = NEIGHBOURS) -> float | None:
    """Mean share of each sample's `k` nearest neighbours (by cosine, among the samples) the artifact keeps.

    None with fewer than two samples; with fewer than k + 1, every other sample is a neighbour.
    """
    k = min(k, len(source) - 1)
    if k < 1:
        return None
    source_unit, artifact_unit = _unit_rows(source), _unit_rows(artifact)
    kept = 0
    for start in range(0, len(source), _BLOCK):
        stop = min(start + _BLOCK, len(source))
        ours, theirs = _nearest(source_unit, start, stop, k), _nearest(artifact_unit, start, stop, k)
        kept += int((ours[:, :, None] == theirs[:, None, :]).any(axis=2).sum())
    return kept / (len(source) * k)


def embedding(source: np.ndarray, artifact: np.ndarray) -> dict[str, float | None]:
    """Cosine similarity to the source (mean and worst sample), neighbour agreement and raw errors."""
    similarity = cosines(source, artifact)
    return {"cosine_mean": float(similarity.mean()), "cosine_worst": float(similarity.min()),
            "neighbour_agreement": neighbour_agreement(source, artifact), **errors(source, artifact)}


def dense(source: np.ndarray, artifact: np.ndarray) -> dict[str, float]:
    """SQNR in dB over the whole output (capped at +-SQNR_CAP_DB), relative L2 error and raw errors."""
    noise, signal = float(np.linalg.norm(artifact - source)), float(np.linalg.norm(source))
    relative = noise / signal if signal > 0 else (0.0 if noise == 0 else np.inf)
    sqnr = SQNR_CAP_DB if relative == 0 else float(np.clip(-20 * np.log10(relative), -SQNR_CAP_DB, SQNR_CAP_DB))
    return {"sqnr_db": sqnr, "relative_l2": relative, **errors(source, artifact)}
