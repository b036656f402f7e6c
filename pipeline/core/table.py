"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned text columns, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str], raw: Sequence[Any]) -> str:
        parts = []
        for i, cell in enumerate(row):
            numeric = isinstance(raw[i], (int, float)) and not isinstance(raw[i], bool)
            parts.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [line(cells[0], headers), "  ".join("-" * w for w in widths)]
    out += [line(cells[i + 1], row) for i, row in enumerate(rows)]
    return "\n".join(out)
