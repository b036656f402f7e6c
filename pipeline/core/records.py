"""Typed records for what is persisted or crosses a process boundary: a measurement and an export row.

Each is built in one place (here) and serialised with `to_json`; the results store and the report
read the same field names. `RECORD_SCHEMA_VERSION` changes when a field does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

RECORD_SCHEMA_VERSION = 1

LATENCY_FIELDS = ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_ms_std",
                  "latency_cv", "latency_ms_min", "latency_ms_max")
# the result fields the store keeps as columns (the rest stay in result_json)
NUMERIC_FIELDS = ("load_ms", "first_inference_ms", *LATENCY_FIELDS[:6], "runs", "duration_s", "peak_rss_bytes",
                  "accuracy", "samples")
MEASUREMENT_STATUSES = ("ok", "failed", "unavailable")
MEASUREMENT_KINDS = ("measured", "emulated")


@dataclass(frozen=True)
class Measurement:
    """One benchmark outcome, successful or not: what ran, where, the result fields and the context."""

    kind: str
    status: str
    artifact_dir: str
    manifest_sha256: str
    target: str
    runtime: str
    delegate_requested: str
    delegate_used: str | None
    threads: int | None
    device_profile: str
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    cell_key: str | None = None
    created_at: str | None = None
    schema_version: int = RECORD_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.kind not in MEASUREMENT_KINDS:
            raise ValueError(f"measurement kind '{self.kind}' is not one of {', '.join(MEASUREMENT_KINDS)}")
        if self.status not in MEASUREMENT_STATUSES:
            raise ValueError(f"measurement status '{self.status}' is not one of {', '.join(MEASUREMENT_STATUSES)}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        """The record `to_json` wrote (keys it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class ExportRow:
    """The outcome of one export cell of a sweep (the `exports` table)."""

    model: str
    framework: str
    variant: str
    target: str
    artifact_dir: str
    status: str
    error: str | None = None
    manifest_sha256: str | None = None
    seconds: float = 0.0
    schema_version: int = RECORD_SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DelegationReport:
    """Which ops of an artifact its delegate takes and which fall back to other kernels (the manifest's `delegation`)."""

    delegate: str
    ops_total: int
    ops_delegated: int
    ops_not_delegated: tuple[str, ...] = ()
    delegated_subgraphs: int | None = None
    graph_ops: tuple[str, ...] | None = None
    warning: str | None = None

    @property
    def delegated_share(self) -> float:
        return round(self.ops_delegated / self.ops_total, 4) if self.ops_total else 0.0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"delegate": self.delegate, "ops_total": self.ops_total,
                                "ops_delegated": self.ops_delegated, "delegated_share": self.delegated_share,
                                "ops_not_delegated": list(self.ops_not_delegated)}
        for name in ("delegated_subgraphs", "graph_ops", "warning"):
            value = getattr(self, name)
            if value is not None:
                data[name] = list(value) if isinstance(value, tuple) else value
        return data
