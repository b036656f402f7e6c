"""`pipeline report`: a self-contained HTML report and a Markdown summary from the results store."""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.manifest import (  # noqa: F401  (re-exported)
    FRACTIONS,
    TASK_METRICS,
    format_metric,
    task_metric,
    task_of,
)
from pipeline.results import fetch_exports, fetch_measurements, open_store

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def palette_for(names: list[str]) -> dict[str, str]:
    """A stable colour per name, in the order given (registration order keeps colours fixed as names are added)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def target_colours() -> dict[str, str]:
    """One colour per export target, shared by the report and the app."""
    from exporters import EXPORTERS

    return palette_for(EXPORTERS.in_order())


def runtime_colours() -> dict[str, str]:
    """One colour per runtime, shared by the report and the app."""
    from device_runtime import RUNTIMES

    return palette_for(RUNTIMES.in_order())


# The headline metric of a task when the manifest names none (validation skipped, or written before tasks).
@dataclass(frozen=True)
class Entry:
    """One measured artifact, joined with its export cell and manifest."""

    model: str
    framework: str
    variant: str
    target: str
    runtime: str
    delegate: str
    device: str
    kind: str
    threads: int | None
    p50_ms: float
    p90_ms: float
    size_bytes: int
    size_bytes_gzip: int
    accuracy: float | None
    agreement: float | None
    task: str
    metric: str  # the task metric's label (task_metric): accuracy, agreement, cosine or SQNR dB
    metric_value: float | None
    delegated: str
    warning: str
    versions: str
    artifact_dir: str
    measurement_id: int


def _manifest(artifact_dir: str) -> dict[str, Any]:
    path = Path(artifact_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _bare_model(artifact_dir: str) -> dict[str, Any]:
    """What stands in for the manifest of a model file measured without one (`pipeline bench model.tflite`)."""
    from pipeline.core.files import gzip_size

    path = Path(artifact_dir)
    files = [path] if path.is_file() else [p for p in path.glob("*") if p.is_file()]
    return {"source": {"path": f"{path.parent.name}/{path.name}"}, "size_bytes": sum(p.stat().st_size for p in files),
            "size_bytes_gzip": sum(gzip_size(p) for p in files)}


def load_entries(store_path: Path) -> list[Entry]:
    """Latest ok measurement per (artifact, runtime, delegate, device, threads), joined with its manifest."""
    with open_store(store_path) as store:
        exports = {row["artifact_dir"]: row for row in fetch_exports(store)}
        rows = fetch_measurements(store, status="ok")
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:  # newest first
        latest.setdefault((row["artifact_dir"], row["runtime"], row["delegate_used"], row["device_profile"], row["threads"]), row)
    entries = []
    for row in latest.values():
        # a model file measured without its manifest: no validation, so no accuracy; synthetic inputs say so in kind
        context = json.loads(row["context_json"] or "{}")
        bare, synthetic = "manifest" in context and context["manifest"] is None, context.get("inputs") == "synthetic"
        manifest = _bare_model(row["artifact_dir"]) if bare else _manifest(row["artifact_dir"])
        export = exports.get(row["artifact_dir"], {})
        validation = manifest.get("validation", {})
        delegation = manifest.get("delegation", {})
        source = manifest.get("source", {})
        metric, metric_value = task_metric(manifest)
        stages = "+".join(s["name"] if s["name"] != "quantize" else s["config"]["mode"] for s in manifest.get("stages", []))
        kind = row["kind"] if row["latency_ms_p50"] is not None else f"{row['kind']} (mean only)"
        entries.append(Entry(
            model=export.get("model") or (source["path"] if bare else Path(source.get("path", "?")).stem),
            framework=export.get("framework") or source.get("framework", "?"),
            variant=export.get("variant") or stages or "fp32", target=row["target"], runtime=row["runtime"],
            delegate=row["delegate_used"] or row["delegate_requested"], device=row["device_profile"],
            kind=f"{kind}, synthetic inputs" if synthetic else kind,
            # a device runner that prints only a mean (android_bench.py) is shown by its mean, and says so
            threads=row["threads"], p50_ms=row["latency_ms_p50"] or row["latency_ms_mean"],
            p90_ms=row["latency_ms_p90"] or row["latency_ms_mean"],
            size_bytes=manifest.get("size_bytes", 0), size_bytes_gzip=manifest.get("size_bytes_gzip", 0),
            accuracy=validation.get("artifact_accuracy"), agreement=validation.get("top1_agreement"),
            task=task_of(manifest), metric=metric, metric_value=metric_value,
            delegated=f"{delegation.get('ops_delegated', '?')}/{delegation.get('ops_total', '?')}" if delegation else "-",
            warning=delegation.get("warning", ""),
            versions=", ".join(f"{k} {v}" for k, v in manifest.get("toolchain", {}).items()),
            artifact_dir=row["artifact_dir"], measurement_id=row["id"],
        ))
    return sorted(entries, key=lambda e: (e.model, e.device, e.p50_ms))


def pareto_front(entries: list[Entry]) -> set[int]:
    """Measurement ids not dominated in (lower p50, higher task metric, smaller size).

    Only entries with the same metric compete (an accuracy never dominates a cosine); a missing value loses.
    """
    def score(entry: Entry) -> float:
        return entry.metric_value if entry.metric_value is not None else -math.inf

    def dominates(a: Entry, b: Entry) -> bool:
        if a.metric != b.metric:
            return False
        better_or_equal = a.p50_ms <= b.p50_ms and score(a) >= score(b) and a.size_bytes <= b.size_bytes
        strictly = a.p50_ms < b.p50_ms or score(a) > score(b) or a.size_bytes < b.size_bytes
        return better_or_equal and strictly

    return {e.measurement_id for e in entries if not any(dominates(o, e) for o in entries if o is not e)}


def _groups(entries: list[Entry]) -> dict[tuple[str, str], list[Entry]]:
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[(entry.model, entry.device)].append(entry)
    return dict(groups)


def by_metric(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Entries per task metric label, in order of first appearance: one chart panel each."""
    panels: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        panels[entry.metric].append(entry)
    return dict(panels)


