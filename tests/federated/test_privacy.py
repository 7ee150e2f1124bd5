"""DP-FedAvg: clipping, noise, adaptive clipping, accounting and the budget stop."""

from __future__ import annotations

import sys

import dp_accounting
import numpy as np
import pytest

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated.privacy import CLIPPED, AdaptiveClipping, DPFedAvg, dp_from_options
from mloop.federated.robust import FedMedian, Krum
from mloop.federated.strategies import FedAdam, FedAvg
from mloop.federated.types import Update


def dp(inner=None, **kwargs):
    kwargs.setdefault("noise_multiplier", 1.0)
    kwargs.setdefault("num_clients", 10)
    if "adaptive" not in kwargs:
        kwargs.setdefault("clip_norm", 1.0)
    return DPFedAvg(inner or FedAvg(), **kwargs)


def ups_from(rows, examples=None, metrics=None):
    return [Update(f"c{i}", [np.asarray(r, dtype=np.float64)],
                   (examples or [1] * len(rows))[i], (metrics or [{}] * len(rows))[i])
            for i, r in enumerate(rows)]


# -- clipping and noise -------------------------------------------------------------------
def test_each_update_is_clipped_and_weighted_uniformly():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, 40)) * rng.uniform(0.1, 20, size=(6, 1))
    s = dp(noise_multiplier=1e-9, clip_norm=2.0, seed=1)
    out = s.aggregate(1, [np.zeros(40)], ups_from(rows, examples=[1, 5, 100, 7, 3, 1000]))[0]
    norms = np.linalg.norm(rows, axis=1)
    clipped = rows * np.minimum(1.0, 2.0 / norms)[:, None]
    assert np.linalg.norm(clipped, axis=1).max() <= 2.0 + 1e-12
    np.testing.assert_allclose(out, clipped.mean(axis=0), atol=1e-6)  # not example-weighted
    assert np.linalg.norm(out) <= 2.0 + 1e-6


def test_one_client_moves_the_model_by_at_most_c_over_m():
    s = dp(noise_multiplier=1e-9, clip_norm=0.5, seed=2)
    rows = np.zeros((4, 30))
    rows[0] = 1e6  # one enormous update
    out = s.aggregate(1, [np.zeros(30)], ups_from(rows))[0]
    assert np.linalg.norm(out) == pytest.approx(0.5 / 4, rel=1e-6)


@pytest.mark.parametrize(("z", "c", "m"), [(1.0, 1.0, 4), (0.3, 2.0, 10), (3.0, 0.5, 2)])
def test_noise_std_is_z_c_over_m(z, c, m):
    s = dp(noise_multiplier=z, clip_norm=c, seed=3)
    size = 40_000
    out = s.aggregate(1, [np.zeros(size)], ups_from(np.zeros((m, size))))[0]
    assert out.std() == pytest.approx(z * c / m, rel=0.03)
    assert abs(out.mean()) < 5 * z * c / m / np.sqrt(size)
    assert s.round_metrics()["noise_std"] == pytest.approx(z * c)


def test_local_mode_asks_clients_for_noise_and_adds_none():
    s = dp(mode="local", noise_multiplier=2.0, clip_norm=0.5)
    assert s.client_update() == {"clip_norm": 0.5, "noise_std": 1.0, "weighting": "uniform"}
    rows = np.random.default_rng(4).normal(size=(3, 20)) * 5  # already noised by clients
    out = s.aggregate(1, [np.zeros(20)], ups_from(rows, examples=[1, 2, 3]))[0]
    np.testing.assert_allclose(out, rows.mean(axis=0))  # no server clipping, no server noise


def test_central_mode_asks_clients_to_clip_and_weigh_uniformly():
    assert dp(clip_norm=3.0).client_update() == {"clip_norm": 3.0, "weighting": "uniform"}


