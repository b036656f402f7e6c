"""Runtimes that load exported artifacts and run them (LiteRT for now)."""

from device_runtime.base import Availability, Runtime, Session
from device_runtime.litert import LiteRTRuntime
from pipeline.registry import Registry

RUNTIMES: Registry[Runtime] = Registry("runtime")
RUNTIMES.register("litert", LiteRTRuntime())

__all__ = ["RUNTIMES", "Availability", "LiteRTRuntime", "Runtime", "Session"]
