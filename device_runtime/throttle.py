"""Watch a worker process: CPU throttle (a kernel CPU quota, else a SIGSTOP/SIGCONT duty cycle) and a memory cap."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from dataclasses import dataclass, field

from device_runtime.cpu_quota import CpuQuota, process_group_members, quota_support
from device_runtime.memory import TreeMemory, kill_tree, tree_memory

DUTY_CYCLE = "duty-cycle SIGSTOP/SIGCONT"
NO_THROTTLE = "none"

MEMORY_CHECK_S = 0.05  # a process-tree reading costs about 1 ms (a browser's PSS about 15): not every period
MEMORY_CHECK_SHARE = 0.05  # at most this share of a core goes to reading memory


def rss_bytes(pid: int) -> int:
    """Current memory of `pid` and every descendant (see `device_runtime.memory`; 0 once it has exited)."""
    return tree_memory(pid).size_bytes


@dataclass
class WorkerMonitor:
    """Runs beside a worker: lets it run `active_fraction` of each `period_s`, kills it above `memory_cap_bytes`.

    The worker must lead its own process group, so runtimes it starts (Node.js, a browser) are
    throttled and killed with it. A fraction of 1.0 means no throttle. The throttle is a kernel CPU quota
    (`fraction` x the worker's CPUs per period, see `device_runtime.cpu_quota`) where this host lets us make
    one, else a stop/continue duty cycle; `mechanism` says which ran. Either slows the worker's wall clock
    for real, so latencies measured inside it include the emulated slowdown.
    """

    pid: int
    active_fraction: float = 1.0
    period_s: float = 0.01  # 10 ms: steadier than 4 ms under host load, and a sample spans 10 periods (harness)
    memory_cap_bytes: int | None = None
    ready_fd: int | None = None  # throttle only once this pipe is readable (the worker is ready, or gone)
    killed_for_memory: bool = False
    throttling: bool = False
    mechanism: str = NO_THROTTLE
    quota_error: str | None = None  # why a usable quota could not be applied to this worker (duty cycle instead)
    peak_rss_seen: int = 0  # of the whole process tree (device_runtime.memory)
    peak_memory: TreeMemory | None = None  # the reading at that peak, per process
    _next_memory_check: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _quota: CpuQuota | None = None

    def start(self) -> None:
        if self.active_fraction < 1.0:
            self.mechanism = throttle_mechanism()
        self._thread = threading.Thread(target=self._loop, name=f"monitor-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._signal(signal.SIGCONT)
        if self._quota is not None:
            self._quota.remove()
            self._quota = None
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
        """Every MEMORY_CHECK_S or less often: the memory of the worker's process tree; above the cap, kill all of it."""
        now = time.monotonic()
        if now < self._next_memory_check:
            return
        memory = tree_memory(self.pid)
        self._next_memory_check = now + max(MEMORY_CHECK_S, (time.monotonic() - now) / MEMORY_CHECK_SHARE)
        if memory.size_bytes > self.peak_rss_seen:
            self.peak_rss_seen, self.peak_memory = memory.size_bytes, memory
        if self.memory_cap_bytes is not None and memory.size_bytes > self.memory_cap_bytes:
            self.killed_for_memory = True
            kill_tree(self.pid)  # a browser's processes lead process groups of their own
            self._stop.set()

    def _apply_quota(self) -> None:
        """Move the worker's process group into a fresh quota group; on failure fall back to the duty cycle."""
        try:
            cpus = len(os.sched_getaffinity(self.pid))
            self._quota = CpuQuota.create(quota_support(), f"{os.getpid()}-{self.pid}", self.active_fraction, cpus,
                                          round(self.period_s * 1e6))
            for pid in process_group_members(self.pid):
                self._quota.add(pid)
        except OSError as exc:
            if self._quota is not None:
                self._quota.remove()
                self._quota = None
            self.quota_error = f"{self.mechanism} failed ({exc}); the duty cycle throttled this worker"
            self.mechanism = DUTY_CYCLE

    def _loop(self) -> None:
        throttled = self.active_fraction < 1.0
        active = self.period_s * self.active_fraction
        idle = self.period_s - active
        waiting = throttled
        while not self._stop.is_set():
            self._check_memory()
            if waiting:
                waiting = not self._ready()
                if not waiting and self.mechanism != DUTY_CYCLE:
                    self._apply_quota()
                continue
            self.throttling = throttled
            if not throttled or self.mechanism != DUTY_CYCLE:
                time.sleep(0.01)
                continue
            time.sleep(active)
            self._signal(signal.SIGSTOP)
            time.sleep(idle)
            self._signal(signal.SIGCONT)


def throttle_mechanism(fraction: float = 0.5) -> str:
    """The mechanism a monitor uses for `fraction`: 'none' at 1.0, the kernel quota where usable, else the duty cycle."""
    if fraction >= 1.0:
        return NO_THROTTLE
    return quota_support().mechanism or DUTY_CYCLE
