"""Data drift: does the current data still look like the reference, column by column?

Each column gets a test chosen by its type and the sample sizes (or the one asked for),
and a status: ``drift``, ``ok`` or ``not_tested`` with the reason (a column missing on one
side, types that disagree, all values missing, too few rows). The dataset drifts when the
share of drifted columns among those tested reaches ``drift_share`` (0.5); when no column
could be tested, ``dataset_drift`` is ``None`` rather than a silent "no drift".

Presets (``method``):

``auto`` (the default) asks for two things before it calls a column drifted: a
significant test (p < α: Kolmogorov–Smirnov for numbers; the two-proportion z-test or the
contingency chi-squared for categories) *and* a change big enough to matter (normalised
Wasserstein distance ≥ 0.1 for numbers, Jensen–Shannon distance ≥ 0.1 for categories).
Why both: on 100,000 rows a p-value flags shifts far too small to matter (a 0.02 σ move
in the mean is "significant"), so p-values alone page people for nothing; a distance
alone, on 200 rows, exceeds its threshold by chance alone. Requiring both keeps the
false-alarm rate at or below α on every sample size (the p-value's guarantee) while
ignoring changes below the effect threshold. A column whose share of missing values
moves by 10 points or more (and significantly) is drifted too, whatever its values do.

``evidently`` reproduces Evidently's default selection rules and scores: up to 1,000
reference rows, K–S for numeric columns with more than 5 values, else chi-squared
(goodness of fit) or the z-test for two values; above 1,000 rows, normalised
Wasserstein for numbers and Jensen–Shannon for categories and numbers with ≤ 5 values.

Any registered test name (``ks``, ``chisquare``, ``psi``, …; see :mod:`.stattests`) runs
that test on every column it applies to; ``per_column`` picks a test (and threshold) for
single columns.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError
from mloop.monitoring import stattests as st
from mloop.monitoring.stattests import Categorical, Numeric, Side


class DriftStatus(enum.StrEnum):
    """A column's verdict: drifted, not drifted, or not tested (with the reason)."""

    DRIFT = "drift"
    OK = "ok"
    NOT_TESTED = "not_tested"


PRESETS = ("auto", "evidently")
EFFECT = {"numeric": ("wasserstein", 0.1), "categorical": ("jensenshannon", 0.1)}
MISSING_SHIFT = 0.10  # a change in the share of missing values that drifts a column
FEW_VALUES = 20  # numeric columns with at most this many values may be tested as counts
PLOT_BINS = 30
PLOT_LABELS = 12


@dataclass
class ColumnDrift:
    """The verdict on one column."""

    name: str
    kind: str | None  # numeric | categorical (None when the sides disagree or are absent)
    status: DriftStatus
    method: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    effect: dict[str, Any] | None = None  # {"method", "value", "threshold"}
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    reference_rows: int = 0
    current_rows: int = 0
    plot: dict[str, Any] | None = None

    @property
    def drifted(self) -> bool | None:
        """True, False, or None when the column could not be tested."""
        return (None if self.status == DriftStatus.NOT_TESTED
                else self.status == DriftStatus.DRIFT)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "method": self.method,
                "statistic": _num(self.statistic), "p_value": _num(self.p_value),
                "threshold": self.threshold, "effect": _finite(self.effect),
                "drifted": self.drifted, "status": str(self.status), "reason": self.reason,
                "warnings": self.warnings, "reference_rows": self.reference_rows,
                "current_rows": self.current_rows, "plot": _finite(self.plot)}


