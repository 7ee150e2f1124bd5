"""The ready clients: scikit-learn linear models and PyTorch modules."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated.client import Client
from mloop.federated.clients import LogisticRegressionClient, SGDClient
from tests.federated.toy import distance

CLASSES = np.arange(10)


def _sgd(digits, **kw) -> SGDClient:
    X, y = digits
    est = kw.pop("estimator", SGDClassifier(loss="log_loss"))
    return SGDClient(est, X[:300], y[:300], classes=CLASSES, batch_size=kw.pop("batch_size", 10),
                     X_test=X[300:], y_test=y[300:], **kw)


# -- SGD -----------------------------------------------------------------------------
def test_sgd_classifier_starts_at_zero_and_learns(digits):
    client = _sgd(digits)
    assert isinstance(client, Client)
    w0 = client.get_weights()
    assert [w.shape for w in w0] == [(10, 64), (10,)]
    assert all(not w.any() for w in w0)
    loss0, n, m0 = client.evaluate(w0, {})
    assert n == 300 and loss0 == pytest.approx(np.log(10))
    w1, n, metrics = client.fit(w0, {"round": 1, "lr": 0.05})
    assert n == 300 and metrics == {"local_steps": 30}
    assert all(not w.any() for w in w0)  # the sent weights are not trained in place
    loss1, _, m1 = client.evaluate(w1, {})
    assert loss1 < loss0 - 0.5 and m1["accuracy"] > m0["accuracy"] + 0.4
    # the config's lr was for that fit only
    assert client.estimator.learning_rate == "optimal"


def test_sgd_fit_is_deterministic_per_seed_and_round(digits):
    a, b = _sgd(digits), _sgd(digits)
    w0 = a.get_weights()
    same = a.fit(w0, {"round": 2})[0], b.fit(w0, {"round": 2})[0]
    assert distance(*same) == 0.0
    assert distance(a.fit(w0, {"round": 3})[0], same[0]) > 0
    assert distance(_sgd(digits, seed=1).fit(w0, {"round": 2})[0], same[0]) > 0


def test_sgd_weights_round_trip(digits):
    client = _sgd(digits)
    w = [np.random.default_rng(0).normal(size=(10, 64)), np.arange(10.0)]
    client.evaluate(w, {})
    back = client.get_weights()
    assert distance(back, w) == 0.0
    back[0][0, 0] = 99.0  # a copy: changing it leaves the model alone
    assert client.get_weights()[0][0, 0] != 99.0


@pytest.mark.parametrize("learning_rate", ["constant", "invscaling"])
def test_sgd_proximal_pull_keeps_closer_to_global(digits, learning_rate):
    client = _sgd(digits, estimator=SGDClassifier(loss="log_loss", eta0=0.05,
                                                  learning_rate=learning_rate))
    start = client.fit(client.get_weights(), {"round": 1})[0]  # a non-zero global model
    free = client.fit(start, {"round": 2})[0]
    pulled = client.fit(start, {"round": 2, "proximal_mu": 1.0})[0]
    tight = client.fit(start, {"round": 2, "proximal_mu": 10.0})[0]
    assert distance(tight, start) < distance(pulled, start) < distance(free, start)
    assert distance(client.fit(start, {"round": 2, "proximal_mu": 0.0})[0], free) == 0.0


def test_sgd_proximal_needs_a_known_step_size(digits):
    client = _sgd(digits)  # learning_rate="optimal"
    with pytest.raises(ConfigError, match="send 'lr'"):
        client.fit(client.get_weights(), {"proximal_mu": 0.1})
    assert client.fit(client.get_weights(), {"proximal_mu": 0.1, "lr": 0.01})[1] == 300


def test_sgd_epochs_and_batch_size_from_config(digits):
    client = _sgd(digits, epochs=2, batch_size=None)
    w = client.get_weights()
    assert client.fit(w, {})[2] == {"local_steps": 2}
    assert client.fit(w, {"epochs": 3, "batch_size": 100})[2] == {"local_steps": 9}


def test_sgd_model_from_weights_predicts_like_the_client(digits):
    X, _ = digits
    client = _sgd(digits)
    w = client.fit(client.get_weights(), {"round": 1})[0]
    client.evaluate(w, {})
    model = SGDClient.model_from_weights(SGDClassifier(loss="log_loss"), w, classes=CLASSES)
    assert np.array_equal(model.predict(X), client.estimator.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), client.estimator.predict_proba(X))
    with pytest.raises(ConfigError, match="classes"):
        SGDClient.model_from_weights(SGDClassifier(), w)
    with pytest.raises(InvalidInputError, match="shape"):
        SGDClient.model_from_weights(SGDClassifier(), w, classes=range(3))


def test_sgd_binary_and_hinge(digits):
    X, y = digits
    keep = y < 2
    binary = SGDClient(SGDClassifier(loss="log_loss"), X[keep], y[keep])
    assert [w.shape for w in binary.get_weights()] == [(1, 64), (1,)]
    loss, _, metrics = binary.evaluate(binary.fit(binary.get_weights(), {})[0], {})
    assert loss < 0.1 and metrics["accuracy"] > 0.95
    hinge = _sgd(digits, estimator=SGDClassifier(loss="hinge"))
    w0 = hinge.get_weights()
    loss0, _, m0 = hinge.evaluate(w0, {})
    loss1, _, m1 = hinge.evaluate(hinge.fit(w0, {})[0], {})
    assert loss0 == 1.0  # the multiclass hinge loss of all-zero scores
    assert np.isfinite(loss1) and m1["accuracy"] > m0["accuracy"] + 0.5


def test_sgd_regressor(digits):
    X, _ = digits
    target = X[:, 20] + 0.5 * X[:, 30]
    client = SGDClient(SGDRegressor(eta0=0.05), X[:400], target[:400], epochs=3,
                       batch_size=20, X_test=X[400:], y_test=target[400:])
    w0 = client.get_weights()
    assert [w.shape for w in w0] == [(64,), (1,)]
    mse0, n, _ = client.evaluate(w0, {})
    w1, _, _ = client.fit(w0, {"round": 1})
    mse1, _, metrics = client.evaluate(w1, {})
    assert n == 200 and mse1 < mse0 / 3 and metrics["r2"] > 0.5
    assert client.properties() == {"num_examples": 400}
    model = SGDClient.model_from_weights(SGDRegressor(), w1)
    np.testing.assert_allclose(model.predict(X), client.estimator.predict(X))
    pulled = client.fit(w1, {"round": 2, "proximal_mu": 5.0})[0]
    assert distance(pulled, w1) < distance(client.fit(w1, {"round": 2})[0], w1)


def test_sgd_properties_and_classes(digits):
    X, y = digits
    client = SGDClient(SGDClassifier(), X[:50], y[:50], classes=CLASSES)
    props = client.properties()
    assert props["num_examples"] == 50
    assert sum(props["label_histogram"].values()) == 50
    assert set(props["label_histogram"]) <= {str(c) for c in CLASSES}
    with pytest.raises(InvalidInputError, match="not among classes"):
        SGDClient(SGDClassifier(), X[:50], y[:50], classes=[0, 1])


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"estimator": LogisticRegression()}, ConfigError, "SGDClassifier or SGDRegressor"),
    ({"estimator": SGDClassifier(average=True)}, ConfigError, "average=False"),
    ({"estimator": SGDClassifier(class_weight="balanced")}, ConfigError, "dict"),
    ({"X": [[np.nan] * 64]}, InvalidInputError, "NaN"),
    ({"X": np.zeros(64)}, InvalidInputError, "2-D"),
    ({"y": np.zeros(3)}, InvalidInputError, "one value per row"),
    ({"X_test": np.zeros((2, 64))}, ConfigError, "both X_test and y_test"),
    ({"epochs": 0}, ConfigError, "epochs must be an integer >= 1"),
    ({"batch_size": 2.5}, ConfigError, "batch_size"),
    ({"seed": -1}, ConfigError, "seed"),
    ({"y": np.zeros(10)}, InvalidInputError, "at least 2 classes"),
])
def test_sgd_bad_arguments(kwargs, error, words):
    X, y = np.random.default_rng(0).random((10, 64)), np.arange(10) % 2
    args = {"estimator": SGDClassifier(), "X": X, "y": y, **kwargs}
    with pytest.raises(error, match=words):
        SGDClient(args.pop("estimator"), args.pop("X"), args.pop("y"), **args)


@pytest.mark.parametrize(("config", "error", "words"), [
    ({"epochs": 0}, ConfigError, "config 'epochs'"),
    ({"batch_size": "10"}, ConfigError, "config 'batch_size'"),
    ({"lr": -0.1}, ConfigError, "config 'lr'"),
    ({"proximal_mu": float("inf")}, ConfigError, "config 'proximal_mu'"),
    ({"round": -2}, ConfigError, "config 'round'"),
])
def test_sgd_bad_config(digits, config, error, words):
    client = _sgd(digits)
    with pytest.raises(error, match=words):
        client.fit(client.get_weights(), config)


def test_sgd_refuses_weights_of_another_shape(digits):
    client = _sgd(digits)
    with pytest.raises(InvalidInputError, match="shape"):
        client.fit([np.zeros((10, 63)), np.zeros(10)], {})
    with pytest.raises(InvalidInputError, match="NaN"):
        client.evaluate([np.full((10, 64), np.nan), np.zeros(10)], {})


# -- LogisticRegression ------------------------------------------------------------------
def test_logistic_regression_client(digits):
    X, y = digits
    few = y < 4  # this site has seen only 4 of the 10 digits
    client = LogisticRegressionClient(LogisticRegression(), X[few], y[few], classes=CLASSES,
                                      max_iter=3, X_test=X, y_test=y)
    w0 = client.get_weights()
    assert [w.shape for w in w0] == [(10, 64), (10,)] and not w0[0].any()
    w1, n, metrics = client.fit(w0, {"round": 1})
    assert n == int(few.sum()) and 1 <= metrics["local_steps"] <= 3
    assert distance(w1, w0) > 0
    assert client.fit(w1, {"max_iter": 1})[2]["local_steps"] == 1
    assert client.fit(w1, {"epochs": 2, "proximal_mu": 0.0})[2]["local_steps"] <= 2
    assert 0.3 < client.evaluate(w1, {})[2]["accuracy"] < 0.5  # it knows 4 digits of 10
    own, _, m_own = client.score(X[few], y[few])
    assert own < 0.5 and m_own["accuracy"] > 0.9
    client.evaluate(w1, {})
    model = LogisticRegressionClient.model_from_weights(LogisticRegression(), w1,
                                                        classes=CLASSES)
    np.testing.assert_allclose(model.predict_proba(X), client.estimator.predict_proba(X))


def test_logistic_regression_string_labels_missing_locally():
    X, y = np.random.default_rng(0).random((30, 4)), np.array(["a", "b"] * 15)
    client = LogisticRegressionClient(LogisticRegression(), X, y, classes=["a", "b", "cherry"])
    w, n, _ = client.fit(client.get_weights(), {"round": 1})
    assert [a.shape for a in w] == [(3, 4), (3,)] and n == 30
    assert list(client.estimator.classes_) == ["a", "b", "cherry"]
    assert client.properties()["label_histogram"] == {"a": 15, "b": 15}


def test_logistic_regression_refuses_fedprox_and_liblinear(digits):
    X, y = digits
    client = LogisticRegressionClient(LogisticRegression(), X, y)
    with pytest.raises(ConfigError, match="use SGDClient"):
        client.fit(client.get_weights(), {"proximal_mu": 0.01})
    with pytest.raises(ConfigError, match="liblinear"):
        LogisticRegressionClient(LogisticRegression(solver="liblinear"), X, y)
    with pytest.raises(ConfigError, match="LogisticRegression, not SGDClassifier"):
        LogisticRegressionClient(SGDClassifier(), X, y)


def test_clients_package_imports_torch_only_when_asked():
    code = "import sys, mloop.federated.clients; assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
