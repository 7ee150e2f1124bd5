"""Searching runs: the filter parsed, its SQL run by the runs repository, a DataFrame built.

The filter's compilation to SQL is :mod:`mloop.repositories.run_search`'s. Results come
back as one pandas DataFrame: one row per run, ``metrics.*``, ``params.*`` and
``tags.*`` columns, pivoted in pandas rather than row by row in Python.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mloop.core.text import text_problem
from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.runs import BASE_COLUMNS, SearchQuery
from mloop.tracking.experiments import get_experiment
from mloop.tracking.filter import Node, OrderKey, parse_filter, parse_order_by

DEFAULT_MAX_RESULTS = 1000
_MAX_FILTER = 1 << 20


@functools.lru_cache(maxsize=256)
def _parse_filter(text: str | None) -> Node | None:
    return parse_filter(text)


@functools.lru_cache(maxsize=256)
def _parse_order(items: tuple[str, ...]) -> tuple[OrderKey, ...]:
    return tuple(parse_order_by(list(items)))


def _experiment_id(project: Project, name_or_id: str) -> str:
    # Experiments are never renamed or hard-deleted, so a found id stays right.
    known: dict[str, str] = project.component("tracking.experiment_ids", lambda _p: {})
    if name_or_id not in known:
        known[name_or_id] = get_experiment(project, name_or_id).id
    return known[name_or_id]


def page_token_at(offset: int) -> str:
    """The ``page_token`` of the page that starts after ``offset`` matching runs (a UI's
    page N starts after ``(N - 1) * max_results``)."""
    if offset < 0:
        raise InvalidInputError("A page starts at offset 0 or later.")
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


OrderBy = list[str] | tuple[str, ...] | str | None


def search_runs(project: Project, *, experiment: str | Sequence[str] | None = None,
                filter: str | None = None, order_by: OrderBy = None,
                max_results: int | None = DEFAULT_MAX_RESULTS, page_token: str | None = None,
                include_deleted: bool = False) -> pd.DataFrame:
    """Runs matching ``filter`` as a DataFrame, one row per run.

    ``experiment`` narrows to one or more experiments (names or ids). ``max_results``
    caps one page (``None`` for all); when more remain, ``df.attrs["next_page_token"]``
    fetches the next page. Columns: run_id, experiment, name, status, start_time,
    end_time (UTC datetimes), parent_id, user, then ``metrics.*``, ``params.*``, ``tags.*``.
    """
    if filter is not None and (problem := text_problem(filter, _MAX_FILTER)) is not None:
        raise InvalidInputError(f"Invalid filter: {problem}.")
    node = _parse_filter(filter)
    order = _parse_order((order_by,) if isinstance(order_by, str) else tuple(order_by or ()))
    exp_ids: tuple[str, ...] | None = None
    if experiment is not None:
        names = [experiment] if isinstance(experiment, str) else list(experiment)
        exp_ids = tuple(_experiment_id(project, n) for n in names)
    if max_results is not None and max_results < 1:
        raise InvalidInputError("max_results must be at least 1 (or None for every run).")
    offset = _offset(page_token)
    runs = backend(project).runs
    runs.reap()  # runs whose process died read KILLED, in filters too
    page = runs.search(SearchQuery(node, order, exp_ids, include_deleted, max_results, offset))
    frame = _assemble(page.rows, page.kv)
    frame.attrs["next_page_token"] = page_token_at(offset + len(page.rows)) if page.more else None
    return frame


def _columns(rows: list[Any], width: int) -> list[list[Any]]:
    """Row tuples to column lists (pandas builds frames from columns far faster)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]


def _wide(ids: pd.Index, rows: list[Any], prefix: str) -> dict[str, Any]:
    """Pivot (run_id, key, value) rows into one column per key, aligned with ``ids``.

    Done with integer positions into a preallocated array: one vectorised assignment
    instead of pandas' general (MultiIndex-building) pivot.
    """
    run_ids, keys, values = _columns(rows, 3)
    codes, uniques = pd.factorize(np.array(keys, dtype=object), sort=True)
    positions = ids.get_indexer(run_ids)
    numeric = prefix == "metrics"
    grid = np.full((len(ids), len(uniques)), np.nan if numeric else None,
                   dtype="float64" if numeric else object)
    grid[positions, codes] = np.array(values, dtype="float64") if numeric else values
    return {f"{prefix}.{k}": grid[:, i] for i, k in enumerate(uniques)}


def _times(values: list[Any]) -> Any:
    ms = np.array([np.nan if v is None else v for v in values], dtype="float64")
    return pd.to_datetime(ms, unit="ms", utc=True)


def _assemble(rows: list[Any], extra: dict[str, list[Any]]) -> pd.DataFrame:
    cols = dict(zip(BASE_COLUMNS, _columns(rows, len(BASE_COLUMNS)), strict=True))
    for col in ("start_time", "end_time"):
        cols[col] = _times(cols[col])
    ids = pd.Index(cols["run_id"])
    data: dict[str, Any] = dict(cols)
    for prefix, kv in extra.items():
        if kv:
            data.update(_wide(ids, kv, prefix))
    return pd.DataFrame(data, columns=list(data))