def test_secure_sum_gets_the_same_noise_as_plain_aggregation():
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(5, 12))
    rows *= np.minimum(1.0, 1.0 / np.linalg.norm(rows, axis=1))[:, None]  # clients clipped
    plain = dp(seed=9).aggregate(3, [np.ones(12)], ups_from(rows))[0]
    secure = dp(seed=9).aggregate_sum(3, [np.ones(12)], [rows.sum(axis=0)], 5.0, 5)[0]
    np.testing.assert_allclose(plain, secure, atol=1e-12)
    with pytest.raises(InvalidInputError, match="uniformly"):
        dp(seed=9).aggregate_sum(3, [np.ones(12)], [rows.sum(axis=0)], 50.0, 5)


def test_wraps_any_linear_strategy_through_its_secure_sum_path():
    inner = FedAdam(eta=0.1)
    s = dp(inner, noise_multiplier=1e-9, clip_norm=10.0, seed=1)
    s.initialize([np.zeros(3)])
    out = s.aggregate(1, [np.zeros(3)], ups_from([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))[0]
    ref = FedAdam(eta=0.1)
    ref.initialize([np.zeros(3)])
    expected = ref.aggregate(1, [np.zeros(3)], ups_from([[2.0, 2.0, 2.0]]))[0]
    np.testing.assert_allclose(out, expected, atol=1e-6)


# -- accounting ---------------------------------------------------------------------------
def run_rounds(s, rounds, m=10, available=None, dim=4):
    current = [np.zeros(dim)]
    for r in range(1, rounds + 1):
        s.num_fit(available or s.num_clients)
        current = s.aggregate(r, current, ups_from(np.zeros((m, dim))))
    return current


def test_epsilon_grows_with_rounds_and_shrinks_with_noise():
    low = dp(noise_multiplier=0.8, num_clients=100, inner=FedAvg(fraction_fit=0.1))
    high = dp(noise_multiplier=3.0, num_clients=100, inner=FedAvg(fraction_fit=0.1))
    assert low.epsilon() == 0.0
    eps = []
    for _ in range(3):
        run_rounds(low, 1)
        run_rounds(high, 1)
        eps.append(low.epsilon())
        assert high.epsilon() < low.epsilon()
    assert eps[0] < eps[1] < eps[2]


def test_epsilon_matches_dp_accounting_directly():
    s = dp(noise_multiplier=1.1, num_clients=100, delta=1e-5,
           inner=FedAvg(fraction_fit=0.1, min_fit_clients=2))
    run_rounds(s, 7)
    event = dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(1.1))
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, 7))
    assert s.epsilon() == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-12)
    assert s.round_metrics()["epsilon"] == s.epsilon()


def test_fewer_clients_connected_is_accounted_conservatively():
    full = dp(num_clients=100, inner=FedAvg(fraction_fit=0.1))
    few = dp(num_clients=100, inner=FedAvg(fraction_fit=0.1))
    run_rounds(full, 2, available=100)
    run_rounds(few, 2, m=5, available=50)  # 5 of 50 connected: rate 0.1, not 0.05
    assert few.epsilon() == pytest.approx(full.epsilon())
    lonely = dp(num_clients=100, inner=FedAvg(fraction_fit=0.1, min_fit_clients=5))
    run_rounds(lonely, 2, m=5, available=10)  # 5 of 10: rate 0.5
    assert lonely.epsilon() > full.epsilon()


def test_local_mode_gets_no_amplification_by_sampling():
    central = dp(num_clients=100, inner=FedAvg(fraction_fit=0.1))
    local = dp(num_clients=100, inner=FedAvg(fraction_fit=0.1), mode="local")
    run_rounds(central, 2)
    run_rounds(local, 2)
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(1.0), 2)
    assert local.epsilon() == pytest.approx(accountant.get_epsilon(local.delta))
    assert local.epsilon() > central.epsilon()


