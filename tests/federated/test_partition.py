"""Partitioners: every index exactly once, deterministic per seed, the skew they promise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated.partition import dirichlet, iid, label_histogram, shards


def _labels(n: int, n_classes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_classes, size=n)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _is_partition(parts: list[np.ndarray], n: int, n_clients: int) -> None:
    assert len(parts) == n_clients
    for p in parts:
        assert p.dtype == np.int64 and p.ndim == 1
        assert np.all(np.diff(p) > 0)  # sorted, no repeats within a part
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))


@given(n=st.integers(1, 400), k=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_iid_is_a_balanced_partition(n, k, seed):
    if n < k:
        with pytest.raises(ConfigError, match="at most"):
            iid(n, k, seed=seed)
        return
    parts = iid(n, k, seed=seed)
    _is_partition(parts, n, k)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert _same(parts, iid(n, k, seed=seed))


def test_iid_takes_labels_and_the_seed_matters():
    y = np.array(["a", "b"] * 50)
    parts = iid(y, 4, seed=3)
    _is_partition(parts, 100, 4)
    assert not _same(parts, iid(y, 4, seed=4))


@given(n=st.integers(20, 600), n_classes=st.integers(1, 12), k=st.integers(1, 12),
       alpha=st.sampled_from([0.05, 0.5, 1.0, 100.0]), seed=st.integers(0, 10_000))
def test_dirichlet_is_a_partition_with_min_size(n, n_classes, k, alpha, seed):
    y = _labels(n, n_classes, seed)
    min_size = min(5, n // k)
    try:
        parts = dirichlet(y, k, alpha=alpha, min_size=min_size, seed=seed, max_tries=200)
    except ConfigError as exc:  # only when the draws keep missing: says what to change
        message = str(exc)
    else:
        message = ""
    if message:
        assert "raise alpha" in message
        return
    _is_partition(parts, n, k)
    assert min(len(p) for p in parts) >= min_size
    again = dirichlet(y, k, alpha=alpha, min_size=min_size, seed=seed, max_tries=200)
    assert _same(parts, again)


def _classes_per_client(y: np.ndarray, parts: list[np.ndarray]) -> float:
    return float(np.mean([len(np.unique(y[p])) for p in parts]))


def test_dirichlet_alpha_controls_the_skew():
    y = np.repeat(np.arange(10), 200)
    skewed = dirichlet(y, 10, alpha=0.05, min_size=10, seed=0)
    even = dirichlet(y, 10, alpha=1000.0, min_size=10, seed=0)
    assert _classes_per_client(y, skewed) < 5 < _classes_per_client(y, even) == 10
    # near IID: each client holds about a tenth of each class
    shares = np.array([[np.mean(y[p] == c) for c in range(10)] for p in even])
    assert np.abs(shares - 0.1).max() < 0.05


def test_dirichlet_impossible_or_unlucky_says_what_to_do():
    y = np.repeat(np.arange(3), 10)
    with pytest.raises(ConfigError, match="lower min_size or use fewer clients"):
        dirichlet(y, 4, alpha=1.0, min_size=10)
    with pytest.raises(ConfigError, match="raise alpha, lower min_size"):
        # two classes, each all but whole on one client: the third never gets 10
        dirichlet(np.repeat([0, 1], 15), 3, alpha=0.001, min_size=10, max_tries=50)


@given(n=st.integers(1, 500), n_classes=st.integers(1, 10), k=st.integers(1, 20),
       per=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_shards_is_a_partition(n, n_classes, k, per, seed):
    y = _labels(n, n_classes, seed)
    if n < k * per:
        with pytest.raises(ConfigError, match="shards_per_client"):
            shards(y, k, shards_per_client=per, seed=seed)
        return
    parts = shards(y, k, shards_per_client=per, seed=seed)
    _is_partition(parts, n, k)
    sizes = [len(p) for p in parts]
    shard = n // (k * per)
    assert min(sizes) >= per * shard and max(sizes) <= per * (shard + 1)
    assert _same(parts, shards(y, k, shards_per_client=per, seed=seed))


def test_shards_are_pathological():
    y = np.repeat(np.arange(10), 100)  # shards of 50 fall inside one class each
    parts = shards(y, 10, shards_per_client=2, seed=1)
    assert all(len(np.unique(y[p])) <= 2 for p in parts)


def test_label_histogram():
    assert label_histogram(np.array([2, 0, 2, 1, 2])) == {"0": 1, "1": 1, "2": 3}
    assert label_histogram(["b", "a", "b"]) == {"a": 1, "b": 2}
    assert label_histogram(np.array([[1], [1]])) == {"1": 2}
    assert label_histogram(np.array([0.5, 0.5])) == {"0.5": 2}
    assert label_histogram([]) == {}
    assert list(label_histogram(np.array([10, 9, 10]))) == ["9", "10"]


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: iid(10, 0), ConfigError, "n_clients must be >= 1"),
    (lambda: iid(10, 2.0), ConfigError, "n_clients must be an integer"),
    (lambda: iid(10, 2, seed=-1), ConfigError, "seed must be >= 0"),
    (lambda: iid(True, 1), InvalidInputError, "number of samples or the labels"),
    (lambda: iid([], 1), InvalidInputError, "number of samples or the labels"),
    (lambda: dirichlet([0, 1] * 20, 2, alpha=0), ConfigError, "alpha must be a finite"),
    (lambda: dirichlet([0, 1] * 20, 2, alpha=float("nan")), ConfigError, "alpha"),
    (lambda: dirichlet([0, 1] * 20, 2, alpha=1, min_size=-1), ConfigError, "min_size"),
    (lambda: dirichlet([0, 1] * 20, 2, alpha=1, max_tries=0), ConfigError, "max_tries"),
    (lambda: dirichlet(np.eye(3), 2, alpha=1), InvalidInputError, "one-hot"),
    (lambda: dirichlet([0.0, np.nan], 1, alpha=1), InvalidInputError, "NaN"),
    (lambda: shards([], 1), InvalidInputError, "empty"),
    (lambda: shards([0, 1], 1, shards_per_client=0), ConfigError, "shards_per_client"),
])
def test_bad_arguments_say_what_to_do(call, error, words):
    with pytest.raises(error, match=words):
        call()
