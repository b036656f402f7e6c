"""Runtimes that load exported artifacts and run them."""

from device_runtime.base import Availability, Runtime, Session
from device_runtime.executorch_runtime import ExecuTorchRuntime
from device_runtime.litert import LiteRTRuntime
from device_runtime.tfjs_browser import TFJSBrowserRuntime
from device_runtime.tfjs_node import TFJSNodeRuntime
from pipeline.registry import Registry

RUNTIMES: Registry[Runtime] = Registry("runtime")
RUNTIMES.register("litert", LiteRTRuntime())
RUNTIMES.register("executorch", ExecuTorchRuntime())
RUNTIMES.register("tfjs-node", TFJSNodeRuntime())
RUNTIMES.register("tfjs-browser", TFJSBrowserRuntime())

__all__ = ["RUNTIMES", "Availability", "ExecuTorchRuntime", "LiteRTRuntime", "Runtime", "TFJSBrowserRuntime", "TFJSNodeRuntime", "Session"]
