"""A sweep's progress on a terminal: the finished cells scroll by, a bar below shows the running ones (rich).

Only for an interactive terminal; pipes, CI logs and the app's Run page get `Progress`'s plain lines.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any, TextIO

from pipeline.sweep.runner import Progress

SHOWN_RUNNING = 4  # running cells listed under the bar (a local pool runs one per core)


def live_available() -> bool:
    return importlib.util.find_spec("rich") is not None


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


class LiveProgress(Progress):
    """`Progress` with a live bar: done/total, elapsed, ETA, and each running cell with its elapsed time."""

    def __init__(self, totals: dict[str, int], out: Callable[[str], None], parallel: dict[str, int] | None = None,
                 stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        super().__init__(totals, out, parallel)
        self.console = Console(file=stream, highlight=False)
        self.out = lambda line: self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        # sys.stdout and sys.stderr stay where they are: framework prints go to the log, not above the bar
        self.live = Live(get_renderable=self.render, console=self.console, refresh_per_second=2, transient=True,
                         redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        head = Table.grid(padding=(0, 1))
        elapsed = time.perf_counter() - self.started
        eta = f"  eta ~{_clock(self.eta())}" if self.done else ""
        head.add_row(ProgressBar(total=max(self.total, 1), completed=self.done, width=32),
                     Text(f"{self.done}/{self.total} cells  elapsed {_clock(elapsed)}{eta}"))
        running = self.running_cells()
        lines = [Text(f"  {_clock(seconds):>7}  {phase} {label}", style="dim")
                 for phase, label, seconds in running[:SHOWN_RUNNING]]
        if len(running) > SHOWN_RUNNING:
            lines.append(Text(f"  ... and {len(running) - SHOWN_RUNNING} more running", style="dim"))
        return Group(head, *lines)

    def close(self) -> None:
        self.live.stop()
