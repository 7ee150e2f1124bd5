"""The strategy contract, checked on every registered strategy (built-ins and plugins
alike): shapes kept, finite results, JSON params, state that survives a checkpoint, and
for linear ones, the secure sum's path equal to the plain one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mloop.federated import arrays
from mloop.federated.recording import pack_state, unpack_state
from mloop.federated.strategies import make_strategy, strategy_names
from mloop.federated.strategy import Strategy
from mloop.federated.types import Update

REQUIRED = {"fedprox": {"proximal_mu": 0.1}, "krum": {"num_malicious": 1}}


def _make(name: str) -> Strategy:
    return make_strategy(name, min_fit_clients=5, min_available_clients=5,
                         **REQUIRED.get(name, {}))


def _updates(rng: np.random.Generator, current: list[np.ndarray]) -> list[Update]:
    return [Update(f"c{i}", [rng.normal(size=w.shape) for w in current],
                   int(rng.integers(1, 50))) for i in range(6)]


@pytest.mark.parametrize("name", strategy_names())
def test_every_strategy_keeps_the_contract(name: str) -> None:
    rng = np.random.default_rng(0)
    current = [rng.normal(size=(4, 3)), rng.normal(size=3).astype(np.float32)]
    strategy = _make(name)
    strategy.initialize(current)
    params = strategy.params()
    assert params["strategy"] == name
    json.dumps(params)
    json.dumps(strategy.fit_config(1))
    first = strategy.aggregate(1, current, _updates(rng, current))
    assert arrays.shapes(first) == arrays.shapes(current)
    assert [w.dtype for w in first] == [w.dtype for w in current]
    assert all(np.isfinite(w).all() for w in first)
    # a checkpoint between rounds: the copy continues exactly as the original
    copy = _make(name)
    copy.restore(unpack_state(pack_state(strategy.state())))
    later = _updates(rng, current)
    for a, b in zip(strategy.aggregate(2, first, later), copy.aggregate(2, first, later),
                    strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", [n for n in strategy_names() if _make(n).linear])
def test_linear_strategies_agree_on_the_secure_sum(name: str) -> None:
    rng = np.random.default_rng(1)
    current = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    updates = _updates(rng, current)
    plain, secure = _make(name), _make(name)
    plain.initialize(current)
    secure.initialize(current)
    weights = np.array([u.num_examples for u in updates], dtype=float)
    total = arrays.unflatten(weights @ arrays.stack([u.delta for u in updates]), current)
    for _ in range(2):  # twice: server optimizers carry state from round to round
        a = plain.aggregate(1, current, updates)
        b = secure.aggregate_sum(1, current, total, float(weights.sum()), len(updates))
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
