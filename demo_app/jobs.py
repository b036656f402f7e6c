"""Background `python -m pipeline ...` jobs for the Run page: each step a subprocess, output to a log file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from demo_app.config import Workspace

PROGRESS = re.compile(r"\[\s*(\d+)/(\d+)\]")


def pipeline_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]


def export_commands(workspace: Workspace, model: Path, target: str, quantize: str, out: Path,
                    delegate: str | None = None, bench: bool = True) -> list[list[str]]:
    """`pipeline export` (and, by default, `pipeline bench` of the new artifact so it shows in Compare)."""
    export = pipeline_command("export", str(model), "--target", target, "--quantize", quantize, "--out", str(out))
    steps = [export + (["--delegate", delegate] if delegate else [])]
    return steps + ([bench_command(workspace, [out])] if bench else [])


def bench_command(workspace: Workspace, artifacts: Sequence[Path], runtime: str | None = None,
                  delegate: str | None = None, device: str = "host", min_runs: int = 100,
                  min_seconds: float = 2.0) -> list[str]:
    command = pipeline_command("bench", *map(str, artifacts), "--device", device, "--min-runs", str(min_runs),
                               "--min-seconds", str(min_seconds), "--store", str(workspace.store),
                               "--workspace", str(workspace.root))
    return command + (["--runtime", runtime] if runtime else []) + (["--delegate", delegate] if delegate else [])


def sweep_command(workspace: Workspace) -> list[str]:
    return pipeline_command("sweep", "--workspace", str(workspace.root), "--store", str(workspace.store))


def optimize_command(workspace: Workspace, model: str, device: str, max_drop_points: float, objective: str,
                     targets: Sequence[str] = (), framework: str | None = None) -> list[str]:
    """`pipeline optimize`: `model` a zoo name (with `framework`) or a model file; no targets: every route."""
    command = pipeline_command("optimize", model, *(["--framework", framework] if framework else []),
                               "--device", device, "--max-accuracy-drop", str(float(max_drop_points)),
                               "--objective", objective, "--workspace", str(workspace.root),
                               "--store", str(workspace.store))
    return command + (["--targets", ",".join(targets)] if targets else [])


@dataclass
class Job:
    """Steps run one after another in a daemon thread; stops at the first failing step."""

    title: str
    steps: list[list[str]]
    log: Path
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: float = field(default_factory=time.time)
    finished: float | None = None
    returncode: int | None = None
    step: int = 0
    _process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def progress(self) -> float | None:
        """Fraction done: a sweep's last `[i/n]` line, else finished steps / steps (None while a lone step runs)."""
        found = PROGRESS.findall(self.tail(50))
        if found:
            done, total = map(int, found[-1])
            return min(done / max(total, 1), 1.0)
        if not self.running:
            return 1.0
        return self.step / len(self.steps) if len(self.steps) > 1 else None

    def _run(self, cwd: Path) -> None:
        code = 0
        with self.log.open("ab") as out:
            for index, command in enumerate(self.steps):
                self.step = index
                out.write(f"$ python {' '.join(command[1:])}\n".encode())
                out.flush()
                try:
                    self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                                     stdin=subprocess.DEVNULL, start_new_session=True)
                    code = self._process.wait()
                except OSError as exc:
                    out.write(f"could not start: {exc}\n".encode())
                    code = 127
                if code != 0:
                    break
            out.write(f"[exit {code}]\n".encode())
        self.step = len(self.steps) if code == 0 else self.step
        self.returncode, self.finished = code, time.time()

    def start(self, cwd: Path) -> Job:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self._run, args=(cwd,), name=f"app-job-{self.id}", daemon=True).start()
        return self

    def cancel(self) -> None:
        """Stop the running step (its own process group, so a benchmark worker goes too)."""
        process = self._process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)


class JobBoard:
    """The jobs this app server started, newest first (one board per server process)."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self._lock = threading.Lock()

    def start(self, workspace: Workspace, title: str, steps: list[list[str]]) -> Job:
        job = Job(title, steps, log=Path())
        job.log = workspace.jobs / f"{time.strftime('%Y%m%d-%H%M%S')}-{job.id}.log"
        with self._lock:
            self.jobs.insert(0, job)
        return job.start(Path.cwd())

    def running(self) -> list[Job]:
        return [job for job in self.jobs if job.running]
