"""The optimize report: the pick, the Pareto front, every candidate with its verdict, and what was not tried."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from pipeline.core.files import staged_file
from pipeline.core.table import format_table

COLUMNS = ["candidate", "round", "size MB", "p50 ms", "points lost", "verdict"]


REASON_CHARS = 110  # of a verdict in a table cell (the JSON holds it whole)


def _short(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 3].rstrip() + "..."


def _row(candidate: dict[str, Any], front: set[str], pick: str | None) -> list[str]:
    size = f"{candidate['size_bytes'] / 1e6:.3f}" if candidate.get("size_bytes") is not None else "-"
    p50 = f"{candidate['p50_ms']:.3g}" if candidate.get("p50_ms") is not None else "-"
    drop = f"{candidate['drop_points']:.2f}" if candidate.get("drop_points") is not None else "-"
    marks = ("PICK " if candidate["key"] == pick else "") + ("front " if candidate["key"] in front else "")
    verdict = "within budget" if candidate["within_budget"] else _short(candidate["reason"] or candidate["status"])
    return [candidate["label"], str(candidate["round"]), size, p50, drop, (marks + verdict).strip()]


def candidate_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per candidate tried, in the order tried, marked PICK / front."""
    pick = (result.get("pick") or {}).get("key")
    return [_row(c, set(result["front"]), pick) for c in result["candidates"]]


def headline(result: dict[str, Any]) -> str:
    """'pick: tflite int8 (0.112 MB, loses 0.40 pts) ...' or why there is none."""
    request, pick = result["request"], result.get("pick")
    budget = f"{request['max_drop_points']:g}-point budget"
    if pick is None:
        return (f"No candidate holds the {budget} on {request['device']} (objective {request['objective']}); "
                "the float export is the answer, or loosen the budget.")
    value = (f"{pick['size_bytes'] / 1e6:.3f} MB" if request["objective"] == "size" else f"p50 {pick['p50_ms']:.3g} ms")
    return (f"pick: {pick['label']} ({value}, loses {pick['drop_points']:.2f} pts; {budget}, objective "
            f"{request['objective']}, device {request['device']}): {pick['artifact_dir']}/manifest.json")


def render_markdown(result: dict[str, Any]) -> str:
    request = result["request"]
    lines = [f"# Optimize {request['model']} ({request['framework'] or 'user'}) for {request['device']}", "",
             headline(result), "",
             f"{len(result['candidates'])} candidates in {len(result['rounds'])} rounds, {result['seconds']:.0f} s. "
             "Points lost: accuracy points where labels exist, else 100 x (1 - top-1 agreement), "
             "100 x (1 - mean cosine) or 100 x relative L2, worst output.", "", "## Candidates", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in candidate_rows(result)]
    if result["skipped"]:
        lines += ["", "## Not tried", ""]
        lines += [f"- {s['label']}: {s['reason']}" for s in result["skipped"]]
    return "\n".join(lines) + "\n"


def svg_front(result: dict[str, Any], width: int = 560, height: int = 300) -> str:
    """Objective (x, log scale) against points lost (y) for every scored candidate; the front joined."""
    objective = result["request"]["objective"]
    field = "size_bytes" if objective == "size" else "p50_ms"
    points = [c for c in result["candidates"] if c.get(field) and c.get("drop_points") is not None]
    if not points:
        return ""
    xs = [math.log10(c[field]) for c in points]
    ys = [c["drop_points"] for c in points]
    x0, x1 = min(xs), max(xs) + 1e-9
    y0, y1 = min(0.0, min(ys)), max(max(ys), result["request"]["max_drop_points"]) * 1.1 + 1e-9
    pad = 40

    def at(c: dict[str, Any]) -> tuple[float, float]:
        x = pad + (math.log10(c[field]) - x0) / (x1 - x0) * (width - 2 * pad)
        return x, height - pad - (c["drop_points"] - y0) / (y1 - y0) * (height - 2 * pad)

    budget_y = height - pad - (result["request"]["max_drop_points"] - y0) / (y1 - y0) * (height - 2 * pad)
    front = [c for key in result["front"] for c in points if c["key"] == key]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="{pad}" x2="{width - pad}" y1="{budget_y:.1f}" y2="{budget_y:.1f}" stroke="#c33" '
             'stroke-dasharray="4 3"><title>budget</title></line>']
    if len(front) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(at, front))
        parts.append(f'<polyline points="{path}" fill="none" stroke="#888"/>')
    pick = (result.get("pick") or {}).get("key")
    for c in points:
        x, y = at(c)
        colour = "#1a7f37" if c["within_budget"] else "#999"
        tip = html.escape(f"{c['label']}: {c[field]:.4g} {'bytes' if objective == 'size' else 'ms'}, "
                          f"{c['drop_points']:.2f} pts")
        radius = 7 if c["key"] == pick else 4
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}"><title>{tip}</title></circle>')
    label = "size (log)" if objective == "size" else "p50 latency (log)"
    parts += [f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle" font-size="12">{label}</text>',
              f'<text x="12" y="{height / 2}" font-size="12" transform="rotate(-90 12 {height / 2})" '
              'text-anchor="middle">points lost</text>', "</svg>"]
    return "".join(parts)


def render_html(result: dict[str, Any]) -> str:
    request = result["request"]
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                   for row in candidate_rows(result))
    skipped = "".join(f"<li>{html.escape(s['label'])}: {html.escape(s['reason'])}</li>" for s in result["skipped"])
    title = html.escape(f"Optimize {request['model']} for {request['device']}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<h1>{title}</h1><p>{html.escape(headline(result))}</p>{svg_front(result)}"
            "<table border='1' cellspacing='0' cellpadding='4'><tr>"
            + "".join(f"<th>{c}</th>" for c in COLUMNS) + f"</tr>{rows}</table>"
            + (f"<h2>Not tried</h2><ul>{skipped}</ul>" if skipped else "") + "</body></html>")


def format_result(result: dict[str, Any]) -> str:
    """The terminal summary: every candidate, then the pick."""
    return format_table(COLUMNS, candidate_rows(result)) + "\n" + headline(result)


def write_optimize_report(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """report.md and report.html for one search, in `out_dir`."""
    paths = {out_dir / "report.md": render_markdown(result), out_dir / "report.html": render_html(result)}
    for path, text in paths.items():
        with staged_file(path) as tmp:
            tmp.write_text(text)
    return list(paths)
