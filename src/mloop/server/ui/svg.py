"""Small charts drawn on the server as inline SVG: no script, escaped text, a11y titles.

Histograms (one or several overlaid: a dataset's column, two versions' distributions) are
static pictures, so the page shows them without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Colours by series index: CSS variables, so dark and light themes both read.
PALETTE = ("var(--c0)", "var(--c1)", "var(--c2)", "var(--c3)", "var(--c4)", "var(--c5)")


@dataclass(frozen=True)
class Bars:
    label: str
    counts: Sequence[float]


def axis_number(value: float) -> str:
    """A number short enough for an axis label (3–4 significant digits)."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4g}"


def histogram(edges: Sequence[float] | Sequence[str], series: Sequence[Bars], *,
              title: str, width: int = 320, height: int = 120) -> Markup:
    """Overlaid histograms over the same bins (``edges``: ``bins + 1`` numbers, or one
    label a bin for categories), each series normalised to its own share so versions of
    different sizes compare."""
    n_bins = len(edges) - 1 if edges and not isinstance(edges[0], str) else len(edges)
    if n_bins <= 0 or not series:
        return Markup('<p class="muted">No distribution recorded.</p>')
    shares = []
    for s in series:
        total = float(sum(s.counts)) or 1.0
        shares.append([c / total for c in s.counts])
    top = max((max(s) for s in shares if s), default=0.0) or 1.0
    pad_b = 16
    inner_h = height - pad_b
    bar_w = width / n_bins
    parts = [f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}">'
             f"<title>{escape(title)}</title>"]
    for index, (s, share) in enumerate(zip(series, shares, strict=True)):
        colour = PALETTE[index % len(PALETTE)]
        opacity = 0.85 if len(series) == 1 else 0.5
        for b, value in enumerate(share[:n_bins]):
            h = inner_h * value / top
            if isinstance(edges[0], str):
                tip = f"{edges[b]}"
            else:
                tip = f"{axis_number(float(edges[b]))} – {axis_number(float(edges[b + 1]))}"
            parts.append(
                f'<rect x="{b * bar_w:.2f}" y="{inner_h - h:.2f}" width="{max(bar_w - 1, 1):.2f}" '
                f'height="{h:.2f}" fill="{colour}" fill-opacity="{opacity}">'
                f"<title>{escape(s.label)}: {escape(tip)}: {value:.1%}</title></rect>")
    if not isinstance(edges[0], str):
        low, high = axis_number(float(edges[0])), axis_number(float(edges[-1]))
        parts.append(f'<text x="0" y="{height - 3}" class="axis">{escape(low)}</text>'
                     f'<text x="{width}" y="{height - 3}" text-anchor="end" '
                     f'class="axis">{escape(high)}</text>')
    parts.append("</svg>")
    if len(series) > 1:
        legend = "".join(f'<span class="key" style="--key:{PALETTE[i % len(PALETTE)]}">'
                         f"{escape(s.label)}</span>" for i, s in enumerate(series))
        parts.append(f'<div class="legend">{legend}</div>')
    return Markup("".join(parts))