def test_default_delta():
    assert dp(num_clients=1000).delta == pytest.approx(1000 ** -1.1)
    with pytest.raises(ConfigError, match="delta"):
        dp(num_clients=1)  # 1/1^1.1 = 1 is no delta: give one


def test_stop_reason_before_the_budget_is_exceeded():
    s = dp(noise_multiplier=1.0, num_clients=10, target_epsilon=5.0)
    rounds = 0
    while s.stop_reason(rounds + 1) is None:
        rounds += 1
        run_rounds_from(s, rounds)
        assert rounds < 100
    assert s.epsilon() <= 5.0
    reason = s.stop_reason(rounds + 1)
    assert reason is not None and "target_epsilon 5" in reason and f"round {rounds + 1}" in reason
    assert rounds >= 1
    again = dp(noise_multiplier=1.0, num_clients=10)
    run_rounds(again, rounds + 1)
    assert again.epsilon() > 5.0  # one more round would indeed have spent too much


def run_rounds_from(s, server_round):
    s.num_fit(s.num_clients)
    s.aggregate(server_round, [np.zeros(2)], ups_from(np.zeros((10, 2))))


def test_stop_reason_without_a_target_is_the_inner_strategys():
    assert dp().stop_reason(1000) is None


# -- adaptive clipping --------------------------------------------------------------------
@pytest.mark.parametrize("start", [0.5, 100.0])
def test_adaptive_clip_moves_to_the_target_quantile(start):
    norms = np.arange(1.0, 21.0)  # median 10.5
    rows = np.zeros((20, 2))
    rows[:, 0] = norms
    s = dp(noise_multiplier=0.5, num_clients=20, seed=11,
           adaptive=AdaptiveClipping(initial=start, target_quantile=0.5, learning_rate=0.2))
    history = []
    for r in range(1, 121):
        s.num_fit(20)
        s.aggregate(r, [np.zeros(2)], ups_from(rows))
        history.append(s.clip_norm)
    assert 8.5 < np.median(history[-30:]) < 12.5
    assert s.round_metrics()["clip_norm"] == pytest.approx(history[-2])  # the one used
    assert "unclipped_fraction" in s.round_metrics()


def test_adaptive_clip_uses_the_clients_clipped_reports():
    s = dp(num_clients=10, seed=1, mode="local",
           adaptive=AdaptiveClipping(initial=1.0, learning_rate=0.5,
                                     count_noise_multiplier=1e-9))
    rows = np.zeros((4, 2))
    all_clipped = [{CLIPPED: 1}] * 4
    s.aggregate(1, [np.zeros(2)], ups_from(rows, metrics=all_clipped))
    assert s.clip_norm == pytest.approx(np.exp(0.5 * 0.5))  # b̄ = 0: C grows
    s.aggregate(2, [np.zeros(2)], ups_from(rows, metrics=[{CLIPPED: 0}] * 4))
    assert s.clip_norm == pytest.approx(1.0)  # b̄ = 1: back down
    with pytest.raises(InvalidInputError, match="clipped"):
        s.aggregate(3, [np.zeros(2)], ups_from(rows, metrics=[{CLIPPED: 0.5}] * 4))


def test_adaptive_clip_under_secure_aggregation():
    s = dp(num_clients=10, seed=1,
           adaptive=AdaptiveClipping(initial=1.0, learning_rate=0.5, count_noise_multiplier=5))
    s.record_clipped(1, 4.0)
    s.aggregate_sum(1, [np.zeros(2)], [np.zeros(2)], 4.0, 4)
    assert s.clip_norm > 1.0  # all four clipped: C grows
    before = s.clip_norm
    s.aggregate_sum(2, [np.zeros(2)], [np.zeros(2)], 4.0, 4)  # no count: C stays
    assert s.clip_norm == before
    s.record_clipped(2, 4.0)  # a count of another round is not used
    s.aggregate_sum(3, [np.zeros(2)], [np.zeros(2)], 4.0, 4)
    assert s.clip_norm == before


