"""Always-valid A/B statistics: a status that can be read at any time without lying.

A fixed-horizon test read after every batch of traffic ("peeking") rejects a true null far
more often than its α. The mixture sequential probability ratio test (mSPRT) of Johari,
Koomen, Pekelis & Walsh 2017, "Peeking at A/B tests", built on Robbins' (1970) normal
mixture, does not: its p-value and confidence interval hold simultaneously over every look.

Both arms are summarised by an estimate of the effect θ̂ = B − A and its variance
V = σ²_A/n_A + σ²_B/n_B (the normal approximation, as in the paper). With a N(0, τ²) mixture
over the effect, the likelihood ratio of "effect θ₀" against the mixture is

    Λ(θ₀) = sqrt(V / (V + τ²)) · exp(τ² (θ̂ − θ₀)² / (2 V (V + τ²)))

and Ville's inequality makes P(ever Λ(0) ≥ 1/α | no effect) ≤ α. The always-valid p-value
is min(1, 1/Λ(0)), made monotone by a running minimum over looks (``running_p``); the
always-valid interval is {θ₀ : Λ(θ₀) < 1/α}, so ``decided`` is exactly "0 lies outside it".

τ (the mixing sd) tunes which effects are found fastest; validity holds for every τ.
Pure functions of summary statistics: no store access, so callers can stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mloop.core.jsonsafe import json_float
from mloop.errors import InvalidInputError
from mloop.evaluation.stats import TestResult, two_proportion_ztest, welch_ttest

__all__ = [
    "DEFAULT_TAU_PROPORTIONS",
    "DEFAULT_TAU_SD_FRACTION",
    "MIN_SAMPLES",
    "Sequential",
    "fixed_horizon",
    "msprt_means",
    "msprt_proportions",
    "running_p",
    "welch_reference",
]

# Deployments compare model versions whose accuracy or error rate differs by a few points;
# a mixture sd of 5 points finds such effects fastest (Johari et al. §4: τ near the
# anticipated effect). An effect of 1 point is still found, later.
DEFAULT_TAU_PROPORTIONS = 0.05
# For a continuous metric the scale is unknown up front: τ is this fraction of the pooled
# standard deviation (a "small" standardised effect, half of Cohen's 0.2).
DEFAULT_TAU_SD_FRACTION = 0.1
# Below this many observations per arm the normal approximation of θ̂ is not trusted: the
# result is undecided with an infinite interval.
MIN_SAMPLES = 10

_INF = float("inf")


@dataclass(frozen=True)
class Sequential:
    """One look at a sequential A/B test: effect (B − A), always-valid interval and p."""

    n_a: int
    n_b: int
    effect: float  # b minus a
    ci_low: float
    ci_high: float
    p_value: float
    decided: bool
    winner: str | None  # "a", "b" or None
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: an infinite interval bound is spelt "Infinity"/"-Infinity"."""
        out = asdict(self)
        out["ci_low"], out["ci_high"] = json_float(self.ci_low), json_float(self.ci_high)
        return out


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must be strictly between 0 and 1 (got {alpha}); "
                                "0.05 is the usual choice.")


def _check_counts(successes: int, n: int, arm: str) -> None:
    if n < 0 or successes < 0:
        raise InvalidInputError(f"Arm {arm}: counts cannot be negative (successes={successes}, "
                                f"n={n}); pass the number of trials and of successes.")
    if successes > n:
        raise InvalidInputError(f"Arm {arm}: {successes} successes out of {n} trials; "
                                "successes must not exceed the number of trials.")


def _undecided(n_a: int, n_b: int, effect: float, alpha: float) -> Sequential:
    return Sequential(n_a, n_b, effect, -_INF, _INF, 1.0, False, None, alpha)


def _look(n_a: int, n_b: int, effect: float, variance: float, *, tau: float, alpha: float,
          higher_is_better: bool) -> Sequential:
    """The mSPRT at one look, from θ̂, its variance V and the mixing sd τ (see the module)."""
    if not (variance > 0 and math.isfinite(variance) and math.isfinite(effect)):
        return _undecided(n_a, n_b, effect if math.isfinite(effect) else 0.0, alpha)
    t2 = tau * tau
    total = variance + t2
    # in logs and ratios: V may be subnormal, where 2V(V+τ²) underflows to 0
    log_ratio = math.log(total) - math.log(variance)  # log((V+τ²)/V)
    z2 = effect * effect / variance  # inf when V underflows beside a real effect: p = 0
    log_lr = -0.5 * log_ratio + 0.5 * z2 * (t2 / total)
    p = 1.0 if log_lr <= 0 else math.exp(-log_lr)
    # Λ(θ₀) < 1/α  ⇔  (θ̂ − θ₀)² < 2V(V+τ²)/τ² · (log(1/α) + ½ log((V+τ²)/V))
    half = math.sqrt(2 * variance * (total / t2) * (math.log(1 / alpha) + 0.5 * log_ratio))
    decided = p <= alpha
    winner = None
    if decided:
        winner = "b" if (effect > 0) == higher_is_better else "a"
    return Sequential(n_a, n_b, effect, effect - half, effect + half, p, decided, winner, alpha)