def _svg_chart(entries: list[Entry], front: set[int], width: int = 640, height: int = 360) -> str:
    """One metric's panel: task metric vs p50 latency (log x), marker area ~ size, colour = target; the Pareto
    front is outlined. Entries without a value (a model file measured on synthetic inputs) are in the table only.
    """
    label = entries[0].metric  # by_metric gave this panel one metric
    entries = [e for e in entries if e.metric_value is not None]
    if not entries:
        return f"<p>No {html.escape(label)} to chart: these measurements ran on synthetic inputs or without validation.</p>"
    pad = 50
    xs = [math.log10(max(e.p50_ms, 1e-4)) for e in entries]
    ys = [e.metric_value or 0.0 for e in entries]
    margin = 0.01 if label in (*FRACTIONS, "cosine") else max(0.5, 0.05 * (max(ys) - min(ys)))
    x0, x1 = min(xs) - 0.1, max(xs) + 0.1
    y0, y1 = min(ys) - margin, max(ys) + margin
    if label in (*FRACTIONS, "cosine"):
        y1 = min(1.0, y1)
    biggest = max(e.size_bytes for e in entries) or 1
    colours = target_colours()

    def sx(v: float) -> float:
        return pad + (v - x0) / ((x1 - x0) or 1) * (width - 2 * pad)

    def sy(v: float) -> float:
        return height - pad - (v - y0) / ((y1 - y0) or 1) * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'data-metric="{html.escape(label)}">',
             f'<rect width="{width}" height="{height}" fill="white" stroke="#ccc"/>',
             f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle" font-size="12">p50 latency (ms, log scale)</text>',
             f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle" '
             f'font-size="12">{html.escape(label)}</text>']
    for tick in range(math.floor(x0), math.ceil(x1) + 1):
        if x0 <= tick <= x1:
            parts.append(f'<text x="{sx(tick):.1f}" y="{height - pad + 15}" font-size="10" text-anchor="middle">{10 ** tick:g}</text>')
    for frac in (0, 0.5, 1):
        value = y0 + frac * (y1 - y0)
        parts.append(f'<text x="{pad - 5}" y="{sy(value):.1f}" font-size="10" text-anchor="end">'
                     f'{html.escape(format_metric(label, value))}</text>')
    for entry, x, y in zip(entries, xs, ys, strict=True):
        radius = 4 + 14 * math.sqrt(entry.size_bytes / biggest)
        outline = ' stroke="black" stroke-width="2"' if entry.measurement_id in front else ""
        tip = html.escape(f"{entry.framework} {entry.variant} {entry.target} ({entry.runtime}/{entry.delegate}): "
                          f"p50 {entry.p50_ms:.3f} ms, {label} {format_metric(label, y)}, {entry.size_bytes:,} B")
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius:.1f}" fill="{colours.get(entry.target, "#777")}" '
                     f'fill-opacity="0.6"{outline}><title>{tip}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def columns(group: list[Entry]) -> list[str]:
    """The table's header: the metric column is named by the group's metric (or 'task metric' when they differ)."""
    metrics = {e.metric for e in group}
    metric = metrics.pop() if len(metrics) == 1 else "task metric"
    return ["framework", "variant", "target", "runtime/delegate", "kind", "threads", "p50 ms", "p90 ms", "size B",
            "gzip B", metric, "agreement", "delegated", "Pareto"]


