"""Searching runs in SQL: a parsed filter (:mod:`mloop.tracking.filter`) compiled to one query.

Metric comparisons at the top level of the filter become inner joins on
``latest_metrics``, so the database can drive the query from its ``(key, value)`` index;
everything else becomes a correlated ``EXISTS`` probing a primary key. The page's
params, metrics and tags are read through the driver's own cursor, as plain tuples;
pivoting them into a DataFrame is :mod:`mloop.tracking.search`'s part.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)

from mloop.errors import InvalidInputError
from mloop.repositories.runs import SearchPage, SearchQuery
from mloop.store import Store
from mloop.store.schema import experiments, latest_metrics, params, runs, tags
from mloop.tracking.filter import BoolOp, Comparison, Node, OrderKey, check_tree

__all__ = ["build_query", "search"]

_KV = {"metrics": latest_metrics, "params": params, "tags": tags}
NO_LIMIT = 2**62


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


def _compile(node: Node, run_id: Any) -> ColumnElement[bool]:
    """SQL for a filter node; key-value probes correlate on the ``run_id`` column given."""
    if isinstance(node, BoolOp):
        parts = [_compile(p, run_id) for p in node.parts]
        return and_(*parts) if node.op == "and" else or_(*parts)
    if node.entity == "attributes":
        if node.key == "experiment":
            sub = select(experiments.c.id).where(_apply(experiments.c.name, node.op, node.value))
            return runs.c.experiment_id.in_(sub)
        return _apply(_attr(node.key), node.op, node.value)
    table = _KV[node.entity].alias()
    if node.value is None:  # `= null`: the run has no such key; `!= null`: it has one
        probe = exists().where(table.c.run_id == run_id, table.c.key == node.key)
        return not_(probe) if node.op == "=" else probe
    return exists().where(table.c.run_id == run_id, table.c.key == node.key,
                          _apply(table.c.value, node.op, node.value))


def _conjuncts(node: Node | None) -> list[Node]:
    if node is None:
        return []
    if isinstance(node, BoolOp) and node.op == "and":
        return [c for part in node.parts for c in _conjuncts(part)]
    return [node]


def _order_columns(order: tuple[OrderKey, ...], frm: Any, joined: dict[str, Any],
                   split: str | None = None) -> tuple[Any, list[Any], list[Any]]:
    """The ORDER BY columns (outer-joining the keys it sorts on), the new FROM, and the
    conditions of a split search (see :func:`search`)."""
    cols: list[Any] = []
    where: list[Any] = []
    for i, o in enumerate(order):
        if i == 0 and split is not None:  # the first key: a metric none of the filters join
            if split == "present":
                t = latest_metrics.alias()
                frm = frm.join(t, and_(t.c.run_id == runs.c.id, t.c.key == o.key))
                where.append(t.c.value.is_not(None))
                joined[o.key] = t
                cols.append(t.c.value.desc() if o.descending else t.c.value.asc())
            else:  # "absent": the runs the first part leaves out, all NULL for this key
                m = latest_metrics.alias()
                where.append(~select(m.c.run_id).where(
                    m.c.run_id == runs.c.id, m.c.key == o.key, m.c.value.is_not(None))
                    .exists())
            continue
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
        cols.append(col.desc().nulls_last() if o.descending else col.asc().nulls_last())
    cols += [runs.c.start_time.desc(), runs.c.id.desc()]  # newest first, stable
    return frm, cols, where


@functools.lru_cache(maxsize=256)
def build_query(node: Node | None, order: tuple[OrderKey, ...],
                experiment_ids: tuple[str, ...] | None, include_deleted: bool,
                split: str | None = None) -> Select[Any]:
    """The SELECT of matching run ids plus base columns, filtered and ordered.

    Cached: dashboards and scripts repeat the same search, and building the statement
    costs as much as running it on a few thousand runs.
    """
    query = select(runs.c.id.label("run_id"), experiments.c.name.label("experiment"),
                   runs.c.name, runs.c.status, runs.c.start_time, runs.c.end_time,
                   runs.c.parent_id, runs.c.user)
    frm: Any = runs.join(experiments, experiments.c.id == runs.c.experiment_id)
    joined: dict[str, Any] = {}
    where: list[ColumnElement[bool]] = []
    rest: list[Node] = []
    for part in _conjuncts(node):
        if (isinstance(part, Comparison) and part.entity == "metrics" and part.value is not None
                and part.op not in {"!=", "not in"} and part.key not in joined):
            m = latest_metrics.alias()
            frm = frm.join(m, and_(m.c.run_id == runs.c.id, m.c.key == part.key))
            joined[part.key] = m
            where.append(_apply(m.c.value, part.op, part.value))
        else:
            rest.append(part)
    # Correlate the other probes on the driving metric's run_id rather than runs.id: the
    # database can then test them straight off the index scan and look up only the runs
    # that pass (about 3x faster on 100,000 runs than fetching every candidate run first).
    run_id = next(iter(joined.values())).c.run_id if joined else runs.c.id
    where += [_compile(part, run_id) for part in rest]
    if experiment_ids is not None:
        where.append(runs.c.experiment_id.in_(experiment_ids) if experiment_ids else false())
    if not include_deleted:
        where.append(runs.c.deleted_at.is_(None))
    frm, order_cols, split_where = _order_columns(order, frm, joined, split)
    where += split_where
    # LIMIT/OFFSET as bound parameters: the statement object stays the same from page to
    # page, so SQLAlchemy reuses its compiled form instead of rebuilding it.
    return (query.select_from(frm).where(and_(true(), *where)).order_by(*order_cols)
            .limit(bindparam("limit", type_=BigInteger))
            .offset(bindparam("offset", type_=BigInteger)))


def _splits(query: SearchQuery) -> bool:
    """Whether the search is ordered first by a metric that no filter joins: then the
    runs that have the metric are read first, driven by the ``(key, value)`` index and
    stopping at the page's end, and the runs without it (NULL, sorted last) only when the
    page is not full — instead of sorting every run of the experiments."""
    if not query.order or query.order[0].entity != "metrics":
        return False
    key = query.order[0].key
    return not any(isinstance(c, Comparison) and c.entity == "metrics" and c.key == key
                   and c.value is not None and c.op not in {"!=", "not in"}
                   for c in _conjuncts(query.filter))


def _page(store: Store, conn: Any, query: SearchQuery, limit: int) -> list[Any]:
    args = (query.filter, query.order, query.experiment_ids, query.include_deleted)
    if not _splits(query):
        return list(conn.execute(build_query(*args),
                                 {"limit": limit, "offset": query.offset}).all())
    rows = list(conn.execute(build_query(*args, split="present"),
                             {"limit": limit, "offset": query.offset}).all())
    if len(rows) >= limit:
        return rows
    offset = 0
    if not rows and query.offset:  # the page starts past the runs with the metric
        counted = build_query(*args, split="present").order_by(None).limit(None).offset(None)
        offset = query.offset - conn.execute(
            select(func.count()).select_from(counted.subquery())).scalar_one()
    rest = conn.execute(build_query(*args, split="absent"),
                        {"limit": limit - len(rows), "offset": max(0, offset)}).all()
    return rows + list(rest)


def search(store: Store, query: SearchQuery) -> SearchPage:
    """One page of runs matching ``query``, read in one transaction."""
    check_tree(query.filter, query.order)  # it may come as JSON, not from the parser
    if query.offset < 0 or (query.max_results is not None and query.max_results < 0):
        raise InvalidInputError(f"A search page has max_results >= 0 and offset >= 0, not "
                                f"{query.max_results} and {query.offset}.")
    limit = NO_LIMIT if query.max_results is None else min(query.max_results + 1, NO_LIMIT)
    with store.read() as conn:
        rows = _page(store, conn, query, limit)
        more = query.max_results is not None and len(rows) > query.max_results
        if more:
            rows = rows[:query.max_results]
        ids = [r[0] for r in rows]
        kv = {prefix: _fetch_kv(store, conn, table, ids) for prefix, table in _KV.items()}
    return SearchPage(rows, kv, more)


_KV_SQL = {
    # The ids travel as ONE parameter (a JSON array on SQLite, an array on PostgreSQL): a
    # page of thousands of runs would otherwise be thousands of placeholders to parse.
    "sqlite": "SELECT run_id, key, value FROM {t} WHERE run_id IN (SELECT value FROM json_each(?))",
    "postgresql": "SELECT run_id, key, value FROM {t} WHERE run_id = ANY(%s)",
}


def _fetch_kv(store: Store, conn: Any, table: Any, ids: list[str]) -> list[tuple[Any, ...]]:
    """(run_id, key, value) tuples of ``table`` for the runs of one page.

    Read through the driver's own cursor: plain tuples, no per-row result objects, which
    is most of the cost when a page holds thousands of runs.
    """
    if not ids:
        return []
    sql = _KV_SQL[store.dialect].format(t=table.name)
    param = json.dumps(ids) if store.dialect == "sqlite" else ids
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, (param,))
        return list(cursor.fetchall())
    finally:
        cursor.close()
