"""Optimization stages applied to a ModelBundle before any exporter: one config + one handler per framework.

A stage is a pure step `ModelBundle -> ModelBundle` with a frozen config. Its handler also
returns an `effect` dict (what it achieved: sparsity reached, parameters removed; for a stage that
fine-tunes, `quantize.finetune.fine_tune_effect`: epochs, loss, samples, accuracy and fidelity
before/after) that the manifest records next to the config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import UnsupportedRouteError
from pipeline.core.registry import Registry

Handler = Callable[[ModelBundle, Any], tuple[ModelBundle, dict[str, Any]]]


@dataclass(frozen=True)
class StageConfig:
    """Base of every stage config; `stage` is the registry name."""

    stage: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, **asdict(self)}


@dataclass(frozen=True)
class StageSpec:
    """A registered stage: its config class, one handler per framework it supports, and why it refuses others."""

    config_cls: type[StageConfig]
    handlers: dict[str, Handler] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)  # framework -> why (the error's text)

    def refusal(self, stage: str, framework: str) -> str:
        """Why this stage cannot take a `framework` model ('' when it can)."""
        if framework in self.handlers:
            return ""
        return self.refusals.get(framework) or (f"Stage '{stage}' cannot be applied to a {framework} model. "
                                                f"It supports: {', '.join(sorted(self.handlers))}.")


STAGES: Registry[StageSpec] = Registry("stage")


@dataclass(frozen=True)
class AppliedStageResult:
    """A stage that ran: its config and its measured effect."""

    config: dict[str, Any]
    effect: dict[str, Any]


def apply_stages(bundle: ModelBundle, configs: list[StageConfig]) -> tuple[ModelBundle, list[AppliedStageResult]]:
    """Run `configs` in order; UnsupportedRouteError if a stage cannot handle the bundle's framework."""
    applied = []
    for config in configs:
        spec = STAGES.get(config.stage)
        if why := spec.refusal(config.stage, bundle.framework):
            raise UnsupportedRouteError(why)
        bundle, effect = spec.handlers[bundle.framework](bundle, config)
        applied.append(AppliedStageResult(config.to_json(), effect))
    return bundle, applied
