"""The report's rows: the latest ok measurement per artifact, runtime, delegate, device and threads, joined with
its manifest, its calibration status and the int8 note; the Pareto front and the grouping the report uses."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.core.emulation import MEASURED, CalibrationStatus, int8_slowdown_reason, row_status
from pipeline.core.host import int8_features
from pipeline.core.manifest import task_metric, task_of
from pipeline.results import fetch_exports, fetch_measurements, open_store


@dataclass(frozen=True)
class Entry:
    """One measured artifact, joined with its export cell and manifest."""

    model: str
    framework: str
    variant: str
    target: str
    runtime: str
    delegate: str
    device: str
    kind: str
    threads: int | None
    p50_ms: float
    p90_ms: float
    size_bytes: int
    size_bytes_gzip: int
    accuracy: float | None
    agreement: float | None
    task: str
    metric: str  # the task metric's label (task_metric): accuracy, agreement, cosine or SQNR dB
    metric_value: float | None
    delegated: str
    warning: str
    versions: str
    artifact_dir: str
    measurement_id: int
    precision: str = "fp32"  # of the artifact (pipeline.calibration.precision_of)
    calibration: str = MEASURED  # the row's calibration status (pipeline.core.emulation)
    calibration_error: float | None = None  # signed anchor error of that calibration
    calibration_text: str = ""  # 'calibrated (+3.2%)', 'uncalibrated (-41%)', 'calibrated from fp32 (+1.5%)'
    calibration_reason: str = ""  # why uncalibrated, or why another precision's anchor was used
    calibrated_from: str = ""  # the precision whose anchor set the throttle
    int8_note: str = ""  # 'int8 slower than fp32 on this host: ...'
    coverage_warning: str = ""  # a quantized artifact keeping > 10% of its weight bytes in float (exporters.coverage)

    @property
    def status(self) -> CalibrationStatus:
        return CalibrationStatus(self.calibration, self.calibration_error, self.calibration_reason,
                                 self.calibrated_from and self.precision, self.calibrated_from)

    @property
    def flagged(self) -> bool:
        """An emulated row whose figures must carry the 'uncalibrated' badge."""
        return self.status.flagged


def _manifest(artifact_dir: str) -> dict[str, Any]:
    path = Path(artifact_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _bare_model(artifact_dir: str) -> dict[str, Any]:
    """What stands in for the manifest of a model file measured without one (`pipeline bench model.tflite`)."""
    from pipeline.core.files import gzip_size

    path = Path(artifact_dir)
    files = [path] if path.is_file() else [p for p in path.glob("*") if p.is_file()]
    return {"source": {"path": f"{path.parent.name}/{path.name}"}, "size_bytes": sum(p.stat().st_size for p in files),
            "size_bytes_gzip": sum(gzip_size(p) for p in files)}


def load_entries(store_path: Path) -> list[Entry]:
    """Latest ok measurement per (artifact, runtime, delegate, device, threads), joined with its manifest, its
    calibration status and, for int8 artifacts slower than their fp32 twin on the host, a note saying why."""
    from pipeline.calibration import precision_of

    with open_store(store_path) as store:
        exports = {row["artifact_dir"]: row for row in fetch_exports(store)}
        rows = fetch_measurements(store, status="ok")
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:  # newest first
        latest.setdefault((row["artifact_dir"], row["runtime"], row["delegate_used"], row["device_profile"], row["threads"]), row)
    entries, features = [], {}
    for row in latest.values():
        # a model file measured without its manifest: no validation, so no accuracy; synthetic inputs say so in kind
        context = json.loads(row["context_json"] or "{}")
        bare, synthetic = "manifest" in context and context["manifest"] is None, context.get("inputs") == "synthetic"
        manifest = _bare_model(row["artifact_dir"]) if bare else _manifest(row["artifact_dir"])
        export = exports.get(row["artifact_dir"], {})
        validation = manifest.get("validation", {})
        delegation = manifest.get("delegation", {})
        source = manifest.get("source", {})
        metric, metric_value = task_metric(manifest)
        stages = "+".join(s["name"] if s["name"] != "quantize" else s["config"]["mode"] for s in manifest.get("stages", []))
        kind = row["kind"] if row["latency_ms_p50"] is not None else f"{row['kind']} (mean only)"
        status, features[row["id"]] = row_status(row["kind"], context), context.get("int8_features")
        entries.append(Entry(
            model=export.get("model") or (source["path"] if bare else Path(source.get("path", "?")).stem),
            framework=export.get("framework") or source.get("framework", "?"),
            variant=export.get("variant") or stages or "fp32", target=row["target"], runtime=row["runtime"],
            delegate=row["delegate_used"] or row["delegate_requested"], device=row["device_profile"],
            kind=f"{kind}, synthetic inputs" if synthetic else kind,
            # a device runner that prints only a mean (android_bench.py) is shown by its mean, and says so
            threads=row["threads"], p50_ms=row["latency_ms_p50"] or row["latency_ms_mean"],
            p90_ms=row["latency_ms_p90"] or row["latency_ms_mean"],
            size_bytes=manifest.get("size_bytes", 0), size_bytes_gzip=manifest.get("size_bytes_gzip", 0),
            accuracy=validation.get("artifact_accuracy"), agreement=validation.get("top1_agreement"),
            task=task_of(manifest), metric=metric, metric_value=metric_value,
            delegated=f"{delegation.get('ops_delegated', '?')}/{delegation.get('ops_total', '?')}" if delegation else "-",
            warning=delegation.get("warning", ""),
            versions=", ".join(f"{k} {v}" for k, v in manifest.get("toolchain", {}).items()),
            artifact_dir=row["artifact_dir"], measurement_id=row["id"],
            precision=precision_of(manifest) if not bare else (context.get("calibration") or {}).get("precision", "fp32"),
            calibration=status.status, calibration_error=status.error, calibration_text=status.text(reason=False),
            calibration_reason=status.reason, calibrated_from=status.calibrated_from,
            coverage_warning=(manifest.get("quantization_coverage") or {}).get("warning", ""),
        ))
    notes = int8_notes(entries, features)
    entries = [replace(e, int8_note=notes[e.measurement_id]) if e.measurement_id in notes else e for e in entries]
    return sorted(entries, key=lambda e: (e.model, e.device, e.p50_ms))


def int8_notes(entries: list[Entry], features: dict[int, dict[str, Any] | None]) -> dict[int, str]:
    """Measurement id -> note, for int8 rows whose artifact ran slower than the same model's fp32 artifact on the
    host (measured, same target, runtime, delegate and threads); `features` are the host rows' int8_features."""
    def twin(e: Entry) -> tuple[Any, ...]:
        return e.model, e.framework, e.target, e.runtime, e.delegate

    host = [e for e in entries if e.device == "host" and e.kind.startswith("measured")]
    fp32 = {(twin(e), e.threads): e for e in host if e.precision == "fp32" and e.variant == "fp32"}
    slower: dict[tuple[Any, ...], str] = {}
    for e in host:
        reference = fp32.get((twin(e), e.threads))
        if e.precision == "int8" and reference is not None and e.p50_ms > reference.p50_ms:
            # a measurement stored without the features ran on this machine, as far as anything says
            why = int8_slowdown_reason(features.get(e.measurement_id) or int8_features())
            slower[(*twin(e), e.variant)] = (
                f"int8 slower than fp32 on this host: {why} "
                f"(host p50 {e.p50_ms:.3g} ms int8 vs {reference.p50_ms:.3g} ms fp32, {e.runtime}/{e.delegate}, "
                f"{e.threads} thread(s))")
    notes = {}
    for e in entries:
        note = slower.get((*twin(e), e.variant)) if e.precision == "int8" else None
        if note and e.kind.startswith("emulated") and e.calibrated_from not in ("", "int8"):
            note += ("; this emulated figure is throttled by the fp32 calibration, so it keeps the host's int8/fp32 "
                     "ratio, not the device's")
        if note:
            notes[e.measurement_id] = note
    return notes


def pareto_front(entries: list[Entry]) -> set[int]:
    """Measurement ids not dominated in (lower p50, higher task metric, smaller size).

    Only entries with the same metric compete (an accuracy never dominates a cosine); a missing value loses.
    """
    def score(entry: Entry) -> float:
        return entry.metric_value if entry.metric_value is not None else -math.inf

    def dominates(a: Entry, b: Entry) -> bool:
        if a.metric != b.metric:
            return False
        better_or_equal = a.p50_ms <= b.p50_ms and score(a) >= score(b) and a.size_bytes <= b.size_bytes
        strictly = a.p50_ms < b.p50_ms or score(a) > score(b) or a.size_bytes < b.size_bytes
        return better_or_equal and strictly

    return {e.measurement_id for e in entries if not any(dominates(o, e) for o in entries if o is not e)}


def groups(entries: list[Entry]) -> dict[tuple[str, str], list[Entry]]:
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[(entry.model, entry.device)].append(entry)
    return dict(groups)


def by_metric(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Entries per task metric label, in order of first appearance: one chart panel each."""
    panels: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        panels[entry.metric].append(entry)
    return dict(panels)
