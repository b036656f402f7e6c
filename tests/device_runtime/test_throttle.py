"""The worker monitor: the duty-cycle throttle waits for the worker's ready signal."""

import os
import subprocess
import sys
import time

from device_runtime.throttle import WorkerMonitor


def _wait_for(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_throttle_starts_only_once_the_worker_is_ready():
    read_end, write_end = os.pipe()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    monitor = WorkerMonitor(process.pid, active_fraction=0.5, ready_fd=read_end)
    try:
        monitor.start()
        time.sleep(0.3)
        assert not monitor.throttling  # still importing: runs at full speed
        os.write(write_end, b"1")
        assert _wait_for(lambda: monitor.throttling)
    finally:
        monitor.stop()
        os.close(write_end)
        process.kill()
        process.wait()
    assert monitor.ready_fd is None  # the monitor closed its end


def test_unthrottled_monitor_needs_no_ready_signal():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    monitor = WorkerMonitor(process.pid)
    try:
        monitor.start()
        assert _wait_for(lambda: monitor.peak_rss_seen > 0)
        assert not monitor.throttling
    finally:
        monitor.stop()
        process.kill()
        process.wait()


def test_memory_cap_covers_the_workers_children_and_kills_them_all():
    """A worker of a few MiB whose child (in a process group of its own, like a browser) holds 200 MiB."""
    import dataclasses

    from device_runtime.harness import memory_cap_error
    from device_runtime.profiles import PROFILES

    child = "import time; block = b'x' * (200 * 2**20); time.sleep(60)"
    parent = (f"import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', {child!r}], "
              "start_new_session=True); print(c.pid, flush=True); time.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    child_pid = int(process.stdout.readline())
    monitor = WorkerMonitor(process.pid, memory_cap_bytes=120 * 2**20)
    try:
        monitor.start()
        assert _wait_for(lambda: monitor.killed_for_memory, seconds=20)
        assert _wait_for(lambda: not os.path.exists(f"/proc/{child_pid}") or _state(child_pid) == "Z")
    finally:
        monitor.stop()
        process.kill()
        process.wait()
    assert monitor.peak_rss_seen > 120 * 2**20 and monitor.peak_memory.size_bytes == monitor.peak_rss_seen
    profile = dataclasses.replace(PROFILES.get("rpi3"), name="small", memory_mb=120)
    error = memory_cap_error(profile, monitor.peak_memory)
    assert error.startswith("worker killed by the 120 MiB memory cap of profile small")
    assert f"reached {monitor.peak_rss_seen / 2**20:.0f} MiB" in error and "python" in error


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


def test_tree_memory_counts_a_browsers_renderer_and_gpu_by_pss():
    from device_runtime.memory import ProcessMemory, TreeMemory

    reading = TreeMemory((ProcessMemory(1, "python3.11", 300 * 2**20, True, "RSS"),
                          ProcessMemory(2, "chromium renderer", 100 * 2**20, True, "PSS"),
                          ProcessMemory(3, "chromium browser", 150 * 2**20, False, "RSS")))
    assert reading.size_bytes == 400 * 2**20
    assert reading.describe() == "python3.11 300 MiB + chromium renderer (PSS) 100 MiB"
