"""One run: its record, params, metrics with their histories, tags, artifacts with previews,
environment and git, lineage, parent and nested runs; and a metric's points as JSON (what a
chart fetches when zoomed).

The run is named by its id or a unique prefix or suffix, as ``mloop runs show`` takes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response

from mloop.core.ids import short_id
from mloop.errors import InvalidInputError, NotFoundError
from mloop.lineage import PHRASES, neighbours, short_uri
from mloop.repositories import backend
from mloop.repositories.runs import Run
from mloop.server.ui.app import View, project_of
from mloop.server.ui.charts import POINTS, Chart, lttb
from mloop.server.ui.links import href
from mloop.server.ui.pages import run_artifacts
from mloop.server.ui.render import Column, Context, Table, mapping_rows, page
from mloop.tracking.records import get_run, resolve_run_id
from mloop.tracking.search import search_runs

router = APIRouter()
router.include_router(run_artifacts.router)

MAX_CHARTS = 30  # metric history charts on one run's page
MAX_HISTORIES = 100  # metrics whose every point is read for one run's page
MAX_CHILDREN = 200  # nested runs listed
MAX_DIFF = 200 * 1024  # characters of the uncommitted git diff shown


def ms_of(values: pd.Series) -> np.ndarray:
    """UTC datetimes as ms since the epoch (NaN for none)."""
    if not len(values):
        return np.empty(0)
    since = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
    return (since / pd.Timedelta(milliseconds=1)).to_numpy(dtype=float)


def history(project: Any, run_id: str, key: str) -> np.ndarray:
    """Every point of metric ``key`` as rows of (step, time in ms, value)."""
    points = backend(project).runs.metric_history(run_id, key)
    return np.array(points, dtype=float).reshape(-1, 3)


@router.get("/runs/{run_id}/metrics/{key:path}")
def metric_points(request: Request, run_id: str, key: str, *, x: str = "step",
                  lo: float | None = None, hi: float | None = None) -> Response:
    """``{"x": [...], "y": [...]}``: metric ``key`` of the run against its steps (or its
    times in ms, ``x=time``) within ``lo``…``hi``, downsampled with LTTB."""
    if x not in ("step", "time"):
        raise InvalidInputError(f"x={x!r}: choose x=step or x=time.")
    project = project_of(request)
    full_id = resolve_run_id(project, run_id)
    points = history(project, full_id, key)
    if not len(points):
        raise NotFoundError(f"Run {short_id(full_id)} has no metric {key!r}.")
    xs, ys = points[:, 0 if x == "step" else 1], points[:, 2]
    keep = np.ones(len(xs), dtype=bool)
    if lo is not None:
        keep &= xs >= lo
    if hi is not None:
        keep &= xs <= hi
    sx, sy = lttb(xs[keep], ys[keep], POINTS)
    body = orjson.dumps({"x": sx, "y": sy, "total": int(keep.sum())},
                        option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


def _lineage(ctx: Context, project: Any, run_id: str) -> tuple[Table, Table]:
    into, out_of = neighbours(project, f"runs:/{run_id}")
    columns = [Column("node", "Node", "link"), Column("relation", "Relation"),
               Column("created", "Recorded", "time")]
    inputs = [{"node": short_uri(e.src), "node_href": href(e.src),
               "relation": PHRASES.get(e.relation, (e.relation, ""))[0],
               "created": e.created_at} for e in into]
    outputs = [{"node": short_uri(e.dst), "node_href": href(e.dst),
                "relation": PHRASES.get(e.relation, ("", f"{e.relation} of"))[1],
                "created": e.created_at} for e in out_of]
    return (Table("inputs", columns, inputs, empty="No inputs recorded."),
            Table("outputs", columns, outputs, empty="No outputs recorded."))


def _children(ctx: Context, project: Any, run_id: str) -> Table:
    frame = search_runs(project, filter=f"attributes.parent_id = '{run_id}'",
                        max_results=MAX_CHILDREN)
    starts = ms_of(frame["start_time"])
    rows = [{"name": name or rid, "name_href": ctx.url("runs", rid), "run": short_id(rid),
             "status": status, "start_time": float(start)}
            for rid, name, status, start in zip(frame["run_id"], frame["name"],
                                                 frame["status"], starts, strict=True)]
    return Table("nested", [Column("name", "Run", "link"), Column("run", "Id"),
                            Column("status", "Status"), Column("start_time", "Started", "time")],
                 rows, empty="No nested runs.")


def _metrics(ctx: Context, project: Any, run: Run) -> tuple[Table, list[Chart]]:
    """The latest value of each metric, and a chart of each that has a history."""
    rows: list[dict[str, Any]] = []
    charts: list[Chart] = []
    for index, (key, value) in enumerate(sorted(run.metrics.items())):
        # a run may log thousands of metrics: their histories are read for the first few
        points = (history(project, run.id, key)
                  if index < MAX_HISTORIES and len(charts) < MAX_CHARTS else None)
        rows.append({"key": key, "value": value,
                     "points": None if points is None else len(points)})
        if points is not None and len(points) > 1:
            chart = Chart(f"metric-{len(charts)}", title=key, x="step", y=key)
            chart.add(key, points[:, 0], points[:, 2],
                      full=ctx.url("runs", run.id, "metrics", key))
            charts.append(chart)
    table = Table("metrics", [Column("key", "Metric"), Column("value", "Latest", "num"),
                              Column("points", "Points", "num")], rows,
                  empty="No metrics logged.")
    return table, charts


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, *, ctx: Context = View) -> Response:
    """Everything about one run."""
    project = project_of(request)
    run = get_run(project, run_id)
    metrics, charts = _metrics(ctx, project, run)
    params = Table("params", [Column("key", "Param"), Column("value", "Value")],
                   mapping_rows(run.params), empty="No params logged.")
    tags = Table("tags", [Column("key", "Tag"), Column("value", "Value")],
                 mapping_rows(run.tags), empty="No tags set.")
    files = run_artifacts.previews(ctx, project, run.id, run.artifacts)
    listing = Table("artifacts", [Column("path", "Path", "link"), Column("size", "Bytes", "num"),
                                  Column("digest", "Digest")],
                    [{"path": f.path, "path_href": f.href, "size": f.size,
                      "digest": a.digest[:16]} for f, a in zip(files, run.artifacts,
                                                                strict=True)],
                    empty="No artifacts logged.")
    inputs, outputs = _lineage(ctx, project, run.id)
    nested = _children(ctx, project, run.id)
    env = run.environment
    diff = run.git_diff if run.git_diff_digest else None
    return page(ctx, "run.html", title=f"Run {run.name or short_id(run.id)}",
                tables=[params, metrics, tags, listing, inputs, outputs, nested],
                scripts=("chart",) if charts else (), run=run, charts=charts, files=files,
                env=env, diff=None if diff is None else diff[:MAX_DIFF],
                diff_cut=diff is not None and len(diff) > MAX_DIFF,
                lineage_url=ctx.url("lineage", uri=f"runs:/{run.id}"),
                experiment_url=ctx.url("runs", experiment=run.experiment),
                parent_url=ctx.url("runs", run.parent_id) if run.parent_id else "")
