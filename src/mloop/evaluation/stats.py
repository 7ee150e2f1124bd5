"""A/B statistics: is B different from A, by how much, and how many samples that takes.

Used by evaluation reports and by gradual deployment: a two-proportion z-test for
conversion-like outcomes, Welch's t-test for means with unequal variances, a bootstrap
interval of the difference of any statistic, and the per-arm sample size a two-sided
test needs for a given power.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    difference: float  # B - A
    ci: tuple[float, float]  # of the difference, at the requested level


def two_proportion_ztest(successes_a: int, n_a: int, successes_b: int, n_b: int, *,
                         level: float = 0.95) -> TestResult:
    """Pooled two-sided z-test of p_B = p_A; the interval is the unpooled Wald interval."""
    from scipy.stats import norm

    if min(n_a, n_b) <= 0:
        raise InvalidInputError("Both arms need at least one observation.")
    if not (0 <= successes_a <= n_a and 0 <= successes_b <= n_b):
        raise InvalidInputError("Successes must be between 0 and the number of trials.")
    pa, pb = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (pb - pa) / se if se > 0 else 0.0
    p = float(2 * norm.sf(abs(z)))
    half = norm.ppf(1 - (1 - level) / 2) * math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    return TestResult(float(z), p, pb - pa, (pb - pa - half, pb - pa + half))


def welch_ttest(a: Any, b: Any, *, level: float = 0.95) -> TestResult:
    """Welch's t-test of mean(B) = mean(A) (unequal variances), with its interval."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        raise InvalidInputError("Welch's t-test needs at least two observations per arm.")
    res = stats.ttest_ind(y, x, equal_var=False)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1)) if va + vb else 1.0
    half = float(stats.t.ppf(1 - (1 - level) / 2, df) * math.sqrt(va + vb))
    diff = float(y.mean() - x.mean())
    return TestResult(float(res.statistic), float(res.pvalue), diff, (diff - half, diff + half))


def bootstrap_difference(a: Any, b: Any, statistic: Callable[[np.ndarray], float] = np.mean,
                         *, resamples: int = 2000, level: float = 0.95, seed: int = 0
                         ) -> tuple[float, tuple[float, float]]:
    """statistic(B) - statistic(A) and its percentile bootstrap interval."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) == 0 or len(y) == 0:
        raise InvalidInputError("Both arms need observations.")
    rng = np.random.default_rng(seed)
    diffs = np.array([statistic(y[rng.integers(0, len(y), len(y))])
                      - statistic(x[rng.integers(0, len(x), len(x))])
                      for _ in range(resamples)])
    lo, hi = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(statistic(y) - statistic(x)), (float(lo), float(hi))


def sample_size_proportions(p_a: float, p_b: float, *, alpha: float = 0.05,
                            power: float = 0.8) -> int:
    """Per-arm sample size for a two-sided two-proportion test to detect p_A → p_B."""
    from scipy.stats import norm

    if not (0 < p_a < 1 and 0 < p_b < 1) or p_a == p_b:
        raise InvalidInputError("Give two different proportions strictly between 0 and 1.")
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)
    pbar = (p_a + p_b) / 2
    n = ((z_a * math.sqrt(2 * pbar * (1 - pbar))
          + z_b * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))) ** 2) / (p_a - p_b) ** 2
    return math.ceil(n)
