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