def _cells(entry: Entry, front: set[int], mixed: bool) -> list[str]:
    metric = format_metric(entry.metric, entry.metric_value)
    return [entry.framework, entry.variant, entry.target, f"{entry.runtime}/{entry.delegate}", entry.kind,
            str(entry.threads or "-"), f"{entry.p50_ms:.4f}", f"{entry.p90_ms:.4f}", f"{entry.size_bytes:,}",
            f"{entry.size_bytes_gzip:,}", f"{entry.metric} {metric}" if mixed else metric,
            f"{entry.agreement:.2%}" if entry.agreement is not None else "-", entry.delegated,
            "yes" if entry.measurement_id in front else ""]


def _mixed(group: list[Entry]) -> bool:
    return len({e.metric for e in group}) > 1


def _heading(model: str, device: str, group: list[Entry]) -> str:
    tasks = ", ".join(sorted({e.task for e in group}))
    return f"{model} on {device} ({group[0].kind}; {tasks})"


def render_markdown(entries: list[Entry]) -> str:
    lines = ["# Edge model pipeline report", ""]
    if not entries:
        return "\n".join([*lines, "No successful measurements yet: run `pipeline sweep` or `pipeline bench`."])
    for (model, device), group in _groups(entries).items():
        front, header, mixed = pareto_front(group), columns(group), _mixed(group)
        lines += [f"## {_heading(model, device, group)}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cells(e, front, mixed)) + " |" for e in group]
        warnings = sorted({f"{e.framework} {e.variant} {e.target}: {e.warning}" for e in group if e.warning})
        lines += ["", *(f"- delegation: {w}" for w in warnings), ""]
    lines += ["The metric column is each artifact's task metric from its validation (accuracy for classifiers, "
              "cosine or SQNR dB against the source for other models); the Pareto front compares artifacts of the "
              "same metric only.",
              "Every row traces to a results-store measurement id and the artifact's manifest.json "
              "(versions, seeds, device profile, emulated vs measured)."]
    return "\n".join(lines)


def render_html(entries: list[Entry]) -> str:
    style = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}th{background:#f3f3f3}"
             "tr.pareto td{font-weight:600}.legend span{display:inline-block;margin-right:1em}details{margin:.3em 0}"
             ".panels{display:flex;flex-wrap:wrap;gap:1em}")
    legend = "".join(f'<span style="color:{c}">&#9679; {t}</span>' for t, c in target_colours().items())
    body = [f"<!doctype html><html><head><meta charset='utf-8'><title>Edge model pipeline report</title><style>{style}</style>"
            "</head><body><h1>Edge model pipeline report</h1>"]
    if not entries:
        body.append("<p>No successful measurements yet: run <code>pipeline sweep</code> or <code>pipeline bench</code>.</p>")
    for (model, device), group in _groups(entries).items():
        front, header, mixed = pareto_front(group), columns(group), _mixed(group)
        body.append(f"<h2>{html.escape(_heading(model, device, group))}</h2>")
        body.append(f"<p class='legend'>{legend} &mdash; marker area ~ size; outlined = Pareto front (per metric)</p>")
        body.append("<div class='panels'>" + "".join(_svg_chart(panel, front) for panel in by_metric(group).values()) + "</div>")
        body.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>")
        for entry in group:
            css = " class='pareto'" if entry.measurement_id in front else ""
            body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(entry, front, mixed)) + "</tr>")
        body.append("</table>")
        for entry in group:
            body.append(f"<details><summary>{html.escape(entry.framework)} {html.escape(entry.variant)} "
                        f"{html.escape(entry.target)}: manifest and measurement #{entry.measurement_id}</summary>"
                        f"<p>{html.escape(entry.artifact_dir)}<br>{html.escape(entry.versions)}"
                        f"{'<br><b>' + html.escape(entry.warning) + '</b>' if entry.warning else ''}</p></details>")
    body.append("</body></html>")
    return "\n".join(body)


def write_report(store_path: Path, out_dir: Path) -> list[Path]:
    """Write report.html (self-contained: inline CSS and SVG) and report.md into `out_dir`."""
    from pipeline.core.files import staged_file

    entries = load_entries(store_path)
    paths = []
    for name, text in (("report.html", render_html(entries)), ("report.md", render_markdown(entries))):
        with staged_file(out_dir / name) as tmp:
            tmp.write_text(text)
        paths.append(out_dir / name)
    return paths
