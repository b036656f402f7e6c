"""The artifact manifest: everything needed to trace a number back to how it was made."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporters.base import ExportOutput
from pipeline.bundle import ModelBundle
from pipeline.errors import ArtifactError
from pipeline.files import gzip_size, sha256_file
from pipeline.validation import ValidationResult
from pipeline.versions import toolchain_versions

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1


def _file_entry(out_dir: Path, name: str) -> dict[str, Any]:
    path = out_dir / name
    return {"name": name, "size_bytes": path.stat().st_size, "size_bytes_gzip": gzip_size(path), "sha256": sha256_file(path)}


def build_manifest(
    *,
    target: str,
    bundle: ModelBundle,
    output: ExportOutput,
    out_dir: Path,
    validation: ValidationResult | None,
    export_seconds: float,
    signature: dict[str, Any],
    delegation: dict[str, Any],
    config: Any,
) -> dict[str, Any]:
    """The manifest dict for an exported artifact whose files lie in `out_dir`."""
    files = [_file_entry(out_dir, name) for name in output.files]
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "target": target,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {
            "framework": bundle.framework,
            "format": bundle.source.format,
            "path": bundle.source.path,
            "sha256": bundle.source.sha256,
            "task": bundle.task,
            "labels": list(bundle.labels),
        },
        "route": output.route,
        "export_config": asdict(config),
        "stages": [stage.to_json() for stage in output.stages],
        "model_file": output.model_file,
        "files": files,
        "size_bytes": sum(f["size_bytes"] for f in files),
        "size_bytes_gzip": sum(f["size_bytes_gzip"] for f in files),
        "toolchain": toolchain_versions(*output.toolchain_packages),
        "input_signature": [bundle.input_spec.to_json()],
        "artifact_signature": signature,
        "validation": validation.to_json() if validation else {"passed": None, "skipped": True},
        "delegation": delegation,
        "export_seconds": round(export_seconds, 3),
        **({"notes": output.notes} if output.notes else {}),
    }


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
