"""The benchmark's numpy client: it learns, is deterministic, and its data split is whole."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from mloop.federated.client import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fc():
    spec = importlib.util.spec_from_file_location("federated_client",
                                                  ROOT / "bench" / "federated_client.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["federated_client"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("federated_client", None)


def test_one_local_epoch_raises_accuracy(fc):
    client = fc.client_fn(3)
    assert isinstance(client, Client)
    w0 = client.get_weights()
    assert [w.shape for w in w0] == [(64, 10), (10,)]
    loss0, n, m0 = client.evaluate(w0, {})
    w1, n_fit, _ = client.fit(w0, {"round": 1})
    loss1, _, m1 = client.evaluate(w1, {})
    assert n == n_fit == 144 and loss0 == pytest.approx(np.log(10))
    # one epoch is 15 noisy steps of lr 0.3; averaging over clients is what smooths them
    assert loss1 < loss0 - 0.5 and m1["accuracy"] > m0["accuracy"] + 0.2
    central_loss, central_acc = fc.central_evaluate(w1)
    assert central_loss < loss0 - 0.3 and central_acc > 0.2
    assert client.properties()["num_examples"] == 144


def test_fit_depends_on_cid_and_round_only(fc):
    a, b = fc.client_fn(0), fc.client_fn(0)
    w0 = a.get_weights()
    first = a.fit(w0, {"round": 2})[0]
    assert all(np.array_equal(x, y) for x, y in zip(first, b.fit(w0, {"round": 2})[0],
                                                    strict=True))
    assert not np.array_equal(first[0], a.fit(w0, {"round": 3})[0][0])
    assert not w0[0].any()  # not trained in place


def test_partitions_cover_the_training_rows_once(fc):
    X_tr, y_tr, _, y_te = fc.load_digits_split()
    assert (len(y_tr), len(y_te)) == (1437, 360) and X_tr.max() <= 1.0
    parts = fc.load_partitions(10)
    assert sum(len(y) for _, y in parts) == len(y_tr)
    assert np.array_equal(np.sort(np.concatenate([y for _, y in parts])), np.sort(y_tr))
    assert len({x.tobytes() for X, _ in parts for x in X}) == len({x.tobytes() for x in X_tr})


def test_indexed_client_holds_exactly_its_rows(fc):
    X_tr, y_tr, _, _ = fc.load_digits_split()
    parts = [np.array([5, 1, 9]), np.arange(10, 20)]
    client = fc.indexed_client(0, parts)
    assert np.array_equal(client.X, X_tr[[5, 1, 9]]) and np.array_equal(client.y, y_tr[[5, 1, 9]])
    assert client.cid == 0 and len(fc.indexed_client(1, parts).y) == 10
    with pytest.raises(IndexError):
        fc.indexed_client(2, parts)
