"""Multi-armed bandit traffic weights, recomputed on an interval from per-arm reward totals.

A deployment controller does not pick an arm per request: every interval it turns each
arm's totals (pulls, reward sum, sum of squared rewards) into traffic weights, and the router
splits requests by them until the next update. So each algorithm here answers "what share of
the next block of traffic should each arm get":

- Thompson sampling: the share is the posterior probability that the arm is best
  (Thompson 1933; the batched, probability-matching form of Scott 2010), by Monte Carlo.
  Binary rewards: Beta(1 + successes, 1 + failures). Continuous rewards: the posterior of the
  mean under a normal model with unknown variance (Student t around the sample mean).
- UCB1 (Auer, Cesa-Bianchi & Fischer 2002): all traffic to the arm with the highest
  mean + sqrt(2 ln N / n); arms never played go first. Its bound assumes rewards in [0, 1].
- Epsilon-greedy: ε spread evenly, 1 − ε to the best mean so far.

``min_share`` keeps every arm alive (a floor per arm), so a model that started badly keeps
being measured. ``simulate`` replays Bernoulli arms the way the controller runs them.
Pure numpy/scipy: no store access.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError

__all__ = [
    "ALGORITHMS",
    "ArmStats",
    "SimulationResult",
    "apply_min_share",
    "epsilon_greedy_weights",
    "posterior",
    "simulate",
    "thompson_weights",
    "ucb1_weights",
    "weights",
]

ALGORITHMS = ("thompson", "ucb1", "epsilon-greedy")


@dataclass(frozen=True)
class ArmStats:
    """One arm's reward totals; for binary rewards reward_sum is the number of successes."""

    pulls: int
    reward_sum: float
    reward_sq_sum: float

    def __post_init__(self) -> None:
        if self.pulls < 0 or self.reward_sq_sum < 0:
            raise InvalidInputError(f"Arm totals cannot be negative (pulls={self.pulls}, "
                                    f"reward_sq_sum={self.reward_sq_sum}).")

    @property
    def mean(self) -> float:
        """Mean reward; 0.0 for an arm never played."""
        return self.reward_sum / self.pulls if self.pulls else 0.0


