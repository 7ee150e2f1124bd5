"""Robust aggregation: median, trimmed mean and Krum against clients sending bad updates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated.robust import FedMedian, FedTrimmedAvg, Krum, krum_scores
from mloop.federated.strategies import FedAvg
from mloop.federated.types import Update

DIM = 50


def attacked_round(seed, n=10, bad=2):
    """n − bad honest updates around one direction, and ``bad`` sending −10× of it."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=DIM)
    honest = [direction + 0.1 * rng.normal(size=DIM) for _ in range(n - bad)]
    ups = [Update(f"honest{i}", [h], 20) for i, h in enumerate(honest)]
    ups += [Update(f"bad{i}", [-10.0 * direction], 20) for i in range(bad)]
    return [np.zeros(DIM)], ups, np.mean(honest, axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("make", [
    FedMedian, lambda: FedTrimmedAvg(beta=0.2), lambda: Krum(num_malicious=2),
    lambda: Krum(num_malicious=2, num_to_keep=4)])
def test_two_of_ten_attackers_do_not_move_robust_strategies(make, seed):
    current, ups, honest_mean = attacked_round(seed)
    scale = np.linalg.norm(honest_mean)
    robust = make().aggregate(1, current, ups)[0]
    fedavg = FedAvg().aggregate(1, current, ups)[0]
    assert np.linalg.norm(robust - honest_mean) < 0.1 * scale
    assert np.linalg.norm(fedavg - honest_mean) > 1.0 * scale  # the mean is dragged away


def test_krum_keeps_only_honest_clients():
    current, ups, _ = attacked_round(7)
    krum = Krum(num_malicious=2, num_to_keep=5)
    krum.aggregate(1, current, ups)
    assert len(krum.selected) == 5
    assert all(c.startswith("honest") for c in krum.selected)
    single = Krum(num_malicious=2)
    out = single.aggregate(1, current, ups)[0]
    chosen = next(u for u in ups if u.client == single.selected[0])
    np.testing.assert_array_equal(out, chosen.delta[0])  # Krum adds the one best update


@settings(max_examples=40)
@given(arrays(np.float64, st.tuples(st.integers(3, 9), st.integers(1, 6)),
              elements=st.floats(-100, 100)), st.integers(0, 3))
def test_krum_scores_match_pairwise_distances(matrix, f):
    n = matrix.shape[0]
    if n - f - 2 < 1:
        with pytest.raises(InvalidInputError):
            krum_scores(matrix, f)
        return
    got = krum_scores(matrix, f)
    for i in range(n):
        d = sorted(float(np.sum((matrix[i] - matrix[j]) ** 2)) for j in range(n) if j != i)
        expected = sum(d[:n - f - 2])
        assert got[i] == pytest.approx(expected, rel=1e-7, abs=1e-6)


@settings(max_examples=40)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 5)),
              elements=st.floats(-1e3, 1e3)), st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.49]))
def test_trimmed_mean_and_median_per_coordinate(matrix, beta):
    current = [np.zeros(matrix.shape[1])]
    ups = [Update(str(i), [row], 1) for i, row in enumerate(matrix)]
    trimmed = FedTrimmedAvg(beta=beta).aggregate(1, current, ups)[0]
    np.testing.assert_allclose(trimmed, stats.trim_mean(matrix, beta, axis=0), atol=1e-9)
    median = FedMedian().aggregate(1, current, ups)[0]
    for j in range(matrix.shape[1]):
        assert median[j] == pytest.approx(float(np.median(matrix[:, j])))


def test_robust_strategies_count_clients_not_examples():
    current = [np.zeros(1)]
    ups = [Update("a", [np.array([0.0])], 1), Update("b", [np.array([1.0])], 1),
           Update("c", [np.array([10.0])], 1_000_000)]
    assert FedMedian().aggregate(1, current, ups)[0][0] == 1.0


@pytest.mark.parametrize("strategy", [FedMedian(), FedTrimmedAvg(), Krum(num_malicious=1)])
def test_robust_strategies_refuse_secure_sums(strategy):
    assert not strategy.linear
    with pytest.raises(ConfigError, match="not linear"):
        strategy.aggregate_sum(1, [np.zeros(2)], [np.zeros(2)], 3.0, 3)


def test_krum_settings():
    assert Krum(num_malicious=2).min_fit_clients == 7  # 2f + 3 by default
    assert Krum(num_malicious=0).min_available_clients == 3
    with pytest.raises(ConfigError, match="min_fit_clients >= 7"):
        Krum(num_malicious=2, min_fit_clients=5)
    with pytest.raises(ConfigError, match="min_fit_clients >= 8"):
        Krum(num_malicious=2, num_to_keep=6)  # at most min_fit_clients − f = 5
    assert Krum(num_malicious=2, num_to_keep=6, min_fit_clients=8).num_to_keep == 6


def test_krum_refuses_a_round_too_small_for_its_guarantee():
    current, ups, _ = attacked_round(3, n=6, bad=1)
    with pytest.raises(InvalidInputError, match="needs 7"):
        Krum(num_malicious=2).aggregate(1, current, ups)


def test_multi_krum_keeps_at_most_n_minus_f():
    current, ups, _ = attacked_round(4, n=8, bad=1)
    krum = Krum(num_malicious=1, num_to_keep=5, min_fit_clients=6)
    krum.aggregate(1, current, ups[:6])
    assert len(krum.selected) == 5
    krum.aggregate(2, current, ups)
    assert len(krum.selected) == 5
