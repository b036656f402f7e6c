"""Emulated edge devices: cores, threads, memory cap, CPU-speed throttle and available delegates.

A profile's throttle is calibrated on this host, per precision, against published latencies of an
anchor model on the real device (see `pipeline.calibration`); `checks` are further published points
that only test the emulation. Results from a profile are always labelled `emulated`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.registry import Registry

PRECISIONS = ("fp32", "fp16", "int8")

XNNPACK_PHONES = ("XNNPACK README (github.com/google/XNNPACK), Performance > Mobile phones: end2end_bench, "
                  "Android/ARM64, randomized weights and inputs, benchmarked 2020-03-27")
XNNPACK_RPI = ("XNNPACK README (github.com/google/XNNPACK, Raspberry Pi table of commit fd2d933), Performance > "
               "Raspberry Pi: end2end-bench, multi-threaded, Raspbian Buster, randomized weights and inputs, INT8 "
               "per-channel, benchmarked 2022-02-08")

MOBILENET_V1 = "MobileNet v1 1.0 224"
MOBILENET_V2 = "MobileNet v2 1.0 224"
MOBILENET_V3_LARGE = "MobileNet v3 Large 224"
README_ROWS = {MOBILENET_V1: "MobileNet v1 1.0X", MOBILENET_V2: "MobileNet v2 1.0X", MOBILENET_V3_LARGE: "MobileNet v3 Large"}


@dataclass(frozen=True)
class Anchor:
    """A published latency of `model` at `precision` on the real device, with `threads` threads."""

    model: str
    threads: int
    published_ms: float
    source: str
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"Anchor {self.model}: precision must be one of {', '.join(PRECISIONS)}, "
                              f"got {self.precision!r}.")
        if self.threads < 1 or self.published_ms <= 0:
            raise ConfigError(f"Anchor {self.model}: threads must be >= 1 and published_ms > 0.")


@dataclass(frozen=True)
class DeviceProfile:
    """An edge device class the worker process is made to resemble.

    `anchors` calibrate the throttle (the fp32 anchor first, at most one per precision); `checks` are
    independent published points used only to check the calibrated emulation.
    """

    name: str
    description: str
    cores: int
    threads: int
    memory_mb: int | None
    delegates: tuple[str, ...]
    anchors: tuple[Anchor, ...] = ()
    checks: tuple[Anchor, ...] = ()

    def __post_init__(self) -> None:
        if self.cores < 1 or self.threads < 1:
            raise ConfigError(f"Profile {self.name}: cores and threads must be >= 1.")
        if self.memory_mb is not None and self.memory_mb < 64:
            raise ConfigError(f"Profile {self.name}: memory_mb must be >= 64, got {self.memory_mb}.")
        precisions = [anchor.precision for anchor in self.anchors]
        if self.anchors and precisions[0] != "fp32":
            raise ConfigError(f"Profile {self.name}: the first anchor must be the fp32 one, got {precisions[0]}.")
        if len(set(precisions)) != len(precisions):
            raise ConfigError(f"Profile {self.name}: one anchor per precision, got {', '.join(precisions)}.")

    @property
    def anchor(self) -> Anchor | None:
        """The fp32 anchor (None for a profile without a throttle)."""
        return self.anchor_for("fp32")

    def anchor_for(self, precision: str) -> Anchor | None:
        """The anchor published for `precision`, or None when the device class has no such figure."""
        return next((anchor for anchor in self.anchors if anchor.precision == precision), None)

    @property
    def emulated(self) -> bool:
        return bool(self.anchors) or self.memory_mb is not None

    def usable_cores(self) -> list[int]:
        """The host CPUs the worker is pinned to (the first `cores`, capped at what the host has)."""
        available = sorted(os.sched_getaffinity(0))
        return available[: min(self.cores, len(available))]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _phone(model: str, threads: int, ms: float, table: str) -> Anchor:
    return Anchor(model, threads, ms, f"{XNNPACK_PHONES}; {table}, row FP32 {README_ROWS[model]}, Pixel 3a column")


def _rpi(model: str, ms: float, column: str, precision: str = "fp32") -> Anchor:
    row = f"{precision.upper()} {README_ROWS[model]}"
    return Anchor(model, 4, ms, f"{XNNPACK_RPI}; row {row}, {column} column", precision)


_ONE_THREAD = "single-threaded table"
_BIG_CORES = "multi-threaded table (as many threads as big cores)"
_RPI4, _RPI3 = "RPi 4 (BCM2711)", "RPi 3+ (BCM2837B0)"

CPU_DELEGATES = ("xnnpack", "cpu", "portable", "wasm")  # wasm: TF.js in Node.js or a browser, on the CPU
# GPU backends run on the host's own GPU (a software one, SwiftShader, where it has none), labelled with the
# adapter and measured, never emulated: a CPU throttle calibrated on a CPU anchor says nothing of a phone's GPU.
HOST_GPU_DELEGATES = ("gpu", "webgl", "webgpu")

PROFILES: Registry[DeviceProfile] = Registry("device profile")
for _profile in (
    DeviceProfile("host", "This machine as it is: no throttle, no memory cap (results labelled measured)",
                  cores=os.cpu_count() or 1, threads=1, memory_mb=None,
                  delegates=(*CPU_DELEGATES, *HOST_GPU_DELEGATES)),
    DeviceProfile("pixel-3a", "Mid-range phone (Pixel 3a class: 2 big Kryo 360 cores), 2 threads, 3 GiB",
                  cores=2, threads=2, memory_mb=3072, delegates=CPU_DELEGATES,
                  anchors=(_phone(MOBILENET_V2, 2, 28.0, _BIG_CORES),),
                  checks=(_phone(MOBILENET_V1, 2, 46.0, _BIG_CORES), _phone(MOBILENET_V3_LARGE, 2, 24.0, _BIG_CORES))),
    DeviceProfile("pixel-3a-1t", "Mid-range phone (Pixel 3a class), single-threaded, 3 GiB",
                  cores=1, threads=1, memory_mb=3072, delegates=CPU_DELEGATES,
                  anchors=(_phone(MOBILENET_V2, 1, 55.0, _ONE_THREAD),),
                  checks=(_phone(MOBILENET_V1, 1, 88.0, _ONE_THREAD), _phone(MOBILENET_V3_LARGE, 1, 44.0, _ONE_THREAD))),
    DeviceProfile("rpi4", "Raspberry Pi 4 class board (BCM2711); 4 threads on the device, at most the host's cores here",
                  cores=4, threads=4, memory_mb=2048, delegates=CPU_DELEGATES,
                  anchors=(_rpi(MOBILENET_V2, 41.0, _RPI4), _rpi(MOBILENET_V2, 20.0, _RPI4, "int8")),
                  checks=(_rpi(MOBILENET_V1, 72.0, _RPI4), _rpi(MOBILENET_V1, 29.0, _RPI4, "int8"))),
    DeviceProfile("rpi3", "Raspberry Pi 3+ class board (BCM2837B0), low-end; 4 threads on the device",
                  cores=4, threads=4, memory_mb=1024, delegates=CPU_DELEGATES,
                  anchors=(_rpi(MOBILENET_V2, 79.0, _RPI3), _rpi(MOBILENET_V2, 30.0, _RPI3, "int8")),
                  checks=(_rpi(MOBILENET_V1, 114.0, _RPI3), _rpi(MOBILENET_V1, 46.0, _RPI3, "int8"))),
):
    PROFILES.register(_profile.name, _profile)
