"""Watch a worker process: duty-cycle CPU throttle (SIGSTOP/SIGCONT) and a resident-memory cap."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from dataclasses import dataclass, field

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """Current resident set size of `pid` (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return 0


@dataclass
class WorkerMonitor:
    """Runs beside a worker: lets it run `active_fraction` of each `period_s`, kills it above `memory_cap_bytes`.

    The worker must lead its own process group, so runtimes it starts (Node.js, a browser) are
    stopped and killed with it. A fraction of 1.0 means no throttle. The stop/continue cycle slows the worker's wall clock
    for real, so latencies measured inside it include the emulated slowdown.
    """

    pid: int
    active_fraction: float = 1.0
    period_s: float = 0.004
    memory_cap_bytes: int | None = None
    ready_fd: int | None = None  # throttle only once this pipe is readable (the worker is ready, or gone)
    killed_for_memory: bool = False
    throttling: bool = False
    peak_rss_seen: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"monitor-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._signal(signal.SIGCONT)
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None

    def _ready(self) -> bool:
        if self.ready_fd is None:
            return True
        readable, _, _ = select.select([self.ready_fd], [], [], 0.01)
        return bool(readable)

    def _signal(self, sig: int) -> None:
        """Signal the worker's whole process group (it leads its own session), children included."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            self._stop.set()

    def _check_memory(self) -> None:
        rss = rss_bytes(self.pid)
        self.peak_rss_seen = max(self.peak_rss_seen, rss)
        if self.memory_cap_bytes is not None and rss > self.memory_cap_bytes:
            self.killed_for_memory = True
            self._signal(signal.SIGKILL)
            self._stop.set()

    def _loop(self) -> None:
        throttled = self.active_fraction < 1.0
        active = self.period_s * self.active_fraction
        idle = self.period_s - active
        waiting = throttled
        while not self._stop.is_set():
            self._check_memory()
            if waiting:
                waiting = not self._ready()
                continue
            self.throttling = throttled
            if not throttled:
                time.sleep(0.01)
                continue
            time.sleep(active)
            self._signal(signal.SIGSTOP)
            time.sleep(idle)
            self._signal(signal.SIGCONT)
