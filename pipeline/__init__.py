"""Edge model pipeline: intake, optimization, export, validation and measurement of on-device models.

The Python API is loaded on first use, so `import pipeline` stays fast (no framework, no pandas):

    from pipeline import export, bench, results
    artifact = export(model, "tflite", eval_data=(x, y), example_inputs=x[:1])
    bench(artifact)
    results()
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

API = ("Artifact", "bench", "devices", "export", "optimize", "results", "routes", "sweep", "zoo")
__all__ = list(API)


def __getattr__(name: str) -> Any:
    if name in API:
        return getattr(importlib.import_module("pipeline.api"), name)
    raise AttributeError(f"module 'pipeline' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *API})


class _Package(types.ModuleType):
    """The `pipeline` package, whose API names stay the API's when a submodule of the same name is imported.

    Importing `pipeline.export` (or `.bench`, `.sweep`, `.zoo`) binds the submodule on its package; that binding
    is skipped here so `from pipeline import export` is always the function. The submodules themselves are
    imported as usual (`from pipeline.export import export_bundle`).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
