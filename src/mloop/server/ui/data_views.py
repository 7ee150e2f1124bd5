"""The numbers behind the Datasets pages: a version's columns as histograms, and what
changed between two versions (schema, distribution shift, rows matched by a key).

Everything here reads the stored profile of a version (:mod:`mloop.monitoring.profile`:
a 1,000-point quantile sample per numeric column, the counts of each category) rather
than its rows, so a page over a large table costs what its profile costs. Only the
changed rows of a diff need the rows themselves; they are compared with whole-column
pandas operations, never a Python loop per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup

from mloop.errors import InvalidInputError
from mloop.monitoring import stattests as st
from mloop.server.ui.render import number
from mloop.server.ui.svg import Bars, histogram

if TYPE_CHECKING:
    import pandas as pd

    from mloop.monitoring.profile import Profile

BINS = 24  # bars of a numeric column's histogram
TOP = 10  # categories drawn per column (the rest are one bar)
ROWS_SHOWN = 50  # rows of each kind a keyed diff lists
CELLS_SHOWN = 500  # changed cells a keyed diff lists
WIDE = 12  # columns shown of an added or removed row (the key first)


@dataclass
class ColumnView:
    """One column of a version: its type, counts, distribution picture and summary."""

    name: str
    kind: str  # numeric | categorical | other
    dtype: str
    rows: int
    missing: int
    distinct: int | None
    chart: Markup
    summary: dict[str, float | None] = field(default_factory=dict)  # numeric: quantiles …
    top: list[tuple[str, int, float]] = field(default_factory=list)  # (label, rows, share)

    def row(self) -> dict[str, Any]:
        """The column as a row of the profile table."""
        top = ", ".join(label for label, _, _ in self.top[:3])
        return {"name": self.name, "kind": self.kind, "dtype": self.dtype, "rows": self.rows,
                "missing": self.missing, "distinct": self.distinct, **self.summary,
                "top": top}


def _numeric_bars(side: st.Numeric) -> tuple[list[float] | list[str], list[float]]:
    """Histogram edges and counts of a numeric side: by value when it has few values,
    else over equal-width bins between its lowest and highest quantiles."""
    if side.counts is not None:  # a few distinct values: one bar each, in value order
        labels = side.counts.labels.astype(float)
        order = np.argsort(labels, kind="stable")
        return ([number(float(v)) for v in labels[order]],
                side.counts.counts[order].astype(float).tolist())
    values = side.values
    lo, hi = float(values[0]), float(values[-1])
    if hi <= lo:
        return [number(lo)], [float(side.n)]
    edges = np.linspace(lo, hi, BINS + 1)
    # the quantile sample stands for ``side.n`` rows: each point weighs n / len(values)
    counts = st.histogram(side, edges) * (side.n / len(values))
    return edges.tolist(), counts.tolist()


def _categories(side: st.Categorical) -> list[tuple[str, int, float]]:
    total = max(side.n, 1)
    order = np.argsort(-side.counts, kind="stable")[:TOP]
    return [(str(side.labels[i]), int(side.counts[i]), int(side.counts[i]) / total)
            for i in order]


def column_views(profile: Profile, stats: dict[str, Any] | None,
                 names: list[str] | None = None) -> list[ColumnView]:
    """The views of ``names`` (default: every column, in the file's order); ``stats``: the
    version's summary (exact min, max and mean where it has them)."""
    exact = (stats or {}).get("columns", {})
    out = []
    for name in names if names is not None else list(profile.columns):
        col = profile.column(name)
        info = profile.columns[name]
        title = f"Distribution of {name}"
        view = ColumnView(name, col.kind or "other", str(info.get("dtype", "")), col.rows,
                          col.missing, info.get("distinct"),
                          Markup('<p class="muted">Not drawn for this type.</p>'))
        side = col.side
        if isinstance(side, st.Numeric) and len(side.values):
            edges, counts = _numeric_bars(side)
            view.chart = histogram(edges, [Bars(name, counts)], title=title)
            if side.counts is not None:  # few values: each listed with its count
                view.top = [(str(e), int(n), n / max(side.n, 1))
                            for e, n in zip(edges, counts, strict=True)][:TOP]
            q = side.values
            known = exact.get(name, {})
            view.summary = {
                "min": known.get("min", float(q[0])),
                **{f"p{p}": known.get(f"p{p}", float(np.quantile(q, p / 100)))
                   for p in (25, 50, 75)},
                "max": known.get("max", float(q[-1])), "mean": known.get("mean"),
                "std": info.get("std")}
        elif isinstance(side, st.Categorical):
            view.top = _categories(side)
            view.distinct = len(side.labels) + (1 if side.other else 0) \
                if view.distinct is None else view.distinct
            labels = [label for label, _, _ in view.top]
            counts = [float(n) for _, n, _ in view.top]
            rest = side.n - sum(counts)
            if rest > 0:
                labels.append("(all others)")
                counts.append(float(rest))
            if labels:
                view.chart = histogram(labels, [Bars(name, counts)], title=title)
        out.append(view)
    return out


# ── two versions ─────────────────────────────────────────────────────────────────────
@dataclass
class SchemaChange:
    added: list[str]
    removed: list[str]
    type_changed: list[tuple[str, str, str]]  # (column, type in a, type in b)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.type_changed)


def schema_change(a: Profile, b: Profile) -> SchemaChange:
    """Columns added, removed and of another type from ``a`` to ``b`` (Arrow types)."""
    before, after = a.columns, b.columns
    return SchemaChange(
        added=[c for c in after if c not in before],
        removed=[c for c in before if c not in after],
        type_changed=[(c, str(before[c].get("dtype")), str(after[c].get("dtype")))
                      for c in before if c in after
                      and before[c].get("dtype") != after[c].get("dtype")])


@dataclass
class Shift:
    """How one column's distribution moved from version a to b."""

    name: str
    kind: str | None
    status: str  # drift | ok | not_tested
    method: str | None
    statistic: float | None
    p_value: float | None
    effect: str
    reason: str
    chart: Markup

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "status": self.status,
                "method": self.method, "statistic": self.statistic, "p_value": self.p_value,
                "effect": self.effect, "reason": self.reason}


