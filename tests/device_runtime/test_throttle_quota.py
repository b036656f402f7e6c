"""The CPU throttle's mechanism: a kernel CPU quota (cgroup) where this host allows one, else the duty cycle."""

import os
import subprocess
import sys
import time

import pytest

from device_runtime.cpu_quota import CGROUP_V1, CGROUP_V2, QUOTA_ENV, process_group_members, quota_support
from device_runtime.throttle import DUTY_CYCLE, NO_THROTTLE, WorkerMonitor, throttle_mechanism

BUSY = [sys.executable, "-c", "while True: pass"]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _members(group) -> list[str]:
    try:
        return (group / "cgroup.procs").read_text().split()
    except FileNotFoundError:
        return []


def _busy_worker() -> subprocess.Popen:
    return subprocess.Popen(BUSY, start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, [0]))


def test_quota_detection_names_a_mechanism_or_says_why_not():
    support = quota_support()
    assert support.mechanism in (CGROUP_V1, CGROUP_V2, None)
    if support.mechanism is None:
        assert support.reason and support.parent is None
    else:
        assert support.parent.is_dir() and support.reason == ""
    assert throttle_mechanism(1.0) == NO_THROTTLE
    assert throttle_mechanism(0.5) == (support.mechanism or DUTY_CYCLE)


def test_quota_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(QUOTA_ENV, "0")
    support = quota_support()
    assert support.mechanism is None and f"{QUOTA_ENV}=0" in support.reason
    assert throttle_mechanism(0.3) == DUTY_CYCLE


def test_process_group_members_finds_the_worker():
    process = _busy_worker()
    try:
        assert process_group_members(process.pid) == [process.pid]
    finally:
        process.kill()
        process.wait()


@pytest.mark.skipif(quota_support().mechanism is None, reason=f"no kernel CPU quota here: {quota_support().reason}")
def test_quota_caps_a_busy_worker_and_its_group_is_removed():
    gone = next(pid for pid in range(4_000_000, 4_100_000) if not os.path.exists(f"/proc/{pid}"))
    orphan = quota_support().parent / f"edge-bench-{gone}-1"  # left by a killed process
    orphan.mkdir()
    process = _busy_worker()
    monitor = WorkerMonitor(process.pid, active_fraction=0.2)
    try:
        monitor.start()
        group = quota_support().parent / f"edge-bench-{os.getpid()}-{process.pid}"
        deadline = time.monotonic() + 5
        while not _members(group) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _members(group) == [str(process.pid)]
        before, started = _cpu_seconds(process.pid), time.monotonic()
        time.sleep(1.5)
        share = (_cpu_seconds(process.pid) - before) / (time.monotonic() - started)
    finally:
        monitor.stop()
        process.kill()
        process.wait()
    assert monitor.mechanism == quota_support().mechanism and monitor.quota_error is None
    assert share < 0.35  # 0.2 of one CPU, with clock-tick slack; unthrottled it would take what the host gives
    assert not group.exists() and not orphan.exists()


def test_duty_cycle_is_the_fallback(monkeypatch):
    monkeypatch.setenv(QUOTA_ENV, "0")
    process = _busy_worker()
    monitor = WorkerMonitor(process.pid, active_fraction=0.2)
    try:
        monitor.start()
        time.sleep(0.2)
    finally:
        monitor.stop()
        process.kill()
        process.wait()
    assert monitor.mechanism == DUTY_CYCLE and monitor._quota is None
