"""What the two ONNX bridges share: the opset they write, and how a failed step is reported."""

from __future__ import annotations

import re
from typing import Any

from pipeline.core.errors import ExportError

OPSET = 18
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_colours(text: str) -> str:
    """`text` without ANSI colour codes (onnx2tf and torch.onnx colour their messages)."""
    return _ANSI.sub("", text)


def first_line(exc: BaseException, pattern: str = "") -> str:
    """The first informative line of `exc` (or its first line matching `pattern`), without colours."""
    lines = [line.strip() for line in strip_colours(str(exc)).splitlines()]
    lines = [line for line in lines if line and not line.endswith(":") and not line.startswith("File ")]
    chosen = next((line for line in lines if pattern and re.search(pattern, line)), lines[0] if lines else "")
    return (chosen or type(exc).__name__)[:400]


def step_failed(route: str, step: str, where: str, detail: str, fix: str) -> ExportError:
    """The ExportError for one failed bridge step: route, step, op(s) it failed on, detail and fix."""
    return ExportError(f"{route} step {step} failed{where}: {detail}. {fix}")


def on_ops(names: Any) -> str:
    """' on op X' / ' on ops X, Y' for the (deduplicated, non-empty) op names; '' when there are none."""
    ordered = list(dict.fromkeys(n for n in names if n))
    return f" on op{'s' if len(ordered) > 1 else ''} {', '.join(ordered)}" if ordered else ""
