"""The two-sample drift tests, one registry, the built-ins registered like plugins.

Every test compares a *reference* side with a *current* side of one column. A side is
either :class:`Numeric` (sorted finite values) or :class:`Categorical` (labels and their
counts); a stored reference profile yields the same sides (a 1,000-point quantile
sample standing for the rows it was computed from), so every test runs on raw data and
on profiles alike.

==================  ===========  ===========  ================================================
test                columns      score        drifted when (default threshold)
==================  ===========  ===========  ================================================
``ks``              numeric      p-value      p < α (0.05); two-sample Kolmogorov–Smirnov,
                                              equal to ``scipy.stats.ks_2samp`` (beyond
                                              ~20,000 rows a side, p < 0.02 comes from the
                                              Kolmogorov limit: scipy's exact tail takes
                                              ~0.6 s a column there and differs by 1–3 %)
``chisquare``       categorical  p-value      p < α; chi-squared on the 2 × k contingency
                                              table of both samples (``chi2_contingency``)
``chisquare_gof``   categorical  p-value      p < α; goodness of fit against the reference
                                              frequencies taken as the population (Evidently's
                                              default; too many false alarms, see below)
``z``               binary       p-value      p < α; two-proportion z-test (pooled)
``psi``             both         distance     PSI ≥ 0.1; 10 reference-decile bins (Siddiqi
                                              2006), label frequencies for categories
``wasserstein``     numeric      distance     W1 / σ_reference ≥ 0.1 (``wasserstein_distance``)
``jensenshannon``   both         distance     JS distance ≥ 0.1, natural log (``scipy``'s)
==================  ===========  ===========  ================================================

``chisquare_gof`` divides by the expected counts of the reference as if they were exact,
so the variance of the reference sample is ignored: with equal sample sizes the statistic
is about twice what it should be and a 5-level column with no drift is flagged about a
quarter of the time at α = 0.05. The contingency test (``chisquare``) counts both samples
and holds α. The Evidently preset keeps it only to reproduce Evidently's scores.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError

KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp(method="auto") is exact up to this sample size
KS_LIMIT_BELOW = 0.02


@dataclass
class Numeric:
    """One side of a numeric column: its finite values, sorted."""

    values: np.ndarray
    n: int  # the rows the values stand for (a profile's sample size; else len(values))
    std: float
    exact: bool = True  # the values are the data (not a profile's quantile sample)
    counts: Categorical | None = None  # value counts when the column has few values
    known_distinct: int | None = None  # a profile's count of distinct values
    cache: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, values: np.ndarray) -> Numeric:
        v = np.sort(values, kind="quicksort")
        with np.errstate(all="ignore"):  # values near the float limit overflow to inf
            std = float(np.std(v)) if len(v) else 0.0
        return cls(v, len(v), std)

    def distinct(self) -> int:
        if self.counts is not None:
            return len(self.counts.labels)
        if self.known_distinct is not None:
            return self.known_distinct
        if not len(self.values):
            return 0
        return int(np.count_nonzero(self.values[1:] != self.values[:-1])) + 1

    def as_categorical(self) -> Categorical:
        if self.counts is not None:
            return self.counts
        labels, counts = np.unique(self.values, return_counts=True)
        return Categorical(labels.astype(object), counts.astype(np.int64))


@dataclass
class Categorical:
    """One side of a categorical column: labels and how many rows hold each."""

    labels: np.ndarray  # object array
    counts: np.ndarray  # int64
    other: int = 0  # a profile's rows in labels beyond those it kept

    @property
    def n(self) -> int:
        return int(self.counts.sum()) + self.other


Side = Numeric | Categorical


@dataclass(frozen=True)
class Result:
    statistic: float
    p_value: float | None = None
    notes: list[str] = field(default_factory=list)


TestFn = Callable[[Any, Any], Result]


@dataclass(frozen=True)
class DriftTest:
    """A registered test: what it accepts and how its score decides drift."""

    name: str
    kinds: tuple[str, ...]  # "numeric", "categorical", "binary"
    score: str  # "p_value" (drift when below alpha) or "distance" (drift at or above)
    threshold: float  # the default for distances; alpha for p-values comes from the caller
    fn: TestFn

    def drifted(self, result: Result, threshold: float) -> bool:
        if self.score == "p_value":
            return result.p_value is not None and result.p_value < threshold
        return bool(result.statistic >= threshold)


_TESTS: dict[str, DriftTest] = {}


def register_test(name: str, fn: TestFn, *, kinds: tuple[str, ...], score: str,
                  threshold: float = 0.05) -> None:
    """Add (or replace) a drift test. ``fn(reference, current) -> Result`` receives
    :class:`Numeric` sides for numeric kinds and :class:`Categorical` sides otherwise."""
    if score not in ("p_value", "distance"):
        raise InvalidInputError(f"score must be 'p_value' or 'distance', not {score!r}.")
    _TESTS[name] = DriftTest(name, kinds, score, threshold, fn)


def get_test(name: str) -> DriftTest:
    """The test registered as ``name``; the error lists the known ones."""
    try:
        return _TESTS[name]
    except KeyError:
        raise InvalidInputError(f"Unknown drift test {name!r}; known: "
                                f"{', '.join(sorted(_TESTS))}.") from None


def known_tests() -> list[str]:
    """The names of the registered drift tests, sorted."""
    return sorted(_TESTS)


# -- numeric -------------------------------------------------------------------------------

def _distances(ref: Numeric, cur: Numeric) -> tuple[float, float]:
    """(Kolmogorov–Smirnov statistic, first Wasserstein distance) of two sorted sides.

    Both empirical CDFs are read off the merge of the two samples, found without sorting
    again: a value's place in the merge is its rank in its own side plus the number of
    the other side's values before it (ties: reference first). K–S is the largest CDF
    gap at the end of each run of equal values; Wasserstein integrates the gap. Equal to
    ``scipy.stats.ks_2samp`` and ``wasserstein_distance``, at a fraction of the work.
    """
    key = id(cur)
    cached = ref.cache.get(key)
    if cached is not None:
        return cached
    r, c = ref.values, cur.values
    n, m = len(r), len(c)
    pos = np.searchsorted(c, r, side="left")
    pos += np.arange(n)
    from_ref = np.zeros(n + m, dtype=bool)
    from_ref[pos] = True
    merged = np.empty(n + m, dtype=np.float64)
    merged[pos] = r
    del pos
    merged[~from_ref] = c
    gap = np.cumsum(from_ref, dtype=np.float64)  # reference values so far
    del from_ref
    # F_ref - F_cur = k_ref / n - (k - k_ref) / m
    gap *= 1 / n + 1 / m
    gap -= np.arange(1, n + m + 1, dtype=np.float64) / m
    np.abs(gap, out=gap)
    steps = np.diff(merged)
    ends = np.append(steps != 0, True)
    d = float(gap[ends].max())
    w = float(np.dot(gap[:-1], steps))
    ref.cache[key] = (d, w)
    return d, w


def ks_statistic(ref: Numeric, cur: Numeric) -> float:
    """max |F_ref − F_cur| over the merged sample."""
    return _distances(ref, cur)[0]


def _ks(ref: Numeric, cur: Numeric) -> Result:
    from scipy import stats

    if ref.exact and max(ref.n, cur.n) <= KS_EXACT_MAX_N:
        with warnings.catch_warnings():  # "exact calculation unsuccessful": scipy then
            warnings.simplefilter("ignore", RuntimeWarning)  # answers asymptotically
            res = stats.ks_2samp(ref.values, cur.values)
        return Result(float(res.statistic), float(res.pvalue))
    # scipy's asymptotic branch, on our merged CDFs (a profile's n is its sample size)
    d = ks_statistic(ref, cur)
    m, n = sorted((float(ref.n), float(cur.n)), reverse=True)
    en = np.round(m * n / (m + n))
    limit = float(stats.kstwobign.sf(d * np.sqrt(en)))
    # scipy's finite-n tail (kstwo) costs ~0.6 s per column at 10^6 rows below p ≈ 0.02;
    # there the Kolmogorov limit is within 1–3 % of it and decides alike at any usual α.
    p = limit if en > KS_EXACT_MAX_N and limit < KS_LIMIT_BELOW else float(stats.kstwo.sf(d, en))
    return Result(d, min(max(p, 0.0), 1.0))


def wasserstein(ref: Numeric, cur: Numeric) -> float:
    """First Wasserstein distance (``scipy.stats.wasserstein_distance``) from sorted sides."""
    return _distances(ref, cur)[1]


def _wasserstein_norm(ref: Numeric, cur: Numeric) -> Result:
    return Result(wasserstein(ref, cur) / max(ref.std, 0.001))


def quantile_edges(ref: Numeric, bins: int = 10) -> np.ndarray:
    """Inner edges at the reference's quantiles (ties collapsed), open at both ends."""
    inner = np.unique(np.quantile(ref.values, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.concatenate([[-np.inf], inner, [np.inf]])


def sturges_edges(ref: Numeric, cur: Numeric) -> np.ndarray:
    """``np.histogram_bin_edges(both, "sturges")`` from the sorted sides' ends."""
    lo = min(ref.values[0], cur.values[0])
    hi = max(ref.values[-1], cur.values[-1])
    size = len(ref.values) + len(cur.values)
    return np.histogram_bin_edges(np.array([lo, hi], dtype=float), bins=_sturges(lo, hi, size),
                                  range=(lo, hi))


def _sturges(lo: float, hi: float, size: int) -> int:
    ptp = hi - lo
    if ptp == 0:
        return 1
    width = ptp / (np.log2(size) + 1.0)
    return int(np.ceil(ptp / width))


def histogram(side: Numeric, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` (last bin closed) by searching the sorted values."""
    starts = np.searchsorted(side.values, edges[:-1], side="left")
    ends = np.append(starts[1:], np.searchsorted(side.values, edges[-1], side="right"))
    return (ends - starts).astype(np.float64)


def fill_zeros(p: np.ndarray) -> np.ndarray:
    """Empty bins get a tiny share so that logarithms stay finite (as Evidently does)."""
    p = p.copy()
    nonzero = p[p != 0]
    if len(nonzero) and len(nonzero) < len(p):
        small = nonzero.min()
        p[p == 0] = small / 1e6 if small <= 1e-4 else 1e-4
    return p


def psi_value(p: np.ndarray, q: np.ndarray) -> float:
    """Population stability index of two frequency vectors (zero bins filled)."""
    p, q = fill_zeros(p), fill_zeros(q)
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(p, q))


def shares(ref: Side, cur: Side, *, edges: str = "quantile") -> tuple[np.ndarray, np.ndarray]:
    """The two frequency vectors the binned tests compare."""
    if isinstance(ref, Categorical) or isinstance(cur, Categorical):
        _, r, c = align(counted(ref), counted(cur))
        return r / max(counted(ref).n, 1), c / max(counted(cur).n, 1)
    if ref.distinct() <= 20:  # few values: compare them one by one
        return shares(ref.as_categorical(), cur.as_categorical())
    e = quantile_edges(ref) if edges == "quantile" else sturges_edges(ref, cur)
    return histogram(ref, e) / len(ref.values), histogram(cur, e) / len(cur.values)


def counted(side: Side) -> Categorical:
    """``side`` as counts of its values (a numeric side is counted value by value)."""
    return side if isinstance(side, Categorical) else side.as_categorical()


def _psi(ref: Side, cur: Side) -> Result:
    return Result(psi_value(*shares(ref, cur)))


def _jensenshannon(ref: Side, cur: Side) -> Result:
    return Result(js_distance(*shares(ref, cur)))


# -- categorical ---------------------------------------------------------------------------

def align(ref: Categorical, cur: Categorical) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels of either side, reference counts, current counts) on the union of labels."""
    labels = np.concatenate([ref.labels, cur.labels])
    keys, inverse = np.unique(labels.astype(str), return_inverse=True)
    r = np.bincount(inverse[:len(ref.labels)], weights=ref.counts, minlength=len(keys))
    c = np.bincount(inverse[len(ref.labels):], weights=cur.counts, minlength=len(keys))
    return keys.astype(object), r, c


def _chisquare(ref: Categorical, cur: Categorical) -> Result:
    from scipy import stats

    _, r, c = align(ref, cur)
    if len(r) < 2:
        return Result(0.0, 1.0, ["one category on both sides"])
    res = stats.chi2_contingency(np.vstack([r, c]))
    return Result(float(res.statistic), float(res.pvalue))


def _chisquare_gof(ref: Categorical, cur: Categorical) -> Result:
    from scipy import stats

    _, r, c = align(ref, cur)
    expected = r * (cur.n / ref.n)
    if np.any(expected == 0):  # a category the reference never had: certain "drift"
        return Result(float("inf"), 0.0)
    res = stats.chisquare(c, expected)
    return Result(float(res.statistic), float(res.pvalue))


def _z(ref: Categorical, cur: Categorical) -> Result:
    from scipy import stats

    labels, r, c = align(ref, cur)
    if len(labels) > 2:
        raise InvalidInputError(f"the z-test compares two categories; this column has "
                                f"{len(labels)} (use chisquare)")
    if len(labels) < 2:
        return Result(0.0, 1.0, ["one category on both sides"])
    # the share of rows not in the first label (sorted), pooled standard error
    n1, n2 = r.sum(), c.sum()
    p1, p2 = r[1] / n1, c[1] / n2
    pooled = (r[1] + c[1]) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return Result(float(z), float(2 * stats.norm.sf(abs(z))))


register_test("ks", _ks, kinds=("numeric",), score="p_value")
register_test("wasserstein", _wasserstein_norm, kinds=("numeric",), score="distance",
              threshold=0.1)
register_test("psi", _psi, kinds=("numeric", "categorical"), score="distance", threshold=0.1)
register_test("jensenshannon", _jensenshannon, kinds=("numeric", "categorical"),
              score="distance", threshold=0.1)
register_test("chisquare", _chisquare, kinds=("categorical",), score="p_value")
register_test("chisquare_gof", _chisquare_gof, kinds=("categorical",), score="p_value")
register_test("z", _z, kinds=("binary",), score="p_value")
