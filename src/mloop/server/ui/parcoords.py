"""Parallel coordinates drawn on the server as inline SVG: one vertical axis per field, one
polyline per item (a run) crossing every axis at its value.

The compare page shows a run's params against a metric this way: no script, every label
escaped, each line a link with its label as a tooltip. A numeric axis runs from its
smallest value (bottom) to its largest (top); an axis whose values are not all numbers
places its distinct values evenly, sorted. A positive axis spanning more than two decades
is logarithmic. A line with no value for a field crosses that axis just below it, at
"none", so every line stays whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from mloop.server.ui.svg import PALETTE, axis_number

AXIS_GAP = 150  # px between axes
TOP, BOTTOM, SIDE = 34, 46, 60  # px of margin: axis labels above, "none" and ticks below
MISSING = -0.12  # where a line without a value crosses an axis: just below its bottom
LOG_SPAN = 100  # a positive axis whose largest value is this many times its smallest is
# drawn on a log scale (C = 0.01, 1, 100 would otherwise crowd at the bottom)
LABEL_CHARS = 22  # an axis label longer than this is cut (the whole one is its tooltip)
MAX_CATEGORIES = 20  # a text axis shows at most this many tick labels


@dataclass(frozen=True)
class Axis:
    """One vertical axis: its label and the value of every line on it (``None``: none)."""

    label: str
    values: Sequence[float | str | None]


@dataclass(frozen=True)
class Line:
    """One polyline: its label (legend, tooltip) and where it links to, if anywhere."""

    label: str
    href: str | None = None


def _number(value: float | str | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _cut(text: str, size: int = LABEL_CHARS) -> str:
    return text if len(text) <= size else text[:size - 1] + "…"


@dataclass(frozen=True)
class _Scale:
    """Where each value of one axis sits, as a share of the axis's height (0 = bottom)."""

    positions: list[float]  # MISSING for a line without a value
    ticks: list[tuple[float, str]]  # (share, label)
    log: bool = False


def _scale(axis: Axis) -> _Scale:
    present = [v for v in axis.values if v is not None and v != ""]
    numbers = [_number(v) for v in present]
    if present and all(n is not None for n in numbers):
        finite = [n for n in numbers if n is not None]
        low, high = min(finite), max(finite)
        log = low > 0 and high / low >= LOG_SPAN
        lo, hi = (math.log10(low), math.log10(high)) if log else (low, high)

        def share(value: float | str | None) -> float:
            n = _number(value)
            if n is None:
                return MISSING
            at = math.log10(n) if log else n
            return 0.5 if hi == lo else (at - lo) / (hi - lo)

        ticks = [(0.5, axis_number(low))] if high == low else \
            [(0.0, axis_number(low)), (1.0, axis_number(high))]
        return _Scale([share(v) for v in axis.values], ticks, log)
    levels = sorted({str(v) for v in present})
    step = 1.0 / (len(levels) - 1) if len(levels) > 1 else 0.0
    where = {level: (i * step if len(levels) > 1 else 0.5) for i, level in enumerate(levels)}
    shares = [MISSING if v is None or v == "" else where[str(v)] for v in axis.values]
    shown = levels if len(levels) <= MAX_CATEGORIES else []
    return _Scale(shares, [(where[level], _cut(level, 14)) for level in shown])


def parallel_coordinates(axes: Sequence[Axis], lines: Sequence[Line], *, title: str,
                         height: int = 280) -> Markup:
    """An SVG of ``lines`` across ``axes`` (each axis holds one value per line, in the
    order of ``lines``), with a legend; a note instead when there is nothing to draw."""
    if len(axes) < 2 or not lines:
        return Markup('<p class="muted">Parallel coordinates need at least two fields with '
                      "values (differing params and a metric).</p>")
    for axis in axes:
        if len(axis.values) != len(lines):
            raise ValueError(f"axis {axis.label!r} has {len(axis.values)} values for "
                             f"{len(lines)} lines")
    width = SIDE * 2 + AXIS_GAP * (len(axes) - 1)
    inner = height - TOP - BOTTOM  # the axis itself; "none" sits in the margin below
    xs = [SIDE + i * AXIS_GAP for i in range(len(axes))]
    scales = [_scale(axis) for axis in axes]

    def y(share: float) -> float:
        return TOP + inner * (1 - share)

    parts = [f'<svg class="parcoords" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}">'
             f"<title>{escape(title)}</title>"]
    for x, axis, scale in zip(xs, axes, scales, strict=True):
        name = axis.label + (" (log scale)" if scale.log else "")
        parts.append(f'<g class="pc-axis"><line x1="{x}" y1="{TOP}" x2="{x}" y2="{TOP + inner}" '
                     'style="stroke:var(--muted)" stroke-width="1"/>'
                     f'<text x="{x}" y="{TOP - 14}" text-anchor="middle" class="axis">'
                     f"<title>{escape(name)}</title>{escape(_cut(axis.label))}</text>")
        ticks = list(scale.ticks)
        if MISSING in scale.positions:
            ticks.append((MISSING, "none"))
        for share, label in ticks:
            parts.append(f'<text x="{x + 4}" y="{y(share) + 3:.1f}" class="axis">'
                         f"{escape(label)}</text>")
        parts.append("</g>")
    for index, line in enumerate(lines):
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{'L' if i else 'M'}{x} {y(scale.positions[index]):.1f}"
                        for i, (x, scale) in enumerate(zip(xs, scales, strict=True)))
        shape = (f'<path d="{path}" fill="none" stroke-width="2" '
                 f'style="stroke:{colour}"><title>{escape(line.label)}</title></path>')
        if line.href:
            shape = f'<a href="{escape(line.href)}">{shape}</a>'
        parts.append(f'<g class="pc-line">{shape}</g>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key" style="--key:{PALETTE[i % len(PALETTE)]}">'
                     f"{escape(line.label)}</span>" for i, line in enumerate(lines))
    parts.append(f'<div class="legend">{legend}</div>')
    return Markup("".join(parts))
