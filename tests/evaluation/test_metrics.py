"""mloop.metrics equals scikit-learn on the same inputs (property-based)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mloop.errors import InvalidInputError
from mloop.evaluation import metrics as m


@st.composite
def binary(draw, n_min=2):
    n = draw(st.integers(n_min, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1  # both classes present
    ties = draw(st.booleans())
    score = rng.random(n).round(1 if ties else 6)
    pred = (score > draw(st.floats(0.05, 0.95))).astype(int)
    return y, pred, score


@st.composite
def multiclass(draw):
    k = draw(st.integers(3, 5))
    n = draw(st.integers(k, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    proba = rng.dirichlet(np.ones(k), n)
    return y, proba.argmax(axis=1), proba


@settings(max_examples=60, deadline=None)
@given(binary())
def test_binary_metrics_equal_sklearn(case):
    y, pred, score = case
    close = pytest.approx
    assert m.accuracy(y, pred) == close(skm.accuracy_score(y, pred))
    assert m.balanced_accuracy(y, pred) == close(skm.balanced_accuracy_score(y, pred))
    assert m.precision(y, pred) == close(skm.precision_score(y, pred, zero_division=0))
    assert m.recall(y, pred) == close(skm.recall_score(y, pred, zero_division=0))
    assert m.specificity(y, pred) == close(skm.recall_score(1 - y, 1 - pred, zero_division=0))
    assert m.f1(y, pred) == close(skm.f1_score(y, pred, zero_division=0))
    assert m.roc_auc(y, score) == close(skm.roc_auc_score(y, score))
    assert m.pr_auc(y, score) == close(skm.average_precision_score(y, score))
    assert m.log_loss(y, score) == close(skm.log_loss(y, np.column_stack([1 - score, score])))
    assert m.brier(y, score) == close(skm.brier_score_loss(y, score))
    np.testing.assert_array_equal(m.confusion_matrix(y, pred), skm.confusion_matrix(y, pred))


@settings(max_examples=40, deadline=None)
@given(multiclass())
def test_multiclass_metrics_equal_sklearn(case):
    y, pred, proba = case
    close = pytest.approx
    assert m.accuracy(y, pred) == close(skm.accuracy_score(y, pred))
    assert m.precision(y, pred) == close(skm.precision_score(y, pred, average="macro",
                                                             zero_division=0))
    assert m.recall(y, pred) == close(skm.recall_score(y, pred, average="macro",
                                                       zero_division=0))
    assert m.f1(y, pred) == close(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert m.roc_auc(y, proba) == close(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert m.log_loss(y, proba) == close(skm.log_loss(y, proba))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2**32 - 1), st.booleans())
def test_regression_metrics_equal_sklearn(n, seed, constant):
    rng = np.random.default_rng(seed)
    y = np.full(n, 3.0) if constant else rng.normal(0, 10, n)
    p = y + rng.normal(0, 1, n)
    close = pytest.approx
    assert m.mae(y, p) == close(skm.mean_absolute_error(y, p))
    assert m.rmse(y, p) == close(np.sqrt(skm.mean_squared_error(y, p)))
    assert m.mape(y, p) == close(skm.mean_absolute_percentage_error(y, p))
    assert m.median_absolute_error(y, p) == close(skm.median_absolute_error(y, p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about R² of one row (NaN)
        expected = skm.r2_score(y, p)
    assert m.r2(y, p) == pytest.approx(expected, nan_ok=True)


def test_string_labels_and_calibration():
    y = np.array(["no", "yes", "yes", "no", "yes"])
    pred = np.array(["no", "yes", "no", "no", "yes"])
    assert m.recall(y, pred) == pytest.approx(skm.recall_score(y, pred, pos_label="yes"))
    score = np.array([0.05, 0.95, 0.45, 0.15, 0.85])
    # one row per bin: (0.05 + 0.05 + 0.55 + 0.15 + 0.15) / 5
    assert m.calibration_error((y == "yes").astype(int), score) == pytest.approx(0.19)


def test_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    score = np.clip(y * 0.3 + rng.random(2000) * 0.7, 0, 1)
    lo, hi = m.bootstrap("roc_auc", y, score, resamples=100)
    assert lo < m.roc_auc(y, score) < hi and hi - lo < 0.1


def test_bad_input():
    with pytest.raises(InvalidInputError, match="both classes"):
        m.roc_auc([1, 1, 1], [0.2, 0.4, 0.9])
    with pytest.raises(InvalidInputError, match="3 rows but the predictions 2"):
        m.accuracy([1, 0, 1], [1, 0])
    with pytest.raises(InvalidInputError, match="Unknown metric 'acc'"):
        m.get_metric("acc")


@settings(max_examples=60, deadline=None)
@given(binary(n_min=4), st.integers(0, 2**32 - 1))
def test_weighted_binary_equals_the_metrics_on_repeated_rows(case, seed):
    y, pred, score = case
    w = np.random.default_rng(seed).integers(0, 4, len(y))
    w[0] = w[1] = 1  # both classes stay present
    got = m.Weighted("classification", y, pred, score).values(w)
    ry, rp, rs = np.repeat(y, w), np.repeat(pred, w), np.repeat(score, w)
    for name, value in got.items():
        metric = m.get_metric(name)
        expected = metric.fn(ry, rs if metric.uses == "score" else rp)
        assert value == pytest.approx(expected, nan_ok=True), name


@settings(max_examples=40, deadline=None)
@given(multiclass(), st.integers(0, 2**32 - 1))
def test_weighted_multiclass_equals_the_metrics_on_repeated_rows(case, seed):
    y, pred, proba = case
    w = np.random.default_rng(seed).integers(1, 4, len(y))
    got = m.Weighted("classification", y, pred, proba).values(w)
    ry, rp, rs = np.repeat(y, w), np.repeat(pred, w), np.repeat(proba, w, axis=0)
    for name, value in got.items():
        metric = m.get_metric(name)
        expected = metric.fn(ry, rs if metric.uses == "score" else rp)
        assert value == pytest.approx(expected), name


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_weighted_regression_equals_the_metrics_on_repeated_rows(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 10, n).round(1)
    p = y + rng.normal(0, 1, n).round(1)
    w = rng.integers(0, 4, n)
    w[0] = max(w[0], 1)
    got = m.Weighted("regression", y, p).values(w)
    ry, rp = np.repeat(y, w), np.repeat(p, w)
    for name, value in got.items():
        assert value == pytest.approx(m.get_metric(name).fn(ry, rp), nan_ok=True), name


def test_weighted_intervals_cover_the_estimates():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    score = np.clip(y * 0.3 + rng.random(5000) * 0.7, 0, 1)
    w = m.Weighted("classification", y, (score > 0.5).astype(int), score)
    ci = w.intervals(100)
    point = w.values()
    for name in ("accuracy", "roc_auc", "pr_auc", "log_loss", "brier"):
        assert ci[name][0] <= point[name] <= ci[name][1], name
