"""Runtimes that load exported artifacts and run them, registered by name."""

from device_runtime.base import Availability, Runtime, Session
from device_runtime.executorch_runtime import ExecuTorchRuntime
from device_runtime.litert import LiteRTRuntime
from device_runtime.onnxruntime_runtime import OnnxRuntimeRuntime
from device_runtime.ort_browser import OrtBrowserRuntime
from device_runtime.tfjs_browser import TFJSBrowserRuntime
from device_runtime.tfjs_node import TFJSNodeRuntime
from pipeline.core.errors import ConfigError
from pipeline.core.registry import Registry

RUNTIMES: Registry[Runtime] = Registry("runtime")
for _runtime in (LiteRTRuntime(), ExecuTorchRuntime(), TFJSNodeRuntime(), TFJSBrowserRuntime(), OnnxRuntimeRuntime(),
                 OrtBrowserRuntime()):
    RUNTIMES.register(_runtime.name, _runtime)  # a target's first registered runtime is its default


def runtimes_for(target: str) -> tuple[str, ...]:
    """The runtimes that run `target`'s artifacts, the default first."""
    return tuple(name for name in RUNTIMES.in_order() if RUNTIMES.get(name).target == target)


def default_runtime(target: str) -> str:
    """The runtime an artifact of `target` is run on unless another is asked for."""
    names = runtimes_for(target)
    if not names:
        targets = sorted({runtime.target for _, runtime in RUNTIMES.items()})
        raise ConfigError(f"No runtime runs '{target}' artifacts. Targets with a runtime: {', '.join(targets)}.")
    return names[0]


__all__ = ["RUNTIMES", "Availability", "ExecuTorchRuntime", "LiteRTRuntime", "OnnxRuntimeRuntime", "OrtBrowserRuntime", "Runtime", "Session", "TFJSBrowserRuntime",
           "TFJSNodeRuntime", "default_runtime", "runtimes_for"]
