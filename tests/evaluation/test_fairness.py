"""Fairness metrics equal a plain pandas group-by of Fairlearn's definitions."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import InvalidInputError
from mloop.evaluation.fairness import fairness


def _by_hand(y, p, g):
    df = pd.DataFrame({"y": y, "p": p, "g": g})
    sel = df.groupby("g").p.mean()
    tpr = df[df.y == 1].groupby("g").p.mean()
    fpr = df[df.y == 0].groupby("g").p.mean()
    return {"demographic_parity_difference": sel.max() - sel.min(),
            "demographic_parity_ratio": sel.min() / sel.max(),
            "equal_opportunity_difference": tpr.max() - tpr.min(),
            "equalized_odds_difference": max(tpr.max() - tpr.min(), fpr.max() - fpr.min()),
            "equalized_odds_ratio": min(tpr.min() / tpr.max(), fpr.min() / fpr.max())}


@settings(max_examples=50, deadline=None)
@given(st.integers(40, 2000), st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_disparities_match_the_definitions(n, k, seed):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, k, n)
    g[:k] = np.arange(k)
    y = rng.integers(0, 2, n)
    y[:k], y[k:2 * k] = 1, 0  # every group has positives and negatives
    g[k:2 * k] = np.arange(k)
    p = (rng.random(n) < 0.3 + 0.1 * g).astype(int)
    p[0] = 1
    report = fairness(y, p, g)
    for name, expected in _by_hand(y, p, g).items():
        assert getattr(report, name) == pytest.approx(expected, nan_ok=True), name
    assert report.four_fifths_rule == (report.disparate_impact >= 0.8)


def test_intersectional_groups_and_labels():
    df = pd.DataFrame({"sex": ["f", "f", "m", "m", "f", "m"],
                       "age": ["young", "old", "young", "old", "young", "old"]})
    report = fairness(["yes", "no", "yes", "no", "no", "yes"],
                      ["yes", "no", "no", "no", "yes", "yes"], df)
    assert report.groups == ["f, old", "f, young", "m, old", "m, young"]
    assert report.by_group()["f, young"]["selection_rate"] == 1.0
    assert "TPR of 'f, old' (no positives)" in report.undefined


def test_bad_sensitive_features():
    with pytest.raises(InvalidInputError, match="one group"):
        fairness([1, 0], [1, 1], ["a", "a"])
    with pytest.raises(InvalidInputError, match="missing values"):
        fairness([1, 0], [1, 1], ["a", None])
    with pytest.raises(InvalidInputError, match="binary classifiers"):
        fairness([0, 1, 2], [0, 1, 2], ["a", "b", "a"])
