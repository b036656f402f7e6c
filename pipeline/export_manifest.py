"""The manifest an export writes: everything needed to trace a number back to how it was made."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporters.base import ExportOutput
from pipeline.core.bundle import ModelBundle
from pipeline.core.manifest import MANIFEST_SCHEMA_VERSION, file_entry
from pipeline.core.versions import toolchain_versions
from pipeline.validation import ValidationResult


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
    coverage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest dict for an exported artifact whose files lie in `out_dir`; `coverage` is the artifact's
    quantization coverage (exporters.coverage), read from its files."""
    files = [file_entry(out_dir, name) for name in output.files]
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
        "input_signature": [spec.to_json() for spec in bundle.inputs],
        "output_signature": [spec.to_json() for spec in bundle.outputs],
        "artifact_signature": signature,
        "validation": validation.to_json() if validation else {"passed": None, "skipped": True},
        "delegation": delegation,
        **({"quantization_coverage": coverage} if coverage else {}),
        "export_seconds": round(export_seconds, 3),
        **({"notes": output.notes} if output.notes else {}),
    }