def test_adaptive_noise_multiplier_pays_for_the_count():
    s = dp(noise_multiplier=1.0, num_clients=10,
           adaptive=AdaptiveClipping(initial=2.0, count_noise_multiplier=2.0))
    z_delta = (1.0 - 1 / 16) ** -0.5
    assert s.update_noise_multiplier() == pytest.approx(z_delta)
    assert s.noise_std() == pytest.approx(2.0 * z_delta)
    with pytest.raises(ConfigError, match="count_noise_multiplier"):
        dp(noise_multiplier=1.0, adaptive=AdaptiveClipping(initial=1.0,
                                                           count_noise_multiplier=0.5))
    default = dp(noise_multiplier=1.0, num_clients=10, adaptive=AdaptiveClipping(initial=1.0))
    assert default.count_noise_multiplier == 1.0  # max(10/20, z)


# -- resume, params, settings --------------------------------------------------------------
def test_state_round_trip_continues_identically():
    def make():
        return dp(FedAdam(eta=0.05), noise_multiplier=0.7, num_clients=20, seed=4,
                  adaptive=AdaptiveClipping(initial=1.0))

    rng = np.random.default_rng(6)
    rounds = [ups_from(rng.normal(size=(5, 8)) * 3) for _ in range(5)]
    a = make()
    current = [np.zeros(8)]
    a.initialize(current)
    for r in (1, 2, 3):
        a.num_fit(20)
        current = a.aggregate(r, current, rounds[r - 1])
    b = make()
    b.restore(a.state())
    assert b.epsilon() == a.epsilon() and b.clip_norm == a.clip_norm
    for r in (4, 5):
        a.num_fit(20)
        b.num_fit(20)
        out_a = a.aggregate(r, current, rounds[r - 1])
        out_b = b.aggregate(r, current, rounds[r - 1])
        np.testing.assert_array_equal(out_a[0], out_b[0])
        assert a.round_metrics() == b.round_metrics()
        current = out_a


def test_restore_refuses_garbage():
    with pytest.raises(InvalidInputError):
        dp().restore({})
    with pytest.raises(InvalidInputError):
        dp().restore({"dp.clip_norm": -1.0, "dp.sampling_rates": []})
    with pytest.raises(InvalidInputError):
        dp().restore({"dp.clip_norm": 1.0, "dp.sampling_rates": [np.array([2.0])]})


def test_params_and_metrics():
    p = dp(FedAdam(), noise_multiplier=1.5, num_clients=50, target_epsilon=8.0,
           adaptive=AdaptiveClipping(initial=0.3)).params()
    assert p["strategy"] == "fedadam" and p["eta"] == 0.1  # the wrapped strategy's own
    assert p["noise_multiplier"] == 1.5 and p["dp_mode"] == "central"
    assert p["target_epsilon"] == 8.0 and p["delta"] == pytest.approx(50 ** -1.1)
    assert p["clip_norm_initial"] == 0.3 and p["clip_target_quantile"] == 0.5
    fixed = dp(clip_norm=2.0).params()
    assert fixed["clip_norm"] == 2.0 and "target_epsilon" not in fixed
    assert dp(clip_norm=2.0).round_metrics() == {"clip_norm": 2.0, "noise_std": 2.0,
                                                 "epsilon": 0.0}


