"""The averaging strategies, the server optimizers and the strategy registry."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated import strategies as registry
from mloop.federated.robust import FedMedian, FedTrimmedAvg, Krum
from mloop.federated.strategies import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    FedYogi,
    apply_step,
    make_strategy,
    register_strategy,
    strategy_names,
)
from mloop.federated.strategy import Strategy
from mloop.federated.types import Update

SHAPES = [(3, 4), (5,)]
LINEAR = [
    FedAvg,
    lambda: FedProx(proximal_mu=0.1),
    lambda: FedAvgM(server_learning_rate=0.7, server_momentum=0.5),
    lambda: FedAdam(eta=0.05, beta_1=0.8, beta_2=0.9, tau=1e-2),
    lambda: FedYogi(eta=0.05, tau=1e-2),
    lambda: FedAdagrad(eta=0.05, tau=1e-2),
]


def weights(rng, scale=1.0, dtype=np.float32):
    return [(scale * rng.normal(size=s)).astype(dtype) for s in SHAPES]


def updates(rng, n, examples=None):
    examples = examples or [int(k) for k in rng.integers(1, 50, size=n)]
    return [Update(f"c{i}", weights(rng, dtype=np.float64), examples[i]) for i in range(n)]


def flat(ws):
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in ws])


def weighted_sum(ups):
    total = [sum(u.num_examples * u.delta[i] for u in ups) for i in range(len(SHAPES))]
    return total, float(sum(u.num_examples for u in ups))


# -- FedAvg and friends ------------------------------------------------------------------
def test_fedavg_is_the_example_weighted_mean_of_client_weights():
    rng = np.random.default_rng(0)
    current = weights(rng)
    clients = [weights(rng) for _ in range(4)]
    n = [5, 10, 1, 34]
    ups = [Update(f"c{i}", [c - g for c, g in zip(w, current, strict=True)], n[i])
           for i, w in enumerate(clients)]
    new = FedAvg().aggregate(1, current, ups)
    expected = sum(k * flat(w) for k, w in zip(n, clients, strict=True)) / sum(n)
    np.testing.assert_allclose(flat(new), expected, rtol=1e-5, atol=1e-6)
    assert [w.dtype for w in new] == [np.float32, np.float32]
    assert [w.shape for w in new] == SHAPES


def test_all_zero_examples_average_uniformly():
    rng = np.random.default_rng(1)
    current = weights(rng, dtype=np.float64)
    ups = updates(rng, 3, examples=[0, 0, 0])
    new = FedAvg().aggregate(1, current, ups)
    np.testing.assert_allclose(flat(new), flat(current) + np.mean([flat(u.delta) for u in ups],
                                                                  axis=0))


def test_integer_arrays_stay_integers_and_round():
    current = [np.array([1.0, 2.0]), np.array([10, 20], dtype=np.int64)]
    out = apply_step(current, np.array([0.5, 0.5, 2.6, -0.4]))
    assert out[1].dtype == np.int64 and out[1].tolist() == [13, 20]
    assert out[0].tolist() == [1.5, 2.5]


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), rounds=st.integers(1, 3),
       which=st.integers(0, len(LINEAR) - 1))
def test_aggregate_sum_equals_aggregate(seed, n, rounds, which):
    rng = np.random.default_rng(seed)
    a, b = LINEAR[which](), LINEAR[which]()
    current_a = current_b = weights(rng, dtype=np.float64)
    a.initialize(current_a)
    b.initialize(current_b)
    for r in range(1, rounds + 1):
        ups = updates(rng, n)
        current_a = a.aggregate(r, current_a, ups)
        total, weight = weighted_sum(ups)
        current_b = b.aggregate_sum(r, current_b, total, weight, n)
        np.testing.assert_allclose(flat(current_a), flat(current_b), rtol=1e-9, atol=1e-9)


def test_fedprox_sends_mu_and_averages_like_fedavg():
    rng = np.random.default_rng(2)
    current, ups = weights(rng), updates(rng, 3)
    prox = FedProx(proximal_mu=0.01)
    assert prox.fit_config(1) == {"proximal_mu": 0.01}
    assert prox.params()["proximal_mu"] == 0.01 and prox.params()["strategy"] == "fedprox"
    np.testing.assert_array_equal(flat(prox.aggregate(1, current, ups)),
                                  flat(FedAvg().aggregate(1, current, ups)))


def test_fedavgm_momentum_by_hand():
    current = [np.zeros(2)]
    s = FedAvgM(server_learning_rate=0.5, server_momentum=0.9)
    s.initialize(current)
    step1 = s.aggregate(1, current, [Update("a", [np.array([1.0, -2.0])], 1)])
    np.testing.assert_allclose(step1[0], [0.5, -1.0])  # v = Δ
    step2 = s.aggregate(2, step1, [Update("a", [np.array([1.0, 0.0])], 1)])
    v2 = 0.9 * np.array([1.0, -2.0]) + np.array([1.0, 0.0])
    np.testing.assert_allclose(step2[0], step1[0] + 0.5 * v2)


@pytest.mark.parametrize("cls", [FedAdam, FedYogi, FedAdagrad])
def test_adaptive_server_optimizers_by_hand(cls):
    eta, b1, b2, tau = 0.1, 0.9, 0.99, 1e-3
    delta = np.array([0.2, -0.4, 0.0])
    kwargs = {"eta": eta, "beta_1": b1, "tau": tau}
    if cls is not FedAdagrad:
        kwargs["beta_2"] = b2
    s = cls(**kwargs)
    current = [np.ones(3)]
    s.initialize(current)
    out = s.aggregate(1, current, [Update("a", [delta], 3)])
    m = (1 - b1) * delta
    v0 = np.full(3, tau**2)
    v = {FedAdam: b2 * v0 + (1 - b2) * delta**2,
         FedYogi: v0 - (1 - b2) * delta**2 * np.sign(v0 - delta**2),
         FedAdagrad: v0 + delta**2}[cls]
    np.testing.assert_allclose(out[0], 1.0 + eta * m / (np.sqrt(v) + tau))


def test_client_learning_rate_sent_only_when_set():
    assert FedAdam().fit_config(1) == {}
    assert FedYogi(eta_l=0.03).fit_config(4) == {"lr": 0.03}
    assert "eta_l" not in FedAdam().params()
    assert FedAdagrad(eta_l=0.5).params()["eta_l"] == 0.5


@pytest.mark.parametrize("make", [
    FedAvgM, FedAdam, lambda: FedYogi(beta_2=0.5), FedAdagrad])
def test_state_round_trip_continues_identically(make):
    rng = np.random.default_rng(3)
    current = weights(rng, dtype=np.float64)
    rounds = [updates(rng, 3) for _ in range(4)]
    a = make()
    a.initialize(current)
    for r in (1, 2):
        current = a.aggregate(r, current, rounds[r - 1])
    saved = a.state()
    assert all(isinstance(v, list) and all(isinstance(x, np.ndarray) for x in v)
               for v in saved.values())
    b = make()
    b.restore(saved)
    for r in (3, 4):
        next_a = a.aggregate(r, current, rounds[r - 1])
        next_b = b.aggregate(r, current, rounds[r - 1])
        np.testing.assert_array_equal(flat(next_a), flat(next_b))
        current = next_a


def test_state_before_any_round_restores_to_fresh():
    s = FedAdam()
    assert s.state() == {"m": [], "v": []}
    other = FedAdam()
    other.restore(s.state())
    assert other.state() == {"m": [], "v": []}


@pytest.mark.parametrize("bad", [
    {"m": [np.zeros(3)]},  # v missing
    {"m": [np.zeros(3)], "v": [np.zeros(4)]},  # sizes differ
    {"m": [np.zeros(3), np.zeros(3)], "v": [np.zeros(3)]},
    {"m": [np.array([np.nan, 0, 0])], "v": [np.zeros(3)]},
    {"m": "zeros", "v": []},
])
def test_restore_refuses_a_foreign_state(bad):
    with pytest.raises(InvalidInputError):
        FedAdam().restore(bad)


def test_state_of_another_model_size_is_refused_at_the_next_round():
    s = FedAvgM()
    s.restore({"momentum": [np.zeros(7)]})
    rng = np.random.default_rng(4)
    with pytest.raises(InvalidInputError, match="sized for 7"):
        s.aggregate(1, weights(rng), updates(rng, 2))


# -- bad input ----------------------------------------------------------------------------
def test_bad_updates_are_refused():
    rng = np.random.default_rng(5)
    current = weights(rng)
    with pytest.raises(InvalidInputError, match="at least one"):
        FedAvg().aggregate(1, current, [])
    wrong = Update("x", [np.zeros((4, 3)), np.zeros(5)], 1)
    with pytest.raises(InvalidInputError, match="client 'x'"):
        FedAvg().aggregate(1, current, [wrong])
    nan = Update("y", [np.full((3, 4), np.nan), np.zeros(5)], 1)
    with pytest.raises(InvalidInputError, match="NaN"):
        FedAvg().aggregate(1, current, [nan])
    negative = Update("z", [np.zeros((3, 4)), np.zeros(5)], -1)
    with pytest.raises(InvalidInputError, match="negative"):
        FedAvg().aggregate(1, current, [negative])
    with pytest.raises(InvalidInputError, match="total weight"):
        FedAvg().aggregate_sum(1, current, [np.zeros((3, 4)), np.zeros(5)], 0.0, 2)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: FedProx(proximal_mu=-1.0), "proximal_mu"),
    (lambda: FedProx(proximal_mu=float("nan")), "proximal_mu"),
    (lambda: FedProx(proximal_mu=True), "proximal_mu"),
    (lambda: FedAvgM(server_momentum=1.0), "server_momentum"),
    (lambda: FedAvgM(server_learning_rate=0.0), "server_learning_rate"),
    (lambda: FedAdam(eta=-0.1), "eta"),
    (lambda: FedAdam(eta_l=0.0), "eta_l"),
    (lambda: FedAdam(beta_1=1.5), "beta_1"),
    (lambda: FedYogi(beta_2=-0.1), "beta_2"),
    (lambda: FedAdagrad(tau=0.0), "tau"),
    (lambda: FedAvg(fraction_fit=0.0), "fraction_fit"),
    (lambda: FedAvg(min_fit_clients=0), "min_fit_clients"),
    (lambda: FedTrimmedAvg(beta=0.5), "beta"),
    (lambda: Krum(num_malicious=-1), "num_malicious"),
    (lambda: Krum(num_malicious=1.5), "num_malicious"),
])
def test_bad_settings_say_what_to_set(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_params_include_sampling_and_own_settings():
    p = FedAvgM(fraction_fit=0.5, min_fit_clients=3).params()
    assert p["strategy"] == "fedavgm" and p["fraction_fit"] == 0.5
    assert p["min_fit_clients"] == 3 and p["server_momentum"] == 0.9
    assert {"eta", "beta_1", "beta_2", "tau"} <= set(FedAdam().params())
    assert FedTrimmedAvg(beta=0.1).params()["beta"] == 0.1
    assert Krum(num_malicious=2, num_to_keep=3).params()["num_to_keep"] == 3


# -- the registry -------------------------------------------------------------------------
def test_builtin_names():
    assert {"fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "median",
            "trimmed-mean", "krum"} <= set(strategy_names())
    assert strategy_names() == sorted(strategy_names())


@pytest.mark.parametrize(("name", "cls"), [
    ("fedavg", FedAvg), ("fedavgm", FedAvgM), ("fedadam", FedAdam), ("fedyogi", FedYogi),
    ("fedadagrad", FedAdagrad), ("median", FedMedian), ("trimmed-mean", FedTrimmedAvg)])
def test_make_by_name(name, cls):
    assert type(make_strategy(name)) is cls


def test_make_turns_cli_strings_into_typed_values():
    s = make_strategy("fedadam", eta="0.5", eta_l="none", beta_2="0.9", fraction_fit="0.25",
                      min_fit_clients="3")
    assert isinstance(s, FedAdam)
    assert (s.eta, s.eta_l, s.beta_2, s.fraction_fit, s.min_fit_clients) == (
        0.5, None, 0.9, 0.25, 3)
    k = make_strategy("krum", num_malicious="1", num_to_keep="2", min_fit_clients="6")
    assert isinstance(k, Krum) and (k.num_malicious, k.num_to_keep, k.min_fit_clients) == (
        1, 2, 6)
    assert make_strategy("fedprox", proximal_mu=0.01).fit_config(1) == {"proximal_mu": 0.01}


def test_make_errors_name_what_is_valid():
    with pytest.raises(ConfigError, match=r"unknown strategy 'fedsgd'.*fedavg.*krum"):
        make_strategy("fedsgd")
    with pytest.raises(ConfigError, match=r"no parameter 'momentum'.*server_momentum"):
        make_strategy("fedavgm", momentum=0.9)
    with pytest.raises(ConfigError, match="needs proximal_mu"):
        make_strategy("fedprox")
    with pytest.raises(ConfigError, match="eta takes float"):
        make_strategy("fedadam", eta="fast")
    with pytest.raises(ConfigError, match="min_fit_clients takes int"):
        make_strategy("fedavg", min_fit_clients="two")
    with pytest.raises(ConfigError, match="beta"):
        make_strategy("trimmed-mean", beta="0.7")


class _Mine(FedAvg):
    name = "mine"

    def __init__(self, *, flavour: str = "plain", **sampling) -> None:
        super().__init__(**sampling)
        self.flavour = flavour


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_loaded", False)


def test_register_and_plugins(fresh_registry, monkeypatch):
    ep = importlib.metadata.EntryPoint(name="plugged", value=f"{__name__}:_Mine",
                                       group=registry.ENTRY_POINTS)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [ep] if group == registry.ENTRY_POINTS else [])
    assert "plugged" in strategy_names()
    s = make_strategy("plugged", flavour="spicy", fraction_fit="0.5")
    assert isinstance(s, _Mine) and s.flavour == "spicy" and s.fraction_fit == 0.5
    register_strategy("mine-too", _Mine)
    assert "mine-too" in strategy_names()


def test_a_broken_plugin_is_a_config_error(fresh_registry, monkeypatch):
    ep = importlib.metadata.EntryPoint(name="broken", value="no_such_module_xyz:Thing",
                                       group=registry.ENTRY_POINTS)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [ep])
    with pytest.raises(ConfigError, match="broken"):
        strategy_names()


def test_register_refuses_bad_names_and_non_strategies():
    with pytest.raises(ConfigError, match="not a strategy name"):
        register_strategy("Bad Name", FedAvg)
    with pytest.raises(ConfigError, match="subclass"):
        register_strategy("thing", object)
    assert issubclass(FedAvg, Strategy)
