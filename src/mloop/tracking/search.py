"""Searching runs: the parsed filter compiled to one SQL query with bound parameters.

Metric comparisons at the top level of the filter become inner joins on
``latest_metrics``, so the database can drive the query from its ``(key, value)`` index;
everything else becomes a correlated ``EXISTS`` probing a primary key. Results come back
as one pandas DataFrame: one row per run, ``metrics.*``, ``params.*`` and ``tags.*``
columns, pivoted in pandas rather than row by row in Python.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    not_,
    or_,
    select,
    true,
)

from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.store.schema import experiments, latest_metrics, params, runs, tags
from mloop.tracking.experiments import get_experiment
from mloop.tracking.filter import BoolOp, Comparison, Node, OrderKey, parse_filter, parse_order_by

DEFAULT_MAX_RESULTS = 1000
_KV = {"metrics": latest_metrics, "params": params, "tags": tags}
BASE_COLUMNS = ["run_id", "experiment", "name", "status", "start_time", "end_time",
                "parent_id", "user"]


def _attr(key: str) -> Any:
    if key == "duration":
        return runs.c.end_time - runs.c.start_time
    if key == "run_id":
        return runs.c.id
    return runs.c[key]


def _apply(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if value is None:
        return column.is_(None) if op == "=" else column.is_not(None)
    match op:
        case "=":
            return column == value
        case "!=":
            return column != value
        case "<":
            return column < value
        case "<=":
            return column <= value
        case ">":
            return column > value
        case ">=":
            return column >= value
        case "like":
            return column.like(value)
        case "not like":
            return column.not_like(value)
        case "ilike":
            return column.ilike(value)
        case "not ilike":
            return column.not_ilike(value)
        case "in":
            return column.in_(list(value))
        case "not in":
            return column.not_in(list(value))
    raise InvalidInputError(f"Unsupported operator {op!r}")


def _compile(node: Node) -> ColumnElement[bool]:
    if isinstance(node, BoolOp):
        parts = [_compile(p) for p in node.parts]
        return and_(*parts) if node.op == "and" else or_(*parts)
    if node.entity == "attributes":
        if node.key == "experiment":
            sub = select(experiments.c.id).where(_apply(experiments.c.name, node.op, node.value))
            return runs.c.experiment_id.in_(sub)
        return _apply(_attr(node.key), node.op, node.value)
    table = _KV[node.entity].alias()
    if node.value is None:  # `= null`: the run has no such key; `!= null`: it has one
        probe = exists().where(table.c.run_id == runs.c.id, table.c.key == node.key)
        return not_(probe) if node.op == "=" else probe
    return exists().where(table.c.run_id == runs.c.id, table.c.key == node.key,
                          _apply(table.c.value, node.op, node.value))


def _conjuncts(node: Node | None) -> list[Node]:
    if node is None:
        return []
    if isinstance(node, BoolOp) and node.op == "and":
        return [c for part in node.parts for c in _conjuncts(part)]
    return [node]


def build_query(node: Node | None, order: Sequence[OrderKey],
                experiment_ids: list[str] | None, include_deleted: bool) -> Select[Any]:
    """The SELECT of matching run ids plus base columns, filtered and ordered."""
    query = select(runs.c.id.label("run_id"), experiments.c.name.label("experiment"),
                   runs.c.name, runs.c.status, runs.c.start_time, runs.c.end_time,
                   runs.c.parent_id, runs.c.user)
    frm: Any = runs.join(experiments, experiments.c.id == runs.c.experiment_id)
    joined: dict[str, Any] = {}
    where: list[ColumnElement[bool]] = []
    for part in _conjuncts(node):
        if (isinstance(part, Comparison) and part.entity == "metrics" and part.value is not None
                and part.op not in {"!=", "not in"} and part.key not in joined):
            m = latest_metrics.alias()
            frm = frm.join(m, and_(m.c.run_id == runs.c.id, m.c.key == part.key))
            joined[part.key] = m
            where.append(_apply(m.c.value, part.op, part.value))
        else:
            where.append(_compile(part))
    if experiment_ids is not None:
        where.append(runs.c.experiment_id.in_(experiment_ids) if experiment_ids else false())
    if not include_deleted:
        where.append(runs.c.deleted_at.is_(None))
    order_cols: list[Any] = []
    for o in order:
        if o.entity == "attributes":
            col = experiments.c.name if o.key == "experiment" else _attr(o.key)
        elif o.entity == "metrics" and o.key in joined:
            col = joined[o.key].c.value
        else:
            t = _KV[o.entity].alias()
            frm = frm.outerjoin(t, and_(t.c.run_id == runs.c.id, t.c.key == o.key))
            if o.entity == "metrics":
                joined[o.key] = t
            col = t.c.value
        order_cols.append(col.desc().nulls_last() if o.descending else col.asc().nulls_last())
    order_cols += [runs.c.start_time.desc(), runs.c.id.desc()]  # newest first, stable
    return query.select_from(frm).where(and_(true(), *where)).order_by(*order_cols)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(page_token: str | None) -> int:
    if not page_token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(page_token.encode()))["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError("Invalid page_token: pass the value from "
                                "df.attrs['next_page_token'] unchanged.") from exc
    if offset < 0:
        raise InvalidInputError("Invalid page_token: negative offset.")
    return offset


def search_runs(project: Project, *, experiment: str | Sequence[str] | None = None,
                filter: str | None = None, order_by: Sequence[str] | str | None = None,
                max_results: int | None = DEFAULT_MAX_RESULTS, page_token: str | None = None,
                include_deleted: bool = False) -> pd.DataFrame:
    """Runs matching ``filter`` as a DataFrame, one row per run.

    ``experiment`` narrows to one or more experiments (names or ids). ``max_results``
    caps one page (``None`` for all); when more remain, ``df.attrs["next_page_token"]``
    fetches the next page. Columns: run_id, experiment, name, status, start_time,
    end_time (UTC datetimes), parent_id, user, then ``metrics.*``, ``params.*``, ``tags.*``.
    """
    node = parse_filter(filter)
    order = parse_order_by(order_by)
    exp_ids = None
    if experiment is not None:
        names = [experiment] if isinstance(experiment, str) else list(experiment)
        exp_ids = [get_experiment(project, n).id for n in names]
    if max_results is not None and max_results < 1:
        raise InvalidInputError("max_results must be at least 1 (or None for every run).")
    offset = _offset(page_token)
    query = build_query(node, order, exp_ids, include_deleted)
    if max_results is not None:
        query = query.limit(max_results + 1)
    if offset:
        query = query.offset(offset)
    with project.store.read() as conn:
        base = pd.DataFrame(conn.execute(query).all(), columns=BASE_COLUMNS)
        more = max_results is not None and len(base) > max_results
        if more:
            base = base.iloc[:max_results]
        ids = base["run_id"].tolist()
        page = query.with_only_columns(runs.c.id).subquery() if not more else None
        extra = {prefix: _fetch_kv(conn, table, ids, page) for prefix, table in _KV.items()}
    frame = _assemble(base, extra)
    frame.attrs["next_page_token"] = _token(offset + len(base)) if more else None
    return frame


def _fetch_kv(conn: Any, table: Any, ids: list[str], page: Any) -> pd.DataFrame:
    if not ids:
        return pd.DataFrame(columns=["run_id", "key", "value"])
    if page is not None:  # the whole result: join on the query, no giant IN list
        cond = table.c.run_id.in_(select(page.c.id))
        rows = conn.execute(select(table.c.run_id, table.c.key, table.c.value).where(cond)).all()
    else:
        rows = []
        for start in range(0, len(ids), 5000):
            chunk = ids[start:start + 5000]
            rows += conn.execute(select(table.c.run_id, table.c.key, table.c.value)
                                 .where(table.c.run_id.in_(chunk))).all()
    return pd.DataFrame(rows, columns=["run_id", "key", "value"])


def _assemble(base: pd.DataFrame, extra: dict[str, pd.DataFrame]) -> pd.DataFrame:
    for col in ("start_time", "end_time"):
        base[col] = pd.to_datetime(base[col].astype("Float64"), unit="ms", utc=True)
    frame = base.set_index("run_id", drop=False)
    parts = [frame]
    for prefix, kv in extra.items():
        if kv.empty:
            continue
        wide = kv.pivot(index="run_id", columns="key", values="value")
        if prefix == "metrics":
            wide = wide.astype("float64")  # stored NaN (NULL) → NaN
        wide.columns = [f"{prefix}.{k}" for k in wide.columns]
        parts.append(wide.sort_index(axis=1))
    out = pd.concat(parts, axis=1, join="outer") if len(parts) > 1 else frame
    out = out.reindex(frame.index)
    out.index = pd.RangeIndex(len(out))
    return out

