"""What every exporter provides, and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.core.bundle import ModelBundle
from pipeline.core.records import DelegationReport
from quantize import QuantizationConfig


@dataclass(frozen=True)
class AppliedStage:
    """One transformation applied during export: its config, the tool that did it and its effect (if measured)."""

    name: str
    config: dict[str, Any]
    tool: str
    effect: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {"name": self.name, "tool": self.tool, "config": self.config}
        return {**data, "effect": self.effect} if self.effect else data


@dataclass(frozen=True)
class ExportOutput:
    """Files an exporter wrote (relative to its output directory) and how it got there."""

    model_file: str
    files: tuple[str, ...]
    route: str
    validation_delegate: str
    stages: tuple[AppliedStage, ...] = ()
    toolchain_packages: tuple[str, ...] = ()
    delegation: DelegationReport | None = None  # when the converter knows it; else the runtime reports
    notes: dict[str, Any] = field(default_factory=dict)


class Exporter(Protocol):
    """One target format. `routes` maps each source framework to its converter chain.

    Which quantization modes each route expresses is not an attribute: the route modules register one
    handler per (mode, route) in `quantize.route_handlers`, and `export` looks its handler up there.
    """

    target: str
    runtime: str
    routes: dict[str, str]
    packages: dict[str, tuple[str, ...]]  # source framework -> the packages its route runs (versions go in the manifest)
    config_cls: type[Any]

    def export(
        self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: Any
    ) -> ExportOutput: ...


def toolchain(exporter: Exporter) -> tuple[str, ...]:
    """Every package any of the exporter's routes runs, sorted (a change to one changes the sweep's cache keys)."""
    return tuple(sorted({package for packages in exporter.packages.values() for package in packages}))