def _finite(obj: Any) -> Any:
    """JSON has no inf or NaN: such numbers (values at the float limit) become None."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _num(x: float | None) -> float | None:
    if x is None or not np.isfinite(x):
        return None if x is None or np.isnan(x) else (1e308 if x > 0 else -1e308)
    return float(x)


@dataclass
class DriftReport:
    """Per-column verdicts and the dataset's; ``to_html`` / ``to_json`` / ``save``."""

    columns: dict[str, ColumnDrift]
    method: str
    alpha: float
    drift_share: float
    reference: dict[str, Any] = field(default_factory=dict)  # name, rows, profile
    current: dict[str, Any] = field(default_factory=dict)  # name, rows
    created_at: int = 0
    seconds: float = 0.0

    @property
    def tested(self) -> list[ColumnDrift]:
        return [c for c in self.columns.values() if c.status != DriftStatus.NOT_TESTED]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.columns.values() if c.status == DriftStatus.DRIFT]

    @property
    def share_drifted(self) -> float:
        """Drifted columns ÷ tested columns (0.0 when none was tested)."""
        tested = self.tested
        return len(self.drifted_columns) / len(tested) if tested else 0.0

    @property
    def dataset_drift(self) -> bool | None:
        """Whether the share of drifted columns reaches ``drift_share``; None when no
        column could be tested."""
        return self.share_drifted >= self.drift_share if self.tested else None

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "current": self.current, "method": self.method,
                "alpha": self.alpha, "drift_share": self.drift_share,
                "share_drifted": self.share_drifted, "dataset_drift": self.dataset_drift,
                "drifted_columns": self.drifted_columns, "created_at": self.created_at,
                "seconds": round(self.seconds, 4),
                "columns": {k: c.to_dict() for k, c in self.columns.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_html(self) -> str:
        """One self-contained page: verdicts, a table, a small chart per column."""
        from mloop.monitoring.report import render_html

        return render_html(self.to_dict())

    def save(self, path: str | Path) -> Path:
        """Write HTML (``.html``/``.htm``) or JSON (anything else), atomically."""
        target = Path(path)
        text = self.to_html() if target.suffix.lower() in (".html", ".htm") else self.to_json()
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        return target


# -- the sides of a column -------------------------------------------------------------------

@dataclass
class _Col:
    """One column of one side, before the test: its kind, values and missing count."""

    kind: str | None  # numeric | categorical | other
    dtype: str
    rows: int
    missing: int
    side: Side | None = None


def frame_column(frame: Any, name: str) -> _Col:
    """A DataFrame column as a test side (NaN and ±inf count as missing)."""
    import pandas as pd

    series = frame[name]
    dtype = series.dtype
    rows = len(series)
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            return _Col("other", str(dtype), rows, int(series.isna().sum()))
        counts = series.value_counts(dropna=True, sort=False)
        labels = counts.index.to_numpy(dtype=object)
        side = Categorical(labels, counts.to_numpy(dtype=np.int64))
        return _Col("categorical", str(dtype), rows, rows - side.n, side)
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = values[np.isfinite(values)]
    return _Col("numeric", str(dtype), rows, rows - len(finite), Numeric.of(finite))


class _Source:
    """Reads columns from a DataFrame or a stored profile, one API for both."""

    def __init__(self, data: Any) -> None:
        from mloop.monitoring.profile import Profile

        self.profile = data if isinstance(data, Profile) else None
        if self.profile is None:
            data = _as_frame(data)
        self.data = data
        self.rows = self.profile.rows if self.profile is not None else len(data)
        self.names = (list(self.profile.columns) if self.profile is not None
                      else [str(c) for c in data.columns])

    def column(self, name: str) -> _Col:
        if self.profile is not None:
            return self.profile.column(name)
        return frame_column(self.data, name)


def _as_frame(data: Any) -> Any:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):  # a pyarrow Table
        return data.to_pandas()
    raise InvalidInputError(f"Drift compares DataFrames (or Arrow tables, or a stored "
                            f"profile), not {type(data).__name__}.")


# -- choosing and running the test ------------------------------------------------------------

def _choose(ref: Side, cur: Side, kind: str, method: str) -> tuple[str, bool]:
    """(test name, whether to demand the effect size too) for the preset ``method``."""
    few = kind == "numeric" and ref.distinct() <= 5 and cur.distinct() <= 5  # type: ignore[union-attr]
    values = (len(st.align(st.counted(ref), st.counted(cur))[0])
              if kind == "categorical" or few else 6)
    if method == "evidently":
        if ref.n <= 1000:
            if kind == "numeric" and values > 5:
                return "ks", False
            return ("chisquare_gof" if values > 2 else "z"), False
        return ("wasserstein" if kind == "numeric" and values > 5 else "jensenshannon"), False
    if kind == "numeric" and values > 5:
        return "ks", True
    return ("chisquare" if values > 2 else "z"), True


def _run(test: st.DriftTest, ref: Side, cur: Side, kind: str, preset: str) -> st.Result:
    if kind == "numeric" and "numeric" not in test.kinds:
        ref, cur = st.counted(ref), st.counted(cur)  # a few-valued numeric column, counted
    if preset == "evidently" and test.name in ("psi", "jensenshannon"):
        return st.Result(_evidently_binned(test.name, ref, cur))
    return test.fn(ref, cur)


def _evidently_binned(name: str, ref: Side, cur: Side) -> float:
    p, q = st.shares(ref, cur, edges="sturges")
    return st.psi_value(p, q) if name == "psi" else st.js_distance(p, q)


def _applies(test: st.DriftTest, kind: str, ref: Side, cur: Side) -> bool:
    if kind in test.kinds:
        return True
    few = kind == "categorical" or ref.distinct() <= FEW_VALUES  # type: ignore[union-attr]
    if "categorical" in test.kinds:
        return few  # a numeric column of a few values, counted
    if "binary" in test.kinds and few:
        return len(st.align(st.counted(ref), st.counted(cur))[0]) <= 2
    return False


