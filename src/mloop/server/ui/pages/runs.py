"""Runs: the table of runs — paged, sorted, filtered, grouped, its columns chosen — from
which runs are selected to compare (:mod:`.runs_compare`); one run's page is
:mod:`.run_page`'s.

Everything the page shows is in its query string, so a link shares it:
``/ui/runs?experiment=E&filter=F&order=metrics.acc DESC&cols=metrics.acc,params.C
&group=params.model&page=2``. The search is :func:`mloop.tracking.search.search_runs`,
with the filter and order languages of ``mloop runs list``: the database filters, sorts
and pages; the page shows 50 runs.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response

from mloop.core.ids import short_id
from mloop.errors import FilterSyntaxError
from mloop.project import Project
from mloop.server.ui.app import View, project_of
from mloop.server.ui.pages import run_page, runs_compare
from mloop.server.ui.pages.run_fields import (
    InputError,
    canonical,
    field_ref,
    input_error,
    int_query,
    parse_fields,
)
from mloop.server.ui.render import Column, Context, Table, ago, iso_time, number, page
from mloop.tracking.experiments import list_experiments
from mloop.tracking.filter import OrderKey, parse_order_by
from mloop.tracking.search import page_token_at, search_runs

router = APIRouter()

PER_PAGE = 50
MAX_PER_PAGE = 500
DEFAULT_METRICS, DEFAULT_PARAMS = 4, 3  # columns shown when none are chosen
KV = ("metrics", "params", "tags")
GROUP_ATTRIBUTES = {"name": "name", "status": "status", "user": "user",
                    "experiment": "experiment"}  # attributes.X → its column of the frame
BASE = ["run_id", "name", "experiment", "status", "user", "start_time", "end_time"]


# ── the table of runs ─────────────────────────────────────────────────────────────────
def _default_columns(frame: pd.DataFrame) -> list[OrderKey]:
    """The metrics and params most runs of the page have (then by name)."""
    chosen: list[OrderKey] = []
    if not len(frame):
        return chosen
    for entity, count in (("metrics", DEFAULT_METRICS), ("params", DEFAULT_PARAMS)):
        filled = {c: int(frame[c].count()) for c in frame.columns if c.startswith(entity + ".")}
        ranked = sorted(filled, key=lambda c: (-filled[c], c))[:count]
        chosen += [OrderKey(entity, c[len(entity) + 1:], False) for c in ranked]
    return chosen


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _run_rows(ctx: Context, frame: pd.DataFrame, fields: list[OrderKey],
              group: OrderKey | None) -> list[dict[str, Any]]:
    """The page's runs as table rows (raw values: the CSV has them as they are)."""
    start, end = run_page.ms_of(frame["start_time"]), run_page.ms_of(frame["end_time"])
    duration = (end - start) / 1000
    columns = {f"{f.entity}.{f.key}": frame[f"{f.entity}.{f.key}"].tolist()
               for f in fields if f"{f.entity}.{f.key}" in frame.columns}
    group_col = _group_column(group) if group is not None else ""
    if group_col:
        columns["group"] = (frame[group_col].tolist() if group_col in frame.columns
                            else [None] * len(frame))
    base = zip(frame["run_id"].tolist(), frame["name"].tolist(),
               frame["experiment"].tolist(), frame["status"].tolist(), strict=True)
    rows = []
    for i, (run_id, name, experiment, status) in enumerate(base):
        row: dict[str, Any] = {
            "id": run_id, "run": short_id(run_id), "name": name or run_id,
            "name_href": ctx.url("runs", run_id), "experiment": experiment, "status": status,
            "start_time": _cell(float(start[i])), "duration": _cell(float(duration[i])),
        }
        for key, values in columns.items():
            row[key] = _cell(values[i])
        rows.append(row)
    return rows


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell as shown: its text, and a link, a time or a status badge when it is one."""

    text: str
    kind: str = ""  # "", "num", "link", "id", "time", "status"
    extra: str = ""  # the link's target, or the time in ISO 8601


def cells(table: Table, now_ms: float) -> list[list[Cell]]:
    """The shown cells of ``table`` (its "group" column is the headings), formatted here
    once: a macro call per cell would cost the page of 50 runs most of its time."""
    shown = [c for c in table.columns if c.key != "group"]
    out = []
    for row in table.rows:
        line = []
        for col in shown:
            value = row.get(col.key)
            if value is None:
                line.append(Cell("", "num" if col.kind == "num" else ""))
            elif col.kind == "link":
                line.append(Cell(str(value), "link", row.get(col.key + "_href") or ""))
            elif col.kind == "num":
                line.append(Cell(number(value), "num"))
            elif col.kind == "time":
                line.append(Cell(ago(value, now_ms), "time", iso_time(value)))
            elif col.key == "run":
                line.append(Cell(str(value), "id"))
            elif col.key == "status":
                line.append(Cell(str(value), "status", str(value).lower()))
            else:
                line.append(Cell(str(value)))
        out.append(line)
    return out


def _group_column(group: OrderKey) -> str:
    """The frame's column that ``group`` names ('' when it cannot group)."""
    if group.entity == "attributes":
        return GROUP_ATTRIBUTES.get(group.key, "")
    return f"{group.entity}.{group.key}"