def _arrays(arms: Sequence[ArmStats]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(arms) == 0:
        raise InvalidInputError("A bandit needs at least one arm.")
    n = np.array([a.pulls for a in arms], dtype=float)
    s = np.array([a.reward_sum for a in arms], dtype=float)
    sq = np.array([a.reward_sq_sum for a in arms], dtype=float)
    return n, s, sq


def _binary_params(arms: Sequence[ArmStats]) -> tuple[np.ndarray, np.ndarray]:
    n, s, _ = _arrays(arms)
    if np.any(s < 0) or np.any(s > n):
        raise InvalidInputError("Binary rewards: each arm's reward_sum (successes) must be "
                                "between 0 and its pulls; pass binary=False for other rewards.")
    return 1 + s, 1 + n - s


def _normal_params(arms: Sequence[ArmStats]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Location, scale and degrees of freedom of each arm's posterior of the mean.

    An arm with two or more pulls: Student t with n − 1 df around its sample mean, its
    variance shrunk toward the pooled variance by one pseudo-observation (so an arm whose
    first rewards happen to be equal is not taken as certain). An arm with fewer: a weak
    normal prior (df = inf) at the pooled mean with the pooled sd (1 when nothing is known).
    """
    n, s, sq = _arrays(arms)
    total = n.sum()
    pooled_mean = s.sum() / total if total else 0.0
    pooled_var = (sq.sum() - total * pooled_mean ** 2) / (total - 1) if total > 1 else 1.0
    pooled_var = pooled_var if pooled_var > 0 else 1.0
    safe_n = np.maximum(n, 1)
    mean = s / safe_n
    var = np.clip(sq - n * mean ** 2, 0, None) / np.maximum(n - 1, 1)
    var = ((n - 1) * var + pooled_var) / np.maximum(n, 1)
    played = n >= 2
    loc = np.where(n >= 1, mean, pooled_mean)
    scale = np.where(played, np.sqrt(var / safe_n), math.sqrt(pooled_var))
    df = np.where(played, np.maximum(n - 1, 1), np.inf)
    return loc, scale, df


def apply_min_share(weights: Any, min_share: float) -> np.ndarray:
    """Give each arm at least ``min_share`` by mixing with the even split; sums to 1."""
    w = np.asarray(weights, dtype=float)
    k = len(w)
    if min_share < 0 or min_share * k > 1 + 1e-12:
        raise InvalidInputError(f"min_share {min_share} for {k} arms is impossible: it must "
                                f"be between 0 and 1/{k} ({1 / k:.4g}).")
    if k == 0 or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise InvalidInputError("Weights must be finite, non-negative and not all zero.")
    w = w / w.sum()
    return min_share + (1 - min_share * k) * w


def _split_best(scores: np.ndarray) -> np.ndarray:
    """All weight to the arms with the highest score, split evenly among ties."""
    best = scores == scores.max()
    return best / best.sum()


def thompson_weights(arms: Sequence[ArmStats], *, binary: bool, draws: int = 20_000,
                     rng: np.random.Generator | None = None,
                     min_share: float = 0.0) -> np.ndarray:
    """Probability that each arm is best under its posterior, from ``draws`` joint samples."""
    if draws < 1:
        raise InvalidInputError(f"draws must be at least 1 (got {draws}).")
    rng = np.random.default_rng() if rng is None else rng
    k = len(arms)
    if binary:
        a, b = _binary_params(arms)
        samples = rng.beta(a, b, size=(draws, k))
    else:
        loc, scale, df = _normal_params(arms)
        finite = np.isfinite(df)
        noise = np.where(finite, rng.standard_t(np.where(finite, df, 1.0), size=(draws, k)),
                         rng.standard_normal((draws, k)))
        samples = loc + scale * noise
    counts = np.bincount(samples.argmax(axis=1), minlength=k)
    return apply_min_share(counts / draws, min_share)


def ucb1_weights(arms: Sequence[ArmStats], *, min_share: float = 0.0) -> np.ndarray:
    """All traffic (less the floors) to the highest UCB1 index; unplayed arms first."""
    n, s, _ = _arrays(arms)
    if np.any(n == 0):
        return apply_min_share((n == 0) / np.sum(n == 0), min_share)
    index = s / n + np.sqrt(2 * math.log(n.sum()) / n)
    return apply_min_share(_split_best(index), min_share)


def epsilon_greedy_weights(arms: Sequence[ArmStats], *, epsilon: float = 0.1,
                           min_share: float = 0.0) -> np.ndarray:
    """ε evenly over all arms, 1 − ε to the best mean (to unplayed arms while any remain)."""
    if not 0 <= epsilon <= 1:
        raise InvalidInputError(f"epsilon must be between 0 and 1 (got {epsilon}); "
                                "0.1 explores 10% of traffic.")
    n, s, _ = _arrays(arms)
    greedy = (n == 0) / np.sum(n == 0) if np.any(n == 0) else _split_best(s / n)
    return apply_min_share(epsilon / len(n) + (1 - epsilon) * greedy, min_share)


def posterior(arms: Sequence[ArmStats], *, binary: bool) -> list[dict[str, float]]:
    """Per arm: pulls, sample mean, posterior mean and a 95% credible interval of the mean."""
    from scipy import stats

    if binary:
        a, b = _binary_params(arms)
        post_mean = a / (a + b)
        low, high = stats.beta.ppf(0.025, a, b), stats.beta.ppf(0.975, a, b)
    else:
        loc, scale, df = _normal_params(arms)
        post_mean = loc
        half = stats.t.ppf(0.975, df) * scale
        low, high = loc - half, loc + half
    return [{"pulls": arm.pulls, "mean": arm.mean, "posterior_mean": float(post_mean[i]),
             "ci_low": float(low[i]), "ci_high": float(high[i])}
            for i, arm in enumerate(arms)]


def weights(algorithm: str, arms: Sequence[ArmStats], *, binary: bool,
            rng: np.random.Generator | None = None, min_share: float = 0.0,
            epsilon: float = 0.1) -> np.ndarray:
    """Traffic weights by ``algorithm`` (one of ``ALGORITHMS``)."""
    if algorithm == "thompson":
        return thompson_weights(arms, binary=binary, rng=rng, min_share=min_share)
    if algorithm == "ucb1":
        return ucb1_weights(arms, min_share=min_share)
    if algorithm == "epsilon-greedy":
        return epsilon_greedy_weights(arms, epsilon=epsilon, min_share=min_share)
    raise InvalidInputError(f"Unknown bandit algorithm {algorithm!r}; choose one of "
                            f"{', '.join(ALGORITHMS)}.")


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Outcome of ``simulate``: regret is expected (pseudo-)regret, in rewards."""

    cumulative_regret: float
    pulls: list[int]
    regret_curve: np.ndarray  # cumulative regret after each weight update (block)


def simulate(rates: Sequence[float], requests: int, algorithm: str | None, *,
             update_every: int = 500, seed: int = 0, min_share: float = 0.0,
             epsilon: float = 0.1, draws: int = 10_000) -> SimulationResult:
    """Replay Bernoulli arms as the controller runs them: weights fixed within each block.

    ``algorithm=None`` is the fixed even split. Regret counts best_rate − rate(arm) per
    request (the expected regret of the choices, not of the noisy rewards). Thompson uses
    ``draws`` Monte Carlo samples per update (10,000: weights within ±0.5 point, half the
    time of the controller's 20,000; 50,000 requests × 3 arms take about 0.25 s).
    """
    p = np.asarray(rates, dtype=float)
    if len(p) == 0 or np.any((p < 0) | (p > 1)):
        raise InvalidInputError("Give at least one reward rate, each between 0 and 1.")
    if requests < 0 or update_every < 1:
        raise InvalidInputError("requests must be >= 0 and update_every >= 1.")
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise InvalidInputError(f"Unknown bandit algorithm {algorithm!r}; choose one of "
                                f"{', '.join(ALGORITHMS)}, or None for the even split.")
    rng = np.random.default_rng(seed)
    k = len(p)
    pulls, wins = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
    gap = p.max() - p
    curve, regret, done = [], 0.0, 0
    while done < requests:
        block = min(update_every, requests - done)
        if algorithm is None:
            w = np.full(k, 1 / k)
        else:
            arms = [ArmStats(int(n), float(s), float(s)) for n, s in zip(pulls, wins, strict=True)]
            w = (thompson_weights(arms, binary=True, draws=draws, rng=rng, min_share=min_share)
                 if algorithm == "thompson" else
                 weights(algorithm, arms, binary=True, min_share=min_share, epsilon=epsilon))
        chosen = rng.choice(k, size=block, p=w)
        rewards = rng.random(block) < p[chosen]
        pulls += np.bincount(chosen, minlength=k)
        wins += np.bincount(chosen, weights=rewards, minlength=k).astype(np.int64)
        regret += float(gap[chosen].sum())
        curve.append(regret)
        done += block
    return SimulationResult(regret, [int(x) for x in pulls], np.asarray(curve, dtype=float))
