"""The report's Markdown and HTML: per (model, device) a chart, a table whose emulated figures carry their
calibration status, and notes; the emulation-accuracy table at the top."""

from __future__ import annotations

import html
from typing import Any

from pipeline.core.manifest import format_metric
from pipeline.report.entries import Entry, by_metric, groups, pareto_front
from pipeline.report.svg import FLAG, MARKERS, svg_chart, target_colours


def _emulated(group: list[Entry]) -> bool:
    return any(e.kind.startswith("emulated") for e in group)


def columns(group: list[Entry]) -> list[str]:
    """The table's header: the metric column is named by the group's metric (or 'task metric' when they differ)."""
    metrics = {e.metric for e in group}
    metric = metrics.pop() if len(metrics) == 1 else "task metric"
    calibration = ["calibration"] if _emulated(group) else []  # beside the figures it qualifies
    return ["framework", "variant", "target", "runtime/delegate", "kind", "threads", "p50 ms", "p90 ms", *calibration,
            "size B", "gzip B", metric, "agreement", "delegated", "Pareto"]


CALIBRATION_COLUMN = 8  # its index in columns() when the group has emulated rows


def _cells(entry: Entry, front: set[int], mixed: bool, emulated: bool = False) -> list[str]:
    metric = format_metric(entry.metric, entry.metric_value)
    flag = f" {FLAG}" if entry.flagged else ""
    calibration = [entry.calibration_text if entry.kind.startswith("emulated") else "measured"] if emulated else []
    return [entry.framework, entry.variant, entry.target, f"{entry.runtime}/{entry.delegate}", entry.kind,
            str(entry.threads or "-"), f"{entry.p50_ms:.4f}{flag}", f"{entry.p90_ms:.4f}{flag}", *calibration,
            f"{entry.size_bytes:,}", f"{entry.size_bytes_gzip:,}", f"{entry.metric} {metric}" if mixed else metric,
            f"{entry.agreement:.2%}" if entry.agreement is not None else "-", entry.delegated,
            "yes" if entry.measurement_id in front else ""]


def _notes(group: list[Entry]) -> list[str]:
    """The group's delegation and quantization-coverage warnings, why a row is uncalibrated or borrows another
    precision's calibration, and the int8-slower-than-fp32 notes, one line each."""
    warnings = sorted({f"delegation: {e.framework} {e.variant} {e.target}: {e.warning}" for e in group if e.warning})
    warnings += sorted({f"quantization: {e.framework} {e.variant} {e.target}: {e.coverage_warning}"
                        for e in group if e.coverage_warning})
    calibration = sorted({f"calibration {e.device} {e.precision}: {e.calibration_reason}" for e in group
                          if e.kind.startswith("emulated") and e.calibration_reason})
    int8 = sorted({f"{e.framework} {e.variant} {e.target} ({e.runtime}/{e.delegate}): {e.int8_note}"
                   for e in group if e.int8_note})
    return [*warnings, *calibration, *int8]


def _flagged_summary(entries: list[Entry], accuracy: list[dict[str, Any]] | None) -> str:
    flagged = [e for e in entries if e.flagged]
    if not flagged:
        return ""
    pairs = ", ".join(sorted({f"{e.device} {e.precision}" for e in flagged}))
    return (f"{FLAG} {len(flagged)} emulated row(s) are UNCALIBRATED ({pairs}): their throttle missed the published "
            "anchor by more than 10%, or was never calibrated, so their latencies are not a device's. They carry "
            "the 'uncalibrated' badge" + ("; see Emulation accuracy." if accuracy else "."))


ACCURACY_COLUMNS = ["profile", "precision", "point", "model", "runtime", "published ms", "emulated ms", "error", "status"]


def _accuracy_cells(row: dict[str, Any]) -> list[str]:
    def ms(value: Any) -> str:
        return f"{value:g}" if isinstance(value, int | float) else "-"

    error = f"{row['error']:+.1%}" if isinstance(row["error"], int | float) else "-"
    return [row["profile"], row["precision"], row["point"], row["model"], row["runtime"], ms(row["published_ms"]),
            ms(row["emulated_ms"]), error, row["status"]]


ACCURACY_NOTE = ("Anchor: the published point the throttle was calibrated on (its error is what calibration "
                 "left); check: an independent published point run under that calibration (its error is the "
                 "emulation's error on another model). Calibrated within 10%; beyond that a profile's rows carry the "
                 "'uncalibrated' badge.")


def _mixed(group: list[Entry]) -> bool:
    return len({e.metric for e in group}) > 1