def drift_report(a: Profile, b: Profile) -> Any:
    """The drift test of each column ``a`` and ``b`` share (the monitoring module's
    ``auto`` preset, ``a`` as the reference)."""
    from mloop.monitoring.datadrift import drift

    return drift(a, b, columns=[c for c in a.columns if c in b.columns])


def shifts(report: Any, label_a: str, label_b: str,
           draw: set[str] | None = None) -> list[Shift]:
    """Each column of a :func:`drift_report` with both distributions drawn over the same
    bins (only the columns in ``draw``, when given)."""
    out = []
    for name, c in report.columns.items():
        plot = (c.plot or {}) if draw is None or name in draw else {}
        if plot.get("kind") == "numeric":
            chart = histogram(plot["edges"], [Bars(label_a, plot["reference"]),
                                              Bars(label_b, plot["current"])],
                              title=f"{name}: {label_a} and {label_b}")
        elif plot.get("kind") == "categorical":
            chart = histogram(plot["labels"], [Bars(label_a, plot["reference"]),
                                               Bars(label_b, plot["current"])],
                              title=f"{name}: {label_a} and {label_b}")
        else:
            chart = Markup('<p class="muted">Not drawn.</p>')
        effect = (f"{c.effect['method']} {number(c.effect['value'])} "
                  f"(threshold {number(c.effect['threshold'])})" if c.effect else "")
        out.append(Shift(name, c.kind, str(c.status), c.method, c.statistic, c.p_value,
                         effect, c.reason or "; ".join(c.warnings), chart))
    return out


@dataclass
class RowChanges:
    """Rows matched by a key column: how many were added, removed, changed, and the first
    of each (``cells``: one row per changed value of the first changed rows)."""

    key: str
    added: int
    removed: int
    changed: int
    unchanged: int
    duplicates: tuple[int, int]  # repeated keys in a and in b (the first of each counts)
    columns: list[str]  # the columns compared
    added_rows: list[dict[str, Any]]
    removed_rows: list[dict[str, Any]]
    added_columns: list[str]  # the columns shown of added rows (the key first)
    removed_columns: list[str]  # and of removed rows
    cells: list[dict[str, Any]]  # key, column, a, b


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    # ≤ ROWS_SHOWN rows: the one place rows become Python objects
    return frame[columns].astype(object).where(frame[columns].notna(), None) \
        .to_dict(orient="records")


def row_changes(old: pd.DataFrame, new: pd.DataFrame, key: str,
                limit: int = ROWS_SHOWN) -> RowChanges:
    """Rows of ``new`` whose ``key`` is not in ``old`` (added), the reverse (removed), and
    those in both whose values differ in a common column (changed); vectorised."""
    if key not in old.columns or key not in new.columns:
        both = [c for c in old.columns if c in set(new.columns)]
        raise InvalidInputError(f"Key column {key!r} is not in both versions; choose one of "
                                f"{', '.join(map(repr, both[:20])) or 'none'}.")
    dupes = (int(old[key].duplicated().sum()), int(new[key].duplicated().sum()))
    o = old.drop_duplicates(key).set_index(key)
    n = new.drop_duplicates(key).set_index(key)
    common = [c for c in o.columns if c in set(n.columns)]
    in_new = o.index.isin(n.index)
    added_mask = ~n.index.isin(o.index)
    a = o.loc[in_new, common]
    b = n.reindex(a.index)[common]
    differs = (a.ne(b) & ~(a.isna() & b.isna())).to_numpy(dtype=bool)
    changed_mask = differs.any(axis=1)
    first = np.flatnonzero(changed_mask)[:limit]
    rows_i, cols_j = np.nonzero(differs[first])
    rows_i, cols_j = rows_i[:CELLS_SHOWN], cols_j[:CELLS_SHOWN]
    va = a.iloc[first].to_numpy(dtype=object)
    vb = b.iloc[first].to_numpy(dtype=object)
    keys = a.index[first].to_numpy(dtype=object)
    cells = [{"key": k, "column": common[j], "a": _plain(x), "b": _plain(y)}
             for k, j, x, y in zip(keys[rows_i], cols_j, va[rows_i, cols_j],
                                   vb[rows_i, cols_j], strict=True)]
    shown = [key, *[c for c in new.columns if c != key][:WIDE - 1]]
    shown_old = [key, *[c for c in old.columns if c != key][:WIDE - 1]]
    return RowChanges(
        key, added=int(added_mask.sum()), removed=int((~in_new).sum()),
        changed=int(changed_mask.sum()), unchanged=int((~changed_mask).sum()),
        duplicates=dupes, columns=common,
        added_rows=_records(n[added_mask].head(limit).reset_index(), shown),
        removed_rows=_records(o[~in_new].head(limit).reset_index(), shown_old),
        added_columns=shown, removed_columns=shown_old, cells=cells)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value
