"""Comparing selected runs: their metric curves overlaid (step or time on x, log scale
and smoothing in the page's chart controls, the full points fetched on zoom), the params
that differ (the same ones folded away), parallel coordinates of the params against a
metric, and a scatter of any two numeric fields.

The comparison is :func:`mloop.tracking.compare.compare_runs`; ``ids=`` names the runs
(ids, or unique prefixes or suffixes), comma-separated.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from mloop.core.ids import short_id
from mloop.errors import InvalidInputError
from mloop.server.ui.app import View, project_of
from mloop.server.ui.charts import Chart
from mloop.server.ui.pages.run_fields import canonical
from mloop.server.ui.pages.run_page import history
from mloop.server.ui.parcoords import Axis, Line, parallel_coordinates
from mloop.server.ui.render import Column, Context, Table, page
from mloop.tracking.compare import compare_runs

router = APIRouter()

MAX_COMPARE = 50  # runs on one compare page
MAX_CURVES = 24  # metric charts on one compare page
MAX_LEVELS = 12  # distinct values of a text param drawn as an axis


def _ids(request: Request) -> list[str]:
    raw = ",".join(request.query_params.getlist("ids"))
    ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if len(ids) < 2:
        raise InvalidInputError("Select at least two runs to compare (tick them in the "
                                "runs table, then Compare).")
    if len(ids) > MAX_COMPARE:
        raise InvalidInputError(f"{len(ids)} runs selected; compare at most {MAX_COMPARE} "
                                "at once.")
    return ids


def _numeric(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    if not present:
        return False
    try:
        return all(math.isfinite(float(v)) for v in present)
    except (TypeError, ValueError):
        return False


def _levels(values: list[Any]) -> bool:
    """Whether a param's values fit on an axis: numbers, or few enough distinct texts."""
    return _numeric(values) or 1 < len({v for v in values if v is not None}) <= MAX_LEVELS


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@router.get("/runs/compare")
def compare_page(request: Request, *, ctx: Context = View, x: str = "step", metric: str = "",
                 sx: str = "", sy: str = "") -> Response:
    """Selected runs side by side: curves, params diff, parallel coordinates, scatter."""
    if (again := canonical(request, "ids")) is not None:
        return again
    if x not in ("step", "time"):
        raise InvalidInputError(f"x={x!r}: choose x=step or x=time.")
    project = project_of(request)
    result = compare_runs(project, _ids(request))
    labels = [f"{name or rid} ({short_id(rid)})" for name, rid in
              zip(result.names, result.run_ids, strict=True)]
    rows = {r.field: r for r in result.rows}
    metric_keys = [f[len("metrics."):] for f in rows if f.startswith("metrics.")]
    runs = list(zip(result.run_ids, labels, strict=True))
    charts = _curves(ctx, project, runs, metric_keys, x)
    run_cols = [Column(f"r{i}", label) for i, label in enumerate(labels)]
    diff_rows = [{"field": r.field, "differs": r.differs,
                  **{f"r{i}": v for i, v in enumerate(r.values)}}
                 for r in result.rows if not r.field.startswith("metrics.")]
    latest = [{"field": r.field[len("metrics."):],
               **{f"r{i}": _float(v) for i, v in enumerate(r.values)}}
              for r in result.rows if r.field.startswith("metrics.")]
    differs = Table("differs", [Column("field", "Field"), *run_cols],
                    [r for r in diff_rows if r["differs"]], empty="No param differs.")
    same = Table("same", [Column("field", "Field"), *run_cols],
                 [r for r in diff_rows if not r["differs"]], empty="Nothing is the same.")
    metrics_table = Table("metrics", [Column("field", "Metric"),
                                      *(Column(c.key, c.label, "num") for c in run_cols)],
                          latest, empty="No metrics logged.")
    numeric = [f for f, r in rows.items() if f.startswith(("params.", "metrics."))
               and _numeric(r.values)]
    metric = metric if f"metrics.{metric}" in rows else (metric_keys[0] if metric_keys else "")
    picture = _parallel(ctx, runs, rows, metric)
    sx = sx if sx in numeric else next(
        (f for f in numeric if f.startswith("params.") and rows[f].differs),
        numeric[0] if numeric else "")
    sy = sy if sy in numeric else (f"metrics.{metric}" if f"metrics.{metric}" in numeric else
                                   (numeric[-1] if numeric else ""))
    scatter = _scatter(labels, rows, sx, sy) if sx and sy else None
    return page(ctx, "compare.html", title="Compare runs",
                tables=[differs, same, metrics_table], scripts=("chart",),
                ids=",".join(result.run_ids), labels=labels, run_ids=result.run_ids,
                charts=charts, x=x, metric=metric, metric_keys=metric_keys,
                parcoords=picture, numeric=numeric, sx=sx, sy=sy, scatter=scatter)


def _curves(ctx: Context, project: Any, runs: list[tuple[str, str]], keys: list[str],
            x: str) -> list[Chart]:
    """One chart per metric some run logged more than once, every run's curve on it
    (``runs``: (id, label) pairs)."""
    charts: list[Chart] = []
    for key in keys:
        if len(charts) >= MAX_CURVES:
            break
        chart = Chart(f"curve-{len(charts)}", title=key, x=x, y=key)
        longest = 0
        for run_id, label in runs:
            points = history(project, run_id, key)
            if not len(points):
                continue
            longest = max(longest, len(points))
            chart.add(label, points[:, 0 if x == "step" else 1], points[:, 2],
                      full=ctx.url("runs", run_id, "metrics", key, x=x))
        if longest > 1:
            charts.append(chart)
    return charts


def _parallel(ctx: Context, runs: list[tuple[str, str]], rows: dict[str, Any],
              metric: str) -> Markup:
    """Differing params (numbers, or a few texts) and ``metric``, a line a run."""
    axes = [Axis(f, rows[f].values) for f in rows
            if f.startswith("params.") and rows[f].differs and _levels(rows[f].values)]
    if metric and f"metrics.{metric}" in rows:
        axes.append(Axis(metric, [_float(v) for v in rows[f"metrics.{metric}"].values]))
    lines = [Line(label, ctx.url("runs", rid)) for rid, label in runs]
    return parallel_coordinates(axes, lines, title=f"Params and {metric or 'a metric'}")


def _scatter(labels: list[str], rows: dict[str, Any], sx: str, sy: str) -> Chart:
    """Field ``sy`` against ``sx``: one point a run, each run its own series (colour)."""
    chart = Chart("scatter", title=f"{sy} against {sx}", x=sx, y=sy, kind="points")
    for label, vx, vy in zip(labels, rows[sx].values, rows[sy].values, strict=True):
        fx, fy = _float(vx), _float(vy)
        if fx is not None and fy is not None:
            chart.add(label, [fx], [fy])
    return chart


