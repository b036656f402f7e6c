"""`pipeline report`: a self-contained HTML report and a Markdown summary from the results store.

Emulated figures carry their row's calibration status (`pipeline.core.emulation`), and the workspace's
calibration.json and calibration-checks.json give the emulation-accuracy table.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.emulation import accuracy_rows, read_calibrations, read_checks
from pipeline.core.manifest import FRACTIONS, TASK_METRICS, format_metric, task_metric, task_of
from pipeline.report.entries import Entry, by_metric, int8_notes, load_entries, pareto_front
from pipeline.report.render import columns, render_html, render_markdown
from pipeline.report.svg import palette_for, runtime_colours, target_colours

__all__ = ["FRACTIONS", "TASK_METRICS", "Entry", "by_metric", "columns", "format_metric", "int8_notes", "load_entries",
           "palette_for", "pareto_front", "render_html", "render_markdown", "runtime_colours", "target_colours",
           "task_metric", "task_of", "write_report"]


def write_report(store_path: Path, out_dir: Path, workspace: Path | None = None) -> list[Path]:
    """Write report.html (self-contained: inline CSS and SVG) and report.md into `out_dir`.

    The emulation-accuracy table comes from `workspace`'s calibration.json and calibration-checks.json (default:
    the store's folder).
    """
    from pipeline.core.files import staged_file

    entries = load_entries(store_path)
    folder = Path(workspace) if workspace is not None else Path(store_path).parent
    accuracy = accuracy_rows(read_calibrations(folder), read_checks(folder))
    paths = []
    for name, text in (("report.html", render_html(entries, accuracy)), ("report.md", render_markdown(entries, accuracy))):
        with staged_file(out_dir / name) as tmp:
            tmp.write_text(text)
        paths.append(out_dir / name)
    return paths
