"""Expand a recipe into export and benchmark cells, each with a content-addressed cache key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from pipeline.core.versions import toolchain_versions
from pipeline.sweep.recipe import ModelSpec, Recipe, RuntimeSpec, VariantSpec

T = TypeVar("T")
STAGE_PACKAGES = ("torch-pruning", "tensorflow-model-optimization")  # pruning runs before any exporter
OPTION_FIELDS = {"per_channel": True, "keep_float": ()}  # in a cell's key only when set: defaults keep older keys


def key_packages() -> tuple[str, ...]:
    """The packages whose versions are part of every cache key: each exporter's toolchain, the runtimes, the stages."""
    from device_runtime import RUNTIMES
    from exporters import EXPORTERS, toolchain

    packages = {p for _, exporter in EXPORTERS.items() for p in toolchain(exporter)}
    packages |= {p for _, runtime in RUNTIMES.items() for p in runtime.packages}
    return tuple(sorted(packages | set(STAGE_PACKAGES)))


def content_key(*parts: Any) -> str:
    """sha256 of the parts as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ExportCell:
    model: ModelSpec
    variant: VariantSpec
    target: str

    def label(self) -> str:
        return f"{self.model.name}/{self.model.framework or 'user'} {self.variant.name} -> {self.target}"

    def key(self, source_sha256: str) -> str:
        """Changes when the source model (and how it is read and judged), the variant, the target or any toolchain
        version changes."""
        reading = {k: v for k, v in asdict(self.model).items() if k in ("task", "input_spec", "train_data") and v}
        variant = {k: v for k, v in asdict(self.variant).items() if k not in OPTION_FIELDS or v != OPTION_FIELDS[k]}
        return content_key("export", source_sha256, variant, self.target, toolchain_versions(*key_packages()),
                           *([reading] if reading else []))


@dataclass(frozen=True)
class BenchCell:
    export: ExportCell
    runtime: RuntimeSpec
    device: str

    def label(self) -> str:
        return f"{self.export.label()} on {self.runtime.runtime}/{self.runtime.delegate} @ {self.device}"

    def key(self, manifest_sha256: str, measure: dict[str, Any], calibration: dict[str, Any] | None) -> str:
        from device_runtime.device_scripts.edge_bench import PROTOCOL_VERSION

        page_rate = ((calibration or {}).get("browser") or {}).get("cpu_throttling_rate")  # TF.js in Chromium
        return content_key("bench", manifest_sha256, asdict(self.runtime), self.device, measure, PROTOCOL_VERSION,
                           (calibration or {}).get("active_fraction"), toolchain_versions(*key_packages()),
                           *([page_rate] if page_rate and self.runtime.runtime == "tfjs-browser" else []))


@dataclass(frozen=True)
class Plan:
    exports: tuple[ExportCell, ...]
    benches: tuple[BenchCell, ...]
    refused: tuple[ExportCell, ...] = ()  # the route from the model's framework cannot express the variant
    unmeasurable: tuple[BenchCell, ...] = ()  # the device profile does not offer the runtime's delegate


def _route_expresses(cell: ExportCell) -> bool:
    from exporters import modes_for

    framework = cell.model.framework
    return framework is None or cell.variant.quantize in modes_for(framework, cell.target)


def _partition(items: Iterable[T], keep: Callable[[T], bool]) -> tuple[tuple[T, ...], tuple[T, ...]]:
    """(items kept, items not kept), each in order."""
    kept: list[T] = []
    dropped: list[T] = []
    for item in items:
        (kept if keep(item) else dropped).append(item)
    return tuple(kept), tuple(dropped)


def build_plan(recipe: Recipe) -> Plan:
    """Every (model, variant, target) the recipe asks for, and every (runtime, device) to measure each on.

    Cells whose route cannot express the variant (e.g. QAT through the Keras -> ExecuTorch bridge) are set
    aside in `refused` rather than planned to fail.
    """
    from device_runtime.profiles import PROFILES

    exports, refused = _partition(
        (ExportCell(model, variant, target)
         for model in recipe.models for variant in recipe.variants for target in recipe.targets
         if (not variant.targets or target in variant.targets) and (not model.variants or variant.name in model.variants)
         and (not model.targets or target in model.targets)),
        _route_expresses,
    )
    benches, unmeasurable = _partition(
        (BenchCell(cell, runtime, device)
         for cell in exports for runtime in recipe.runtimes
         if runtime.target == cell.target and (not runtime.variants or cell.variant.name in runtime.variants)
         for device in recipe.devices
         if (not cell.model.devices or device in cell.model.devices)
         and (not runtime.devices or device in runtime.devices)),
        lambda bench: bench.runtime.delegate in PROFILES.get(bench.device).delegates,
    )
    return Plan(exports, benches, refused, unmeasurable)
