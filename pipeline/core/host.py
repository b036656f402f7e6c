"""What this host's CPU offers for int8 inference: the instructions that decide whether int8 beats float.

XNNPACK's int8 kernels are fast where the CPU has an int8 dot product (x86: AVX-512 VNNI, AVX-VNNI, AMX;
Arm: dotprod, i8mm). Without one (x86 with only AVX2), int8 convolutions can run slower than float ones,
while the phones and boards being emulated have them.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

# flag in /proc/cpuinfo -> what it is called
INT8_DOT_PRODUCT = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8",
                    "asimddp": "dotprod", "i8mm": "i8mm"}
VECTOR = {"avx2": "AVX2", "avx512f": "AVX-512F", "asimd": "NEON", "sve": "SVE"}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def int8_features() -> dict[str, object]:
    """{'machine', 'vector': [...], 'int8_dot_product': [...], 'has_int8_dot_product': bool}."""
    flags = cpu_flags()
    dot = [name for flag, name in INT8_DOT_PRODUCT.items() if flag in flags]
    return {"machine": platform.machine(), "vector": [name for flag, name in VECTOR.items() if flag in flags],
            "int8_dot_product": dot, "has_int8_dot_product": bool(dot)}


def describe_int8_features() -> str:
    """One line, e.g. 'x86_64: AVX2, AVX-512F; int8 dot product: AVX-512 VNNI'."""
    features = int8_features()
    dot = ", ".join(features["int8_dot_product"]) or "none (int8 kernels may be slower than float here)"  # type: ignore[arg-type]
    return f"{features['machine']}: {', '.join(features['vector']) or 'no wide vectors'}; int8 dot product: {dot}"  # type: ignore[arg-type]
