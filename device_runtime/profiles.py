"""Emulated edge devices: cores, threads, memory cap, CPU-speed throttle and available delegates.

A profile's throttle is calibrated on this host against a published latency of an anchor
model on the real device (see `pipeline.calibration`); results from a profile are
always labelled `emulated`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.registry import Registry

XNNPACK_README = "XNNPACK README, Performance section (end2end_bench, randomized weights and inputs)"


@dataclass(frozen=True)
class Anchor:
    """A published latency of the anchor model on the real device."""

    model: str
    threads: int
    published_ms: float
    source: str


@dataclass(frozen=True)
class DeviceProfile:
    """An edge device class the worker process is made to resemble."""

    name: str
    description: str
    cores: int
    threads: int
    memory_mb: int | None
    delegates: tuple[str, ...]
    anchor: Anchor | None = None

    def __post_init__(self) -> None:
        if self.cores < 1 or self.threads < 1:
            raise ConfigError(f"Profile {self.name}: cores and threads must be >= 1.")
        if self.memory_mb is not None and self.memory_mb < 64:
            raise ConfigError(f"Profile {self.name}: memory_mb must be >= 64, got {self.memory_mb}.")

    @property
    def emulated(self) -> bool:
        return self.anchor is not None or self.memory_mb is not None

    def usable_cores(self) -> list[int]:
        """The host CPUs the worker is pinned to (the first `cores`, capped at what the host has)."""
        available = sorted(os.sched_getaffinity(0))
        return available[: min(self.cores, len(available))]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


MOBILENET_V2 = "MobileNet v2 1.0X 224x224 fp32 (XNNPACK)"
CPU_DELEGATES = ("xnnpack", "cpu", "portable")

PROFILES: Registry[DeviceProfile] = Registry("device profile")
for _profile in (
    DeviceProfile("host", "This machine as it is: no throttle, no memory cap (results labelled measured)",
                  cores=os.cpu_count() or 1, threads=1, memory_mb=None,
                  delegates=(*CPU_DELEGATES, "gpu", "wasm")),
    DeviceProfile("pixel-3a", "Mid-range phone (Pixel 3a class: 2 big Kryo 360 cores), 2 threads, 3 GiB",
                  cores=2, threads=2, memory_mb=3072, delegates=(*CPU_DELEGATES, "gpu"),
                  anchor=Anchor(MOBILENET_V2, threads=2, published_ms=28.0,
                                source=f"{XNNPACK_README}: Pixel 3a, multi-threaded (big cores), 2020-03-27")),
    DeviceProfile("pixel-3a-1t", "Mid-range phone (Pixel 3a class), single-threaded, 3 GiB",
                  cores=1, threads=1, memory_mb=3072, delegates=(*CPU_DELEGATES, "gpu"),
                  anchor=Anchor(MOBILENET_V2, threads=1, published_ms=55.0,
                                source=f"{XNNPACK_README}: Pixel 3a, single-threaded, 2020-03-27")),
    DeviceProfile("rpi4", "Raspberry Pi 4 class board (BCM2711); 4 threads on the device, at most the host's cores here",
                  cores=4, threads=4, memory_mb=2048, delegates=CPU_DELEGATES,
                  anchor=Anchor(MOBILENET_V2, threads=4, published_ms=44.0,
                                source=f"{XNNPACK_README}: RPi 4 (BCM2711), multi-threaded, 2020-02-12")),
    DeviceProfile("rpi3", "Raspberry Pi 3+ class board (BCM2837B0), low-end; 4 threads on the device",
                  cores=4, threads=4, memory_mb=1024, delegates=CPU_DELEGATES,
                  anchor=Anchor(MOBILENET_V2, threads=4, published_ms=79.0,
                                source=f"{XNNPACK_README}: RPi 3+ (BCM2837B0), multi-threaded, 2020-02-12")),
):
    PROFILES.register(_profile.name, _profile)
