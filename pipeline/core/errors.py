"""One error hierarchy for everything a user can get wrong.

The CLI prints these as one paragraph and exits with code 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error caused by input the user can fix."""


class ConfigError(PipelineError):
    """A configuration value is invalid (out of range, wrong type, inconsistent)."""


class UnknownNameError(PipelineError):
    """A name (target, mode, zoo model, ...) is not registered."""


class UnsupportedRouteError(PipelineError):
    """A source framework cannot reach a target, or a target cannot express an option."""


class IntakeError(PipelineError):
    """A model file is missing, corrupt or of a format that is not supported."""


class DataError(PipelineError):
    """Evaluation or calibration data is missing or has the wrong shape or dtype."""


class ExportError(PipelineError):
    """A converter failed on the model (for example an op it cannot take)."""


class OutputMismatchError(PipelineError):
    """An exported artifact disagrees with its source model beyond tolerance."""


class RuntimeUnavailableError(PipelineError):
    """A runtime or delegate cannot run on this machine."""


class ArtifactError(PipelineError):
    """An exported artifact is missing, truncated or corrupt."""


def first_line(exc: BaseException, limit: int = 500) -> str:
    """The first non-blank line of `exc`'s message (its type name when there is none), cut to `limit` characters."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:limit]