def msprt_proportions(successes_a: int, n_a: int, successes_b: int, n_b: int, *,
                      alpha: float = 0.05, tau: float | None = None,
                      higher_is_better: bool = True,
                      min_samples: int = MIN_SAMPLES) -> Sequential:
    """mSPRT of p_B = p_A for a binary metric (accuracy, error rate), always valid.

    V uses the pooled proportion p̄(1 − p̄)(1/n_A + 1/n_B), the variance under "no effect"
    (the same as the fixed-horizon z-test); the interval uses the same V, so it excludes 0
    exactly when the test decides. ``tau`` is the mixing sd on the difference of
    proportions (default ``DEFAULT_TAU_PROPORTIONS`` = 5 points). ``higher_is_better=False``
    (an error rate) names the arm with the lower rate the winner. Fewer than ``min_samples``
    per arm, or p̄ of 0 or 1, gives an undecided result with an infinite interval.
    """
    _check_alpha(alpha)
    _check_counts(successes_a, n_a, "a")
    _check_counts(successes_b, n_b, "b")
    tau = DEFAULT_TAU_PROPORTIONS if tau is None else tau
    if not tau > 0:
        raise InvalidInputError(f"tau must be positive (got {tau}); leave it unset for "
                                f"the default of {DEFAULT_TAU_PROPORTIONS}.")
    if n_a == 0 or n_b == 0:
        return _undecided(n_a, n_b, 0.0, alpha)
    effect = successes_b / n_b - successes_a / n_a
    if min(n_a, n_b) < max(min_samples, 1):
        return _undecided(n_a, n_b, effect, alpha)
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    return _look(n_a, n_b, effect, variance, tau=tau, alpha=alpha,
                 higher_is_better=higher_is_better)


# two arms' (mean, variance, n) positionally, like msprt_proportions' (successes, n) pairs
def msprt_means(mean_a: float, var_a: float, n_a: int,  # noqa: PLR0917
                mean_b: float, var_b: float, n_b: int, *, alpha: float = 0.05,
                tau: float | None = None, higher_is_better: bool = True,
                min_samples: int = MIN_SAMPLES) -> Sequential:
    """mSPRT of mean_B = mean_A for a continuous metric, from summary statistics.

    ``var_a``/``var_b`` are sample variances (ddof=1) of the observations, so a caller can
    stream (Welford) instead of keeping the values. V = var_A/n_A + var_B/n_B (unequal
    variances, as Welch). ``tau`` is the mixing sd in the metric's units; by default
    ``DEFAULT_TAU_SD_FRACTION`` (0.1) × the pooled sd. Fewer than ``max(min_samples, 2)``
    per arm, zero variance in both arms, or a non-finite input gives an undecided result.
    """
    _check_alpha(alpha)
    if n_a < 0 or n_b < 0:
        raise InvalidInputError(f"Counts cannot be negative (n_a={n_a}, n_b={n_b}); pass the "
                                "number of observations of each arm.")
    if var_a < 0 or var_b < 0:
        raise InvalidInputError(f"Variances cannot be negative (var_a={var_a}, var_b={var_b}); "
                                "pass sample variances.")
    if tau is not None and not tau > 0:
        raise InvalidInputError(f"tau must be positive (got {tau}); leave it unset for "
                                f"{DEFAULT_TAU_SD_FRACTION} × the pooled sd.")
    if n_a == 0 or n_b == 0:
        return _undecided(n_a, n_b, 0.0, alpha)
    effect = float(mean_b) - float(mean_a)
    if min(n_a, n_b) < max(min_samples, 2) or not math.isfinite(var_a + var_b):
        return _undecided(n_a, n_b, effect if math.isfinite(effect) else 0.0, alpha)
    variance = var_a / n_a + var_b / n_b
    if tau is None:
        pooled_sd = math.sqrt(((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2))
        tau = DEFAULT_TAU_SD_FRACTION * pooled_sd
        if not tau > 0:
            return _undecided(n_a, n_b, effect if math.isfinite(effect) else 0.0, alpha)
    return _look(n_a, n_b, effect, variance, tau=tau, alpha=alpha,
                 higher_is_better=higher_is_better)


def running_p(previous: float | None, current: float) -> float:
    """The always-valid p-value sequence: the running minimum of the per-look p-values.

    A caller that stores the previous p passes it back; ``None`` at the first look.
    """
    if not 0 <= current <= 1 or (previous is not None and not 0 <= previous <= 1):
        raise InvalidInputError(f"p-values must lie in [0, 1] (got previous={previous}, "
                                f"current={current}).")
    return current if previous is None else min(previous, current)


def fixed_horizon(successes_a: int, n_a: int, successes_b: int, n_b: int) -> TestResult:
    """The classical two-proportion z-test, for reference only: valid at one planned look."""
    return two_proportion_ztest(successes_a, n_a, successes_b, n_b)


def welch_reference(a: Sequence[float] | Any, b: Sequence[float] | Any) -> TestResult:
    """Welch's t-test of the raw observations, for reference only: valid at one look."""
    return welch_ttest(a, b)
