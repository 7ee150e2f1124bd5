"""Chart data for the UI's pages: downsampling (LTTB) and the JSON the page's script draws.

A chart is a ``<div data-chart="ID">`` beside a ``<script type="application/json"
id="ID">`` data block (not executed, so the page's Content-Security-Policy allows it);
``app.js`` draws it with uPlot. The data block is a :class:`Chart` as JSON::

    {"title": …, "x": "step" | "time" | label, "log": false,
     "series": [{"label": …, "x": [...], "y": [...], "full": "url or null"}]}

Series keep their own x values; the script aligns them. A series longer than the chart's
budget is sent downsampled with LTTB (largest triangle three buckets: the points that keep
the curve's shape) and ``full`` names the URL of all of its points, fetched on zoom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

POINTS = 1000  # per series, sent with the page


def lttb(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` points of (x, y) that Largest-Triangle-Three-Buckets keeps (first and last
    included); all of them when there are no more than ``n``. Non-finite ``y`` are dropped
    first."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(y) & np.isfinite(x)
    if not keep.all():
        x, y = x[keep], y[keep]
    size = len(x)
    if n >= size or n < 3:
        return x, y
    # bucket b (1 … n-2) holds points edges[b-1] … edges[b]-1 of the interior
    edges = np.linspace(1, size - 1, n - 1).astype(np.int64)
    chosen = np.empty(n, dtype=np.int64)
    chosen[0], chosen[-1] = 0, size - 1
    # the average of each next bucket (the last one's "next" is the final point)
    sums_x = np.add.reduceat(x[1:size - 1], edges[:-1] - 1)
    sums_y = np.add.reduceat(y[1:size - 1], edges[:-1] - 1)
    counts = np.diff(edges)
    avg_x = np.append(sums_x / counts, x[-1])
    avg_y = np.append(sums_y / counts, y[-1])
    previous = 0
    for b in range(n - 2):  # n iterations of vectorised work, never one per point
        lo, hi = edges[b], edges[b + 1]
        cx, cy = x[lo:hi], y[lo:hi]
        ax, ay = x[previous], y[previous]
        area = np.abs((ax - avg_x[b + 1]) * (cy - ay) - (ax - cx) * (avg_y[b + 1] - ay))
        previous = lo + int(np.argmax(area))
        chosen[b + 1] = previous
    return x[chosen], y[chosen]


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


@dataclass
class Series:
    label: str
    x: list[float | None]
    y: list[float | None]
    full: str | None = None  # the URL of every point when these are downsampled
    total: int = 0


@dataclass
class Chart:
    id: str
    title: str = ""
    x: str = "step"  # "step", "time" (ms since the epoch) or a label
    y: str = ""
    log: bool = False
    kind: str = "line"  # "line" or "points"
    series: list[Series] = field(default_factory=list)

    def add(self, label: str, x: Any, y: Any, *, full: str | None = None,
            points: int = POINTS) -> Series:
        """Add a series, downsampled to ``points`` with LTTB when it is longer."""
        xs = np.asarray(x, dtype=float)
        ys = np.asarray(y, dtype=float)
        total = len(xs)
        sx, sy = lttb(xs, ys, points)
        series = Series(label, _finite(sx), _finite(sy),
                        full if len(sx) < total else None, total)
        self.series.append(series)
        return series

    def to_json(self) -> str:
        return script_json({
            "title": self.title, "x": self.x, "y": self.y, "log": self.log,
            "kind": self.kind,
            "series": [{"label": s.label, "x": s.x, "y": s.y, "full": s.full,
                        "total": s.total} for s in self.series]})


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` block: ``<``, ``>``, ``&``
    and the JavaScript line separators escaped, so no text can close the block."""
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
