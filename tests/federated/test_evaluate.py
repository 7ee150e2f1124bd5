"""Federated evaluation: example-weighted summaries and the worst client."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.federated.evaluate import higher_is_better, weighted_summary
from mloop.federated.types import EvalResult


def test_no_results_is_empty():
    assert weighted_summary([]) == {}


def test_weighted_loss_metrics_and_worst_clients():
    results = [EvalResult("a", 1.0, 10, {"accuracy": 0.9, "mae": 2.0}),
               EvalResult("b", 3.0, 30, {"accuracy": 0.5, "mae": 1.0})]
    out = weighted_summary(results)
    assert out["loss"] == pytest.approx((1.0 * 10 + 3.0 * 30) / 40)
    assert out["accuracy"] == pytest.approx((0.9 * 10 + 0.5 * 30) / 40)
    assert out["mae"] == pytest.approx((2.0 * 10 + 1.0 * 30) / 40)
    assert out["worst_loss"] == 3.0
    assert out["worst_accuracy"] == 0.5  # higher is better: the worst is the lowest
    assert out["worst_mae"] == 2.0  # an error: the worst is the highest
    assert out["clients"] == 2.0
    assert out["num_examples"] == 40.0


def test_partial_non_numeric_and_reserved_metrics():
    results = [EvalResult("a", 1.0, 1, {"f1": 0.2, "note": "x", "flag": True, "loss": 9.0}),
               EvalResult("b", 1.0, 3, {"note": "y"})]
    out = weighted_summary(results)
    assert out["f1"] == 0.2 and out["worst_f1"] == 0.2  # only the client that reported it
    assert "note" not in out and "flag" not in out
    assert out["loss"] == 1.0  # a metric called loss does not replace the loss


def test_zero_examples_everywhere_counts_each_client_once():
    out = weighted_summary([EvalResult("a", 1.0, 0), EvalResult("b", 3.0, 0)])
    assert out["loss"] == 2.0
    assert out["num_examples"] == 0.0


def test_nan_is_not_hidden():
    out = weighted_summary([EvalResult("a", math.nan, 1), EvalResult("b", 1.0, 1)])
    assert math.isnan(out["loss"]) and math.isnan(out["worst_loss"])


@pytest.mark.parametrize(("name", "higher"), [
    ("accuracy", True), ("val_acc", True), ("roc_auc", True), ("F1_macro", True),
    ("precision", True), ("recall", True), ("r2", True), ("mse", False), ("loss", False),
    ("latency_ms", False)])
def test_direction_of_metrics(name, higher):
    assert higher_is_better(name) is higher


@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.integers(0, 1000)), min_size=1,
                max_size=20))
def test_weighted_loss_lies_between_the_clients(pairs):
    results = [EvalResult(str(i), loss, n) for i, (loss, n) in enumerate(pairs)]
    out = weighted_summary(results)
    losses = [loss for loss, _ in pairs]
    tol = 1e-9 * max(1.0, *(abs(v) for v in losses))
    assert min(losses) - tol <= out["loss"] <= max(losses) + tol
    assert out["worst_loss"] == max(losses)
    assert out["clients"] == len(pairs)
