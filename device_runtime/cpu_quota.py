"""A kernel CPU quota for the worker: a child cgroup whose processes may use `fraction` of their CPUs per period.

cgroup v2 (`cpu.max`) or the v1 cpu controller (`cpu.cfs_quota_us`), whichever this process may create a child
cgroup in. `quota_support()` says which, or why neither; `CpuQuota` makes, fills and removes one group.
Setting EDGE_BENCH_CPU_QUOTA=0 turns the quota off (the throttle then falls back to its duty cycle).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_V2 = "cgroup-v2 cpu.max"
CGROUP_V1 = "cgroup-v1 cpu.cfs_quota_us"
QUOTA_ENV = "EDGE_BENCH_CPU_QUOTA"
GROUP_PREFIX = "edge-bench-"


@dataclass(frozen=True)
class QuotaSupport:
    """Where a quota group can be made (`parent`, None when not) and, when not, why."""

    mechanism: str | None
    parent: Path | None
    reason: str


def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fs type, options) of every cgroup mount."""
    rows = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, kind, options, *_ = line.split()
        if kind in ("cgroup", "cgroup2"):
            rows.append((point.replace("\\040", " "), kind, options.split(",")))
    return rows


def _own_groups() -> dict[str, str]:
    """This process's cgroup per controller list ('' for the v2 hierarchy), from /proc/self/cgroup."""
    groups = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        groups[controllers] = path
    return groups


def _probe(parent: Path, quota_file: str, unlimited: str) -> str | None:
    """None when a child group with a writable `quota_file` can be made under `parent`, else why not."""
    probe = parent / f"{GROUP_PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir(exist_ok=True)
        try:
            (probe / quota_file).write_text(unlimited)
        finally:
            probe.rmdir()
    except OSError as exc:
        return f"cannot create a child group with {quota_file} under {parent} ({exc.strerror or exc})"
    return None


def _v2_parent(mounts: list[tuple[str, str, list[str]]], groups: dict[str, str]) -> tuple[Path | None, str]:
    points = [point for point, kind, _ in mounts if kind == "cgroup2"]
    if not points or "" not in groups:
        return None, "no cgroup v2 hierarchy"
    parent = Path(points[0]) / groups[""].lstrip("/")
    controllers = (parent / "cgroup.subtree_control").read_text().split() if (parent / "cgroup.subtree_control").is_file() else []
    if "cpu" not in controllers:
        return None, f"the cgroup v2 cpu controller is not enabled for children of {parent}"
    return parent, ""


def _v1_parent(mounts: list[tuple[str, str, list[str]]], groups: dict[str, str]) -> tuple[Path | None, str]:
    for point, kind, options in mounts:
        if kind == "cgroup" and "cpu" in options:
            own = next((path for controllers, path in groups.items() if "cpu" in controllers.split(",")), None)
            if own is None:
                return None, "this process is in no cgroup v1 cpu group"
            if "rw" not in options:
                return None, f"the cgroup v1 cpu controller at {point} is mounted read-only"
            return Path(point) / own.lstrip("/"), ""
    return None, "no cgroup v1 cpu controller mounted"


@functools.cache
def _detect() -> QuotaSupport:
    try:
        mounts, groups = _mounts(), _own_groups()
    except OSError as exc:
        return QuotaSupport(None, None, f"cannot read the cgroup mounts ({exc})")
    reasons = []
    for mechanism, find, quota_file, unlimited in ((CGROUP_V2, _v2_parent, "cpu.max", "max"),
                                                   (CGROUP_V1, _v1_parent, "cpu.cfs_quota_us", "-1")):
        parent, reason = find(mounts, groups)
        if parent is not None:
            reason = _probe(parent, quota_file, unlimited) or ""
            if not reason:
                return QuotaSupport(mechanism, parent, "")
        reasons.append(reason)
    return QuotaSupport(None, None, "; ".join(reasons))


def quota_support() -> QuotaSupport:
    """Whether a kernel CPU quota can throttle a worker here: the mechanism and parent group, or why not."""
    if os.environ.get(QUOTA_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return QuotaSupport(None, None, f"the kernel quota is turned off ({QUOTA_ENV}=0)")
    return _detect()


def process_group_members(pgid: int) -> list[int]:
    """The processes of process group `pgid` (a worker and the runtimes it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _remove_orphans(parent: Path) -> None:
    """Delete empty groups left by a process that was killed before it could remove them (named after its pid)."""
    for group in parent.glob(f"{GROUP_PREFIX}*-*"):
        owner = group.name[len(GROUP_PREFIX):].split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with contextlib.suppress(OSError):  # still holding a process: not ours to empty
                group.rmdir()


@dataclass
class CpuQuota:
    """A child cgroup allowed `fraction` x `cpus` CPU time per `period_us`; its processes' children stay in it."""

    support: QuotaSupport
    path: Path

    @classmethod
    def create(cls, support: QuotaSupport, name: str, fraction: float, cpus: int, period_us: int) -> CpuQuota:
        """Make the group (OSError when the kernel refuses)."""
        if support.parent is None:
            raise OSError(errno.ENOTSUP, support.reason)
        _remove_orphans(support.parent)
        path = support.parent / f"{GROUP_PREFIX}{name}"
        path.mkdir(exist_ok=True)
        quota_us = max(1000, round(fraction * cpus * period_us))  # the kernel's floor is 1 ms
        try:
            if support.mechanism == CGROUP_V2:
                (path / "cpu.max").write_text(f"{quota_us} {period_us}")
            else:
                (path / "cpu.cfs_period_us").write_text(str(period_us))
                (path / "cpu.cfs_quota_us").write_text(str(quota_us))
        except OSError:
            path.rmdir()
            raise
        return cls(support, path)

    def add(self, pid: int) -> None:
        """Move process `pid` (all its threads) into the group; a process already gone is skipped."""
        try:
            (self.path / "cgroup.procs").write_text(str(pid))
        except ProcessLookupError:
            pass
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise

    def remove(self) -> None:
        """Move any process left back to the parent group and delete the group (best effort, never raises)."""
        assert self.support.parent is not None
        for _ in range(50):
            try:
                for pid in (self.path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.support.parent / "cgroup.procs").write_text(pid)
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)  # a process still exiting keeps the group busy for a moment