def _table(frame_rows: list[dict[str, Any]], fields: list[OrderKey], experiment: str,
           grouped: bool) -> Table:
    columns = [Column("name", "Run", "link", sort="attributes.name"),
               Column("run", "Id")]
    if not experiment:
        columns.append(Column("experiment", "Experiment", sort="attributes.experiment"))
    columns += [Column("status", "Status", sort="attributes.status"),
                Column("start_time", "Started", "time", sort="attributes.start_time"),
                Column("duration", "Duration (s)", "num", sort="attributes.duration")]
    if grouped:
        columns.insert(0, Column("group", "Group"))
    for f in fields:
        ref = field_ref(f.entity, f.key)
        columns.append(Column(f"{f.entity}.{f.key}", f"{f.entity}.{f.key}",
                              "num" if f.entity == "metrics" else "text", sort=ref))
    return Table("runs", columns, frame_rows, empty="No runs match.")


def _choices(frame: pd.DataFrame, chosen: list[OrderKey]) -> list[tuple[str, str, bool]]:
    """Columns to choose from: (field as written, label, chosen?) for every metric, param
    and tag of the page's runs, and the chosen ones."""
    chosen_refs = {field_ref(f.entity, f.key) for f in chosen}
    found: dict[str, str] = {field_ref(f.entity, f.key): f"{f.entity}.{f.key}" for f in chosen}
    for col in frame.columns:
        entity, _, key = col.partition(".")
        if entity in KV and key:
            found.setdefault(field_ref(entity, key), col)
    return [(ref, label, ref in chosen_refs)
            for ref, label in sorted(found.items(), key=lambda item: item[1])]


@dataclass
class Query:
    """What the page was asked for, parsed; ``error`` names the input that does not."""

    experiment: str = ""
    filter: str = ""
    order: str = ""
    cols: str = ""
    group: str = ""
    number: int = 1
    per: int = PER_PAGE
    fields: list[OrderKey] | None = None  # None: the defaults of the page's runs
    grouping: OrderKey | None = None
    error: InputError | None = None

    def parse(self) -> None:
        try:
            self.fields = parse_fields(self.cols) if self.cols.strip() else None
        except FilterSyntaxError as exc:
            self.error = input_error("cols", exc)
        bad = next((f for f in self.fields or () if f.entity not in KV), None)
        if bad is not None and self.error is None:
            self.error = InputError("cols", "Choose metrics., params. or tags. as columns",
                                    self.cols, self.cols.find(bad.entity))
        if self.group.strip():
            try:
                self.grouping = parse_order_by(self.group)[0]
            except FilterSyntaxError as exc:
                self.error = self.error or input_error("group", exc)
        if self.grouping is not None and not _group_column(self.grouping):
            self.error = self.error or InputError(
                "group", "Group by a param, a tag or attributes.status, name, user or "
                "experiment", self.group, 0)
            self.grouping = None

    @property
    def orders(self) -> list[str]:
        """The search's order: by the group first (so groups are whole), then as asked."""
        return ([self.group.strip()] if self.grouping is not None else []) + (
            [self.order.strip()] if self.order.strip() else [])


@dataclass
class Found:
    """One page of runs (none when the query did not parse), and whether more follow."""

    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=BASE))
    more: bool = False


def _search(project: Project, q: Query) -> Found:
    if q.error is not None:
        return Found()
    try:
        frame = search_runs(project, experiment=q.experiment or None, filter=q.filter or None,
                            order_by=q.orders or None, max_results=q.per,
                            page_token=page_token_at((q.number - 1) * q.per))
    except FilterSyntaxError as exc:
        where = "filter" if exc.text == q.filter else (
            "group" if q.grouping is not None and exc.text == q.group.strip() else "order")
        q.error = input_error(where, exc)
        return Found()
    return Found(frame, frame.attrs.get("next_page_token") is not None)


@router.get("/runs")
def runs_page(request: Request, *, ctx: Context = View, experiment: str = "",
              filter: str = "", order: str = "", cols: str = "", group: str = "") -> Response:
    """The runs of the project (or of one experiment), one page at a time."""
    if (again := canonical(request, "cols")) is not None:
        return again
    q = Query(experiment, filter, order, cols, group, int_query(request, "page", 1),
              min(int_query(request, "per", PER_PAGE), MAX_PER_PAGE))
    q.parse()
    project = project_of(request)
    found = _search(project, q)
    frame = found.frame
    fields = q.fields if q.fields is not None else _default_columns(frame)
    rows = _run_rows(ctx, frame, fields, q.grouping)
    table = _table(rows, fields, experiment, q.grouping is not None)
    first = (q.number - 1) * q.per + 1
    return page(ctx, "runs.html", title="Runs", tables=[table], status=400 if q.error else 200,
                q=q, cells=cells(table, time.time() * 1000), more=found.more, first=first,
                last=first + len(rows) - 1, experiments=list_experiments(project),
                counts=Counter(_group_label(r.get("group")) for r in rows),
                group_label=_group_label, choices=_choices(frame, fields),
                group_choices=_group_choices(frame, group))


def _group_label(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _group_choices(frame: pd.DataFrame, current: str) -> list[tuple[str, str]]:
    """What to group by: the params and tags of the page's runs, status and user."""
    found = {field_ref(e, k): f"{e}.{k}" for c in frame.columns
             for e, _, k in [c.partition(".")] if e in ("params", "tags") and k}
    found.update({f"attributes.{k}": f"attributes.{k}" for k in ("status", "user")})
    if current.strip():
        found.setdefault(current.strip(), current.strip())
    return sorted(found.items(), key=lambda item: item[1])


# after /runs: "compare" is not a run id, and a run's own routes come last
router.include_router(runs_compare.router)
router.include_router(run_page.router)
