"""Toolchain versions recorded in every manifest (read from package metadata, no imports)."""

from __future__ import annotations

import platform
from importlib import metadata

CORE_PACKAGES = ("numpy",)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def toolchain_versions(*packages: str) -> dict[str, str]:
    """Python, the pipeline and each named package that is installed."""
    versions = {"python": platform.python_version(), "edge-model-pipeline": package_version("edge-model-pipeline") or "dev"}
    for name in (*CORE_PACKAGES, *packages):
        version = package_version(name)
        if version is not None:
            versions[name] = version
    return versions
