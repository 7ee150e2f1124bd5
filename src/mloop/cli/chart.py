"""A metric's history as a small terminal chart, drawn with Unicode block characters
(no plotting dependency): one column per step range, filled up to the value in eighths
of a row, with the value axis on the left and the step range below."""

from __future__ import annotations

import math
from collections.abc import Sequence

_EIGHTHS = " ▁▂▃▄▅▆▇█"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def columns(values: Sequence[float], width: int) -> list[float]:
    """``values`` cut into at most ``width`` consecutive groups, each shown by its mean."""
    if len(values) <= width:
        return list(values)
    out = []
    for i in range(width):
        group = values[i * len(values) // width:(i + 1) * len(values) // width]
        out.append(sum(group) / len(group))
    return out


def draw(steps: Sequence[int], values: Sequence[float], *, width: int = 60,
         height: int = 8) -> list[str]:
    """The chart's lines for points ``(steps[i], values[i])`` ordered by step; NaN and
    infinite values are left out (the caller says how many). Needs one finite value."""
    finite = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
    if not finite:
        raise ValueError("no finite value to draw")
    shown = columns([v for _, v in finite], width)
    low, high = min(v for _, v in finite), max(v for _, v in finite)
    span = high - low
    # a flat line sits in the middle instead of filling or emptying the chart
    levels = [height * 4 if span == 0 else min(height * 8, max(1, round(
        (v - low) / span * (height * 8 - 1)) + 1)) for v in shown]
    top, bottom = _fmt(high), _fmt(low)
    pad = max(len(top), len(bottom))
    lines = []
    for row in range(height - 1, -1, -1):
        cells = "".join(_EIGHTHS[max(0, min(8, level - row * 8))] for level in levels)
        label = top if row == height - 1 else bottom if row == 0 else ""
        lines.append(f"{label:>{pad}} ┤{cells}")
    first, last = str(finite[0][0]), str(finite[-1][0])
    axis = f"{'':>{pad}} └{'─' * len(levels)}"
    gap = max(1, len(levels) - len(first) - len(last))
    lines.append(axis)
    under = first if first == last else f"{first}{' ' * gap}{last}"
    lines.append(f"{'':>{pad}}  {under}  (step)")
    return lines
