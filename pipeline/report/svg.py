"""The report's SVG charts: task metric vs p50 latency, one panel per metric; measured and emulated rows drawn
as different markers."""

from __future__ import annotations

import html
import math

from pipeline.core.manifest import FRACTIONS, format_metric
from pipeline.report.entries import Entry

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



FLAG = "\u26a0"  # the warning sign beside an uncalibrated figure
MARKERS = ("&#9679; measured", "&#9670; emulated (calibrated)",
           "&#9671; emulated, uncalibrated (hollow, red dashed outline)")


def _marker(entry: Entry, x: float, y: float, radius: float, colour: str, on_front: bool, tip: str) -> str:
    """A measured row is a circle, an emulated one a diamond; an uncalibrated one is hollow with a red dashed
    outline. The Pareto front is outlined in black."""
    outline = ' stroke="black" stroke-width="2"' if on_front else ""
    if not entry.kind.startswith("emulated"):
        return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{colour}" fill-opacity="0.6"{outline} '
                f'data-kind="measured"><title>{tip}</title></circle>')
    if entry.flagged:
        style = (f'fill="white" fill-opacity="0.3" stroke="{"black" if on_front else "#d62728"}" stroke-width="2" '
                 'stroke-dasharray="4 2" data-kind="emulated-uncalibrated"')
    else:
        style = f'fill="{colour}" fill-opacity="0.6"{outline} data-kind="emulated"'
    points = f"{x:.1f},{y - radius:.1f} {x + radius:.1f},{y:.1f} {x:.1f},{y + radius:.1f} {x - radius:.1f},{y:.1f}"
    return f'<polygon points="{points}" {style}><title>{tip}</title></polygon>'



def svg_chart(entries: list[Entry], front: set[int], width: int = 640, height: int = 360) -> str:
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
        tip = html.escape(f"{entry.framework} {entry.variant} {entry.target} ({entry.runtime}/{entry.delegate}): "
                          f"p50 {entry.p50_ms:.3f} ms {entry.kind}"
                          f"{' (' + entry.calibration_text + ')' if entry.kind.startswith('emulated') else ''}, "
                          f"{label} {format_metric(label, y)}, {entry.size_bytes:,} B")
        parts.append(_marker(entry, sx(x), sy(y), radius, colours.get(entry.target, "#777"), entry.measurement_id in front, tip))
    parts.append("</svg>")
    return "".join(parts)
