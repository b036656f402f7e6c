"""Memory of a worker's whole process tree: the worker, the Node.js runner it starts, a browser's processes.

Ordinary processes count their resident set (RSS). A browser counts the proportional set (PSS: pages its
processes share are split among them, so counted once) of its renderer and GPU processes, where the page's
JavaScript, wasm memory and GPU buffers live; its other processes (the browser process, zygotes, utilities)
are listed but not counted. Linux /proc only; a process that exits while it is read counts 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
BROWSER_COUNTED = ("renderer", "gpu-process")
BROWSER_NAMES = ("chromium", "chrome", "headless_shell")


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 once it has exited)."""
    try:
        return int(_read(f"/proc/{pid}/statm").split()[1]) * PAGE
    except (IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process (0 once it has exited)."""
    for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _children(pid: int) -> list[int] | None:
    """Direct children of `pid` from /proc/PID/task/*/children; None where the kernel does not list them."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    if not os.path.exists(f"/proc/{pid}/task/{tasks[0] if tasks else pid}/children"):
        return None
    return [int(child) for task in tasks for child in _read(f"/proc/{pid}/task/{task}/children").split()]


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_read(f"/proc/{entry.name}/stat").rsplit(")", 1)[1].split()[1])
            except (IndexError, ValueError):
                continue
    return parents


def process_tree(root: int) -> list[int]:
    """`root` and every descendant (a daemonized grandchild that left the tree is not followed)."""
    tree, frontier = [root], [root]
    parents: dict[int, int] | None = None
    while frontier:
        found = []
        for pid in frontier:
            children = _children(pid)
            if children is None:  # no children lists in this kernel: one scan of /proc/*/stat
                parents = parents if parents is not None else _parents()
                children = [child for child, parent in parents.items() if parent == pid]
            found += [child for child in children if child not in tree]
        tree += found
        frontier = found
    return tree


def browser_role(pid: int) -> str | None:
    """'browser', 'renderer', 'gpu-process', 'zygote', 'utility'... for a Chromium process; None otherwise."""
    argv = _read(f"/proc/{pid}/cmdline").replace("\0", " ").split()  # a zygote's children rewrite theirs, space-joined
    if not argv or not any(name in Path(argv[0]).name for name in BROWSER_NAMES):
        return None
    return next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--type=")), "browser")


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    label: str  # the command name, or 'chromium <role>'
    size_bytes: int
    counted: bool  # whether it counts against a memory cap
    measure: str  # 'RSS' or 'PSS'


@dataclass(frozen=True)
class TreeMemory:
    """One reading of a process tree; `size_bytes` is what counts against a cap."""

    processes: tuple[ProcessMemory, ...]

    @property
    def size_bytes(self) -> int:
        return sum(p.size_bytes for p in self.processes if p.counted)

    def by_label(self) -> dict[str, int]:
        """Counted bytes per kind of process ('python3.11', 'node', 'chromium renderer (PSS)', ...)."""
        totals: dict[str, int] = {}
        for p in self.processes:
            if p.counted:
                key = f"{p.label} (PSS)" if p.measure == "PSS" else p.label
                totals[key] = totals.get(key, 0) + p.size_bytes
        return totals

    def describe(self) -> str:
        """'python3.11 310 MiB + node 95 MiB' (largest first)."""
        parts = sorted(self.by_label().items(), key=lambda item: -item[1])
        return " + ".join(f"{label} {size / 2**20:.0f} MiB" for label, size in parts) or "nothing"


def _reading(pid: int) -> ProcessMemory:
    role = browser_role(pid)
    if role is None:
        return ProcessMemory(pid, _read(f"/proc/{pid}/comm").strip() or str(pid), rss_bytes(pid), True, "RSS")
    counted = role in BROWSER_COUNTED
    return ProcessMemory(pid, f"chromium {role}", pss_bytes(pid) if counted else rss_bytes(pid), counted,
                         "PSS" if counted else "RSS")


def tree_memory(root: int) -> TreeMemory:
    """The memory of `root` and its descendants now (RSS, and PSS for a browser's renderer and GPU processes)."""
    return TreeMemory(tuple(_reading(pid) for pid in process_tree(root)))


def browser_pss_bytes(root: int | None = None) -> int | None:
    """PSS of the browser renderer and GPU processes below `root` (this process by default); None when there are none."""
    readings = [p for p in tree_memory(root or os.getpid()).processes if p.measure == "PSS"]
    return sum(p.size_bytes for p in readings) or None


def kill_tree(root: int) -> None:
    """SIGKILL `root`, its process group and every descendant (a browser starts process groups of its own)."""
    pids = process_tree(root)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(root, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