@dataclass(frozen=True)
class _Plan:
    method: str
    alpha: float
    per_column: Mapping[str, Any]
    min_rows: int


def _column(name: str, ref_src: _Source, cur_src: _Source, plan: _Plan) -> ColumnDrift:
    if name not in ref_src.names:
        return ColumnDrift(name, None, DriftStatus.NOT_TESTED, current_rows=cur_src.rows,
                           reason="not in the reference data (a new column?)")
    if name not in cur_src.names:
        return ColumnDrift(name, None, DriftStatus.NOT_TESTED, reference_rows=ref_src.rows,
                           reason="missing in the current data")
    ref, cur = ref_src.column(name), cur_src.column(name)
    out = ColumnDrift(name, ref.kind if ref.kind == cur.kind else None,
                      DriftStatus.NOT_TESTED,
                      reference_rows=ref.rows - ref.missing,
                      current_rows=cur.rows - cur.missing)
    reason = _untestable(ref, cur, plan.min_rows)
    if reason is not None:
        out.reason = reason
        return out
    assert ref.side is not None
    assert cur.side is not None
    assert ref.kind is not None
    kind = ref.kind
    try:
        with np.errstate(all="ignore"):  # values near the float limit: judged below
            _test_column(out, ref, cur, kind, plan)
    except InvalidInputError as exc:
        out.status, out.reason = DriftStatus.NOT_TESTED, exc.message
    with np.errstate(all="ignore"):
        out.plot = _plot(ref.side, cur.side, kind)
    return out


def _untestable(ref: _Col, cur: _Col, min_rows: int) -> str | None:
    if cur.rows == 0:
        return "no rows in the current data (an empty window)"
    if ref.rows == 0:
        return "no rows in the reference data"
    if ref.kind != cur.kind:
        return (f"type mismatch: {ref.kind} ({ref.dtype}) in the reference, {cur.kind} "
                f"({cur.dtype}) in the current data; cast one side so that both agree")
    if ref.kind == "other":
        return f"{ref.dtype} columns are not tested for drift"
    for label, col in (("reference", ref), ("current", cur)):
        present = col.rows - col.missing
        if present == 0:
            return f"all values are missing in the {label} data"
        if present < min_rows:
            return (f"only {present} non-missing values in the {label} data; at least "
                    f"{min_rows} are needed (min_rows)")
    return None


def _test_column(out: ColumnDrift, ref: _Col, cur: _Col, kind: str, plan: _Plan) -> None:
    assert ref.side is not None
    assert cur.side is not None
    chosen = plan.per_column.get(out.name)
    threshold: float | None = None
    if isinstance(chosen, Mapping):
        threshold = chosen.get("threshold")
        chosen = chosen.get("method")
    effect_too = False
    preset = plan.method if plan.method in PRESETS else "auto"
    if chosen is None and plan.method in PRESETS:
        chosen, effect_too = _choose(ref.side, cur.side, kind, plan.method)
    elif chosen is None:
        chosen = plan.method
    test = st.get_test(str(chosen))
    if not _applies(test, kind, ref.side, cur.side):
        fallback, _ = _choose(ref.side, cur.side, kind, "auto")
        out.warnings.append(f"{test.name} does not apply to {kind} columns; "
                            f"used {fallback}")
        test = st.get_test(fallback)
    result = _run(test, ref.side, cur.side, kind, preset)
    if np.isnan(result.statistic) or (result.p_value is not None and np.isnan(result.p_value)):
        raise InvalidInputError(f"{test.name} gave no number here (values too large to "
                                "compute with?)")
    if threshold is None:
        threshold = plan.alpha if test.score == "p_value" else test.threshold
    drifted = test.drifted(result, threshold)
    out.method, out.statistic, out.p_value, out.threshold = (
        test.name, result.statistic, result.p_value, threshold)
    out.warnings.extend(result.notes)
    if effect_too:
        effect_kind = "numeric" if test.name == "ks" else "categorical"
        name, limit = EFFECT[effect_kind]
        value = _run(st.get_test(name), ref.side, cur.side, kind, "auto").statistic
        out.effect = {"method": name, "value": round(float(value), 6), "threshold": limit}
        drifted = drifted and value >= limit
        if _missing_shift(out, ref, cur, plan.alpha):
            drifted = True
    if kind == "categorical":
        _unseen(out, ref.side, cur.side)  # type: ignore[arg-type]
    out.status = DriftStatus.DRIFT if drifted else DriftStatus.OK


