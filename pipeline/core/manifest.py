"""The artifact manifest on disk: its file name, reader, and per-file entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.core.errors import ArtifactError
from pipeline.core.files import gzip_size, sha256_file

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1


def file_entry(out_dir: Path, name: str) -> dict[str, Any]:
    """Size (raw and gzip) and sha256 of one artifact file."""
    path = out_dir / name
    return {"name": name, "size_bytes": path.stat().st_size, "size_bytes_gzip": gzip_size(path), "sha256": sha256_file(path)}


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    """The manifest of an artifact directory; ArtifactError if it is missing or unreadable."""
    path = artifact_dir / MANIFEST_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{artifact_dir} has no {MANIFEST_FILE}; it is not an exported artifact.") from None
    except ValueError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); re-export the artifact.") from None


def artifact_file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every artifact file under `root`, from the manifests, keyed by path relative to `root`."""
    hashes = {}
    for manifest in sorted(root.rglob(MANIFEST_FILE)):
        for entry in json.loads(manifest.read_text())["files"]:
            hashes[f"{manifest.parent.relative_to(root)}/{entry['name']}"] = entry["sha256"]
    return hashes


TASK_METRICS = {"classification": "accuracy", "embedding": "cosine", "regression": "SQNR dB"}
FRACTIONS = ("accuracy", "agreement")  # metrics shown as percentages; the others as plain numbers


def task_of(manifest: dict[str, Any]) -> str:
    """The artifact's task: the validation's, else the source's, else classification (manifests before tasks)."""
    validation, source = manifest.get("validation") or {}, manifest.get("source") or {}
    task = validation.get("task") or source.get("task")
    return str(task) if task and task != "auto" else "classification"


def task_metric(manifest: dict[str, Any]) -> tuple[str, float | None]:
    """(label, value) of the artifact's task metric: the validation's headline (accuracy, agreement, cosine or
    SQNR dB); for a manifest without one, the artifact's accuracy. Value None when nothing measured it."""
    validation = manifest.get("validation") or {}
    headline = validation.get("headline")
    if isinstance(headline, dict) and headline.get("label"):
        value = headline.get("value")
        return str(headline["label"]), None if value is None else float(value)
    task = task_of(manifest)
    value = validation.get("artifact_accuracy") if task == "classification" else None
    return TASK_METRICS.get(task, "accuracy"), None if value is None else float(value)


def format_metric(label: str, value: float | None) -> str:
    """A metric value as its label reads: percent for accuracy and agreement, 4 decimals for cosine, else 3 digits."""
    if value is None:
        return "-"
    if label in FRACTIONS:
        return f"{value:.2%}"
    return f"{value:.4f}" if label == "cosine" else f"{value:.3g}"