def _heading(model: str, device: str, group: list[Entry]) -> str:
    tasks = ", ".join(sorted({e.task for e in group}))
    badge = f" {FLAG} UNCALIBRATED emulation" if any(e.flagged for e in group) else ""
    return f"{model} on {device} ({group[0].kind}; {tasks}){badge}"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(entries: list[Entry], accuracy: list[dict[str, Any]] | None = None) -> str:
    lines = ["# Edge model pipeline report", ""]
    if _flagged_summary(entries, accuracy):
        lines += [f"**{_flagged_summary(entries, accuracy)}**", ""]
    if accuracy:
        lines += ["## Emulation accuracy", "", "| " + " | ".join(ACCURACY_COLUMNS) + " |", "|" + "---|" * len(ACCURACY_COLUMNS)]
        lines += ["| " + " | ".join(_markdown_cell(c) for c in _accuracy_cells(r)) + " |" for r in accuracy]
        lines += ["", ACCURACY_NOTE, ""]
    if not entries:
        return "\n".join([*lines, "No successful measurements yet: run `pipeline sweep` or `pipeline bench`."])
    for (model, device), group in groups(entries).items():
        front, header, mixed, emulated = pareto_front(group), columns(group), _mixed(group), _emulated(group)
        lines += [f"## {_heading(model, device, group)}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for entry in group:
            cells = [_markdown_cell(c) for c in _cells(entry, front, mixed, emulated)]
            if emulated and entry.flagged:
                cells[CALIBRATION_COLUMN] = f"**{FLAG} {cells[CALIBRATION_COLUMN]}**"
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *(f"- {note}" for note in _notes(group)), ""]
    lines += ["The metric column is each artifact's task metric from its validation (accuracy for classifiers, "
              "cosine or SQNR dB against the source for other models); the Pareto front compares artifacts of the "
              "same metric only.",
              "An emulated figure is this host's, throttled to the device's calibrated speed: its calibration column "
              f"gives the status and the anchor's error; {FLAG} marks figures whose calibration missed by more than 10%.",
              "Every row traces to a results-store measurement id and the artifact's manifest.json "
              "(versions, seeds, device profile, emulated vs measured)."]
    return "\n".join(lines)


def _accuracy_html(accuracy: list[dict[str, Any]]) -> list[str]:
    rows = [f"<tr{' class=flagged' if r['flagged'] else ''}>" + "".join(f"<td>{html.escape(c)}</td>"
                                                                       for c in _accuracy_cells(r)) + "</tr>"
            for r in accuracy]
    return ["<h2 id='emulation-accuracy'>Emulation accuracy</h2>", "<table class='accuracy'><tr>"
            + "".join(f"<th>{c}</th>" for c in ACCURACY_COLUMNS) + "</tr>", *rows, "</table>",
            f"<p>{html.escape(ACCURACY_NOTE)}</p>"]


def _html_row(entry: Entry, front: set[int], mixed: bool, emulated: bool) -> str:
    cells = [html.escape(c) for c in _cells(entry, front, mixed, emulated)]
    if emulated and entry.flagged:
        cells[CALIBRATION_COLUMN] = f"<span class='badge'>uncalibrated</span> {cells[CALIBRATION_COLUMN]}"
    css = " ".join(name for name, on in (("pareto", entry.measurement_id in front), ("flagged", entry.flagged)) if on)
    return f"<tr{f' class={chr(39)}{css}{chr(39)}' if css else ''}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_html(entries: list[Entry], accuracy: list[dict[str, Any]] | None = None) -> str:
    style = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}th{background:#f3f3f3}"
             "tr.pareto td{font-weight:600}.legend span{display:inline-block;margin-right:1em}details{margin:.3em 0}"
             ".panels{display:flex;flex-wrap:wrap;gap:1em}tr.flagged td{background:#fdecea}"
             ".badge{background:#b71c1c;color:white;border-radius:3px;padding:0 4px;font-weight:600}"
             ".banner{border:2px solid #b71c1c;background:#fdecea;padding:.6em;font-weight:600}.notes li{margin:.2em 0}")
    legend = "".join(f'<span style="color:{c}">&#9679; {t}</span>' for t, c in target_colours().items())
    body = [f"<!doctype html><html><head><meta charset='utf-8'><title>Edge model pipeline report</title><style>{style}</style>"
            "</head><body><h1>Edge model pipeline report</h1>"]
    if _flagged_summary(entries, accuracy):
        body.append(f"<p class='banner'>{html.escape(_flagged_summary(entries, accuracy))}</p>")
    if accuracy:
        body += _accuracy_html(accuracy)
    if not entries:
        body.append("<p>No successful measurements yet: run <code>pipeline sweep</code> or <code>pipeline bench</code>.</p>")
    for (model, device), group in groups(entries).items():
        front, header, mixed, emulated = pareto_front(group), columns(group), _mixed(group), _emulated(group)
        heading = html.escape(_heading(model, device, group)).replace(
            f"{FLAG} UNCALIBRATED emulation", "<span class='badge'>uncalibrated</span>")
        body.append(f"<h2>{heading}</h2>")
        body.append(f"<p class='legend'>{legend} &mdash; marker area ~ size; outlined = Pareto front (per metric); "
                    f"marker: {'; '.join(MARKERS)}</p>")
        body.append("<div class='panels'>" + "".join(svg_chart(panel, front) for panel in by_metric(group).values()) + "</div>")
        body.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>")
        body += [_html_row(entry, front, mixed, emulated) for entry in group]
        body.append("</table>")
        notes = [n for n in _notes(group) if not n.startswith("delegation: ")]
        if notes:
            body.append("<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
        for entry in group:
            body.append(f"<details><summary>{html.escape(entry.framework)} {html.escape(entry.variant)} "
                        f"{html.escape(entry.target)}: manifest and measurement #{entry.measurement_id}</summary>"
                        f"<p>{html.escape(entry.artifact_dir)}<br>{html.escape(entry.versions)}"
                        f"{'<br><b>' + html.escape(entry.warning) + '</b>' if entry.warning else ''}</p></details>")
    body.append("</body></html>")
    return "\n".join(body)