def _missing_shift(out: ColumnDrift, ref: _Col, cur: _Col, alpha: float) -> bool:
    from scipy import stats

    p1, p2 = ref.missing / ref.rows, cur.missing / cur.rows
    if abs(p1 - p2) < MISSING_SHIFT:
        return False
    pooled = (ref.missing + cur.missing) / (ref.rows + cur.rows)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / ref.rows + 1 / cur.rows))
    if 2 * stats.norm.sf(abs(z)) >= alpha:
        return False
    out.reason = (f"missing values went from {p1:.1%} in the reference to {p2:.1%} "
                  f"in the current data")
    return True


def _unseen(out: ColumnDrift, ref: Categorical, cur: Categorical) -> None:
    labels, r, c = st.align(ref, cur)
    new = (r == 0) & (c > 0)
    if not new.any():
        return
    names = ", ".join(repr(str(x)) for x in labels[new][:5]) + (" …" if new.sum() > 5 else "")
    where = " (or among the profile's rarest, which it did not keep)" if ref.other else ""
    out.warnings.append(f"{int(new.sum())} categor{'y' if new.sum() == 1 else 'ies'} never "
                        f"seen in the reference{where}: {names} "
                        f"({c[new].sum() / cur.n:.1%} of current rows)")


def _plot(ref: Side, cur: Side, kind: str) -> dict[str, Any]:
    if isinstance(ref, Numeric) and isinstance(cur, Numeric) and kind == "numeric":
        lo = min(_at(ref.values, 0.005), _at(cur.values, 0.005))
        hi = max(_at(ref.values, 0.995), _at(cur.values, 0.995))
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, PLOT_BINS + 1)
        inner = np.concatenate([[-np.inf], edges[1:-1], [np.inf]])
        return {"kind": "numeric", "edges": [round(float(e), 6) for e in edges],
                "reference": _rounded(st.histogram(ref, inner) / len(ref.values)),
                "current": _rounded(st.histogram(cur, inner) / len(cur.values))}
    labels, r, c = st.align(st.counted(ref), st.counted(cur))
    rs, cs = r / max(r.sum(), 1), c / max(c.sum(), 1)
    top = np.argsort(-(rs + cs), kind="stable")[:PLOT_LABELS]
    return {"kind": "categorical", "labels": [str(x) for x in labels[top]],
            "reference": _rounded(rs[top]), "current": _rounded(cs[top])}


def _at(values: np.ndarray, q: float) -> float:
    return float(values[min(int(q * len(values)), len(values) - 1)])


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]


# -- the entry point -------------------------------------------------------------------------

def drift(reference: Any, current: Any, *, columns: list[str] | None = None,
          method: str = "auto", alpha: float = 0.05, drift_share: float = 0.5,
          per_column: Mapping[str, str | Mapping[str, Any]] | None = None,
          min_rows: int = 30) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column.

    ``reference``: a DataFrame, an Arrow table or a :class:`~mloop.monitoring.Profile`
    (a dataset version's stored statistics); ``current``: a DataFrame or Arrow table.
    ``columns`` defaults to every column of either side. ``method``: ``auto``,
    ``evidently`` or one test for every column (see the module docs); ``per_column``:
    ``{"age": "psi"}`` or ``{"age": {"method": "psi", "threshold": 0.2}}``. ``alpha`` is
    the significance level of p-value tests; ``drift_share`` the share of drifted
    columns that makes the dataset drift; ``min_rows`` the fewest non-missing values a
    side needs for a column to be tested.
    """
    if method not in PRESETS:
        st.get_test(method)  # an unknown name fails here, listing the known ones
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must be between 0 and 1, not {alpha}.")
    if not 0 < drift_share <= 1:
        raise InvalidInputError(f"drift_share must be in (0, 1], not {drift_share}.")
    for spec in (per_column or {}).values():
        st.get_test(str(spec.get("method") if isinstance(spec, Mapping) else spec))
    start = time.perf_counter()
    ref_src, cur_src = _Source(reference), _Source(current)
    names = list(columns) if columns is not None else (
        ref_src.names + [n for n in cur_src.names if n not in set(ref_src.names)])
    plan = _Plan(method, alpha, per_column or {}, max(int(min_rows), 1))
    big = ref_src.rows + cur_src.rows >= 50_000 and len(names) > 1
    if big:  # sorting and counting release the GIL: columns side by side
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            results = list(pool.map(lambda n: _column(n, ref_src, cur_src, plan), names))
    else:
        results = [_column(n, ref_src, cur_src, plan) for n in names]
    return DriftReport(
        {c.name: c for c in results}, method, alpha, drift_share,
        reference={"name": None, "rows": ref_src.rows, "profile": ref_src.profile is not None},
        current={"name": None, "rows": cur_src.rows},
        created_at=int(time.time() * 1000), seconds=time.perf_counter() - start)