@pytest.mark.parametrize("inner", [FedMedian(), Krum(num_malicious=1)])
def test_robust_strategies_cannot_be_wrapped(inner):
    with pytest.raises(ConfigError, match="linear"):
        dp(inner)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"noise_multiplier": 0.0}, "noise_multiplier"),
    ({"clip_norm": -1.0}, "clip_norm"),
    ({"clip_norm": None}, "exactly one"),
    ({"adaptive": AdaptiveClipping(initial=1.0), "clip_norm": 1.0}, "exactly one"),
    ({"adaptive": AdaptiveClipping(initial=1.0, target_quantile=1.0)}, "target_quantile"),
    ({"adaptive": AdaptiveClipping(initial=0.0)}, "initial"),
    ({"mode": "remote"}, "central"),
    ({"delta": 1.5}, "delta"),
    ({"target_epsilon": 0}, "target_epsilon"),
    ({"num_clients": 0}, "num_clients"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        dp(**kwargs)


def test_wrapping_twice_is_refused():
    with pytest.raises(ConfigError, match="already"):
        dp(dp())


def test_sampling_follows_the_wrapped_strategy():
    s = dp(FedAvg(fraction_fit=0.3, min_fit_clients=2, fraction_evaluate=0.5))
    assert s.num_fit(10) == 3 and s.num_evaluate(10) == 5
    assert s.fraction_fit == 0.3 and s.fit_config(1) == {}


def test_missing_dp_accounting_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dp_accounting", None)
    with pytest.raises(ConfigError, match=r"pip install 'mloop\[federated\]'"):
        dp()


def test_without_a_sampling_count_the_rate_is_the_larger_of_plan_and_answers():
    s = dp(noise_multiplier=1.1, num_clients=100, delta=1e-5, inner=FedAvg(fraction_fit=0.1))
    s.aggregate(1, [np.zeros(2)], ups_from(np.zeros((20, 2))))  # 20 answered, 10 planned
    s.aggregate(2, [np.zeros(2)], ups_from(np.zeros((3, 2))))  # 3 answered, 10 planned
    gaussian = dp_accounting.GaussianDpEvent(1.1)
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.PoissonSampledDpEvent(0.2, gaussian))
    accountant.compose(dp_accounting.PoissonSampledDpEvent(0.1, gaussian))
    assert s.epsilon() == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-12)


# -- the CLI's --dp key=value options ------------------------------------------------------
def test_dp_from_options_fixed_clipping():
    inner = FedAvg(min_fit_clients=5, min_available_clients=8)
    s = dp_from_options(inner, {"noise_multiplier": 1, "clip_norm": "0.5",
                                "target_epsilon": 8, "mode": "local"})
    assert s.inner is inner and s.mode == "local" and s.clip_norm == 0.5
    assert s.noise_multiplier == 1.0 and s.target_epsilon == 8.0
    assert s.num_clients == 8 and s.adaptive is None and s.seed is None


def test_dp_from_options_adaptive_clipping():
    s = dp_from_options(FedAvg(), {"noise_multiplier": 1.0, "clip_norm": 0.1,
                                   "adaptive": "true", "target_quantile": 0.7,
                                   "count_noise_multiplier": 3, "num_clients": 40,
                                   "delta": 1e-6})
    assert s.adaptive == AdaptiveClipping(initial=0.1, target_quantile=0.7,
                                          learning_rate=0.2, count_noise_multiplier=3)
    assert (s.num_clients, s.delta) == (40, 1e-6)


@pytest.mark.parametrize(("options", "match"), [
    ({"clip_norm": 1.0}, "noise_multiplier=VALUE"),
    ({"noise_multiplier": 1.0}, "clip_norm=VALUE"),
    ({"noise_multiplier": 1.0, "clip_norm": 1.0, "noise": 2}, "no key 'noise'"),
    ({"noise_multiplier": "lots", "clip_norm": 1.0}, "not a number"),
    ({"noise_multiplier": 1.0, "clip_norm": 1.0, "target_quantile": 0.3}, "adaptive=true"),
    ({"noise_multiplier": 1.0, "clip_norm": 1.0, "adaptive": "maybe"}, "true or false"),
    ({"noise_multiplier": 1.0, "clip_norm": 1.0, "num_clients": 7.5}, "num_clients"),
    ({"noise_multiplier": 1.0, "clip_norm": 1.0, "mode": "both"}, "central"),
])
def test_dp_from_options_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        dp_from_options(FedAvg(), options)
