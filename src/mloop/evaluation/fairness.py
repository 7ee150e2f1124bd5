"""Group fairness of a binary classifier, one ``bincount`` pass per statistic.

Per group (one sensitive feature, or the intersection of several): size, selection
rate, true and false positive rates, accuracy. From them, with Fairlearn's definitions:

* demographic parity difference (max - min selection rate) and ratio (min / max);
* disparate impact (the same ratio) and the four-fifths rule (ratio ≥ 0.8);
* equal opportunity difference (max - min true positive rate);
* equalized odds difference (the larger of the TPR and FPR differences) and ratio (the
  smaller of the TPR and FPR ratios).

A rate that is undefined in a group (no positives for TPR, no negatives for FPR) is NaN
there and left out of the differences, and the result says so in ``undefined``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError


@dataclass(frozen=True)
class FairnessReport:
    groups: list[str]
    size: np.ndarray
    selection_rate: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    accuracy: np.ndarray
    undefined: list[str] = field(default_factory=list)

    def by_group(self) -> dict[str, dict[str, float]]:
        return {g: {"size": int(self.size[i]), "selection_rate": float(self.selection_rate[i]),
                    "tpr": float(self.tpr[i]), "fpr": float(self.fpr[i]),
                    "accuracy": float(self.accuracy[i])} for i, g in enumerate(self.groups)}

    @staticmethod
    def _spread(values: np.ndarray) -> tuple[float, float]:
        v = values[~np.isnan(values)]
        if len(v) == 0:
            return float("nan"), float("nan")
        hi, lo = float(v.max()), float(v.min())
        return hi - lo, (lo / hi if hi > 0 else 1.0)

    @property
    def demographic_parity_difference(self) -> float:
        return self._spread(self.selection_rate)[0]

    @property
    def demographic_parity_ratio(self) -> float:
        return self._spread(self.selection_rate)[1]

    @property
    def disparate_impact(self) -> float:
        return self.demographic_parity_ratio

    @property
    def four_fifths_rule(self) -> bool:
        return self.disparate_impact >= 0.8

    @property
    def equal_opportunity_difference(self) -> float:
        return self._spread(self.tpr)[0]

    @property
    def equalized_odds_difference(self) -> float:
        return max(self._spread(self.tpr)[0], self._spread(self.fpr)[0])

    @property
    def equalized_odds_ratio(self) -> float:
        return min(self._spread(self.tpr)[1], self._spread(self.fpr)[1])

    def summary(self) -> dict[str, float | bool]:
        return {name: getattr(self, name) for name in FAIRNESS_METRICS}


FAIRNESS_METRICS = ("demographic_parity_difference", "demographic_parity_ratio",
                    "disparate_impact", "four_fifths_rule", "equal_opportunity_difference",
                    "equalized_odds_difference", "equalized_odds_ratio")


def _group_codes(sensitive: Any, n: int) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    if isinstance(sensitive, pd.DataFrame):
        if sensitive.shape[1] == 1:
            sensitive = sensitive.iloc[:, 0]
        else:  # intersectional groups: "female, 18-25"
            sensitive = sensitive.astype(str).agg(", ".join, axis=1)
    codes, uniques = pd.factorize(np.asarray(sensitive), sort=True)
    if len(codes) != n:
        raise InvalidInputError(f"The sensitive feature has {len(codes)} rows; the predictions "
                                f"{n}.")
    if (codes < 0).any():
        raise InvalidInputError("The sensitive feature has missing values; fill them (e.g. "
                                "'unknown') so that every row belongs to a group.")
    if len(uniques) < 2:
        raise InvalidInputError(f"The sensitive feature has one group ({uniques[0]!r}); "
                                "fairness compares at least two.")
    return [str(u) for u in uniques], codes


def _positive(y_true: np.ndarray, y_pred: np.ndarray, pos_label: Any) -> Any:
    if pos_label is not None:
        return pos_label
    labels = np.unique(np.concatenate([y_true, y_pred]))
    if len(labels) > 2:
        raise InvalidInputError(f"Fairness metrics here are for binary classifiers; the labels "
                                f"are {labels.tolist()[:10]}. Pass pos_label to pick one class.")
    return labels[-1]


def fairness(y_true: Any, y_pred: Any, sensitive: Any, *, pos_label: Any = None
             ) -> FairnessReport:
    """Per-group rates and the disparity metrics between the groups of ``sensitive``."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if len(t) != len(p):
        raise InvalidInputError(f"y_true has {len(t)} rows but the predictions {len(p)}.")
    groups, g = _group_codes(sensitive, len(t))
    positive = _positive(t, p, pos_label)
    k = len(groups)
    actual = t == positive
    chosen = p == positive
    size = np.bincount(g, minlength=k).astype(float)
    positives = np.bincount(g, weights=actual, minlength=k)
    negatives = size - positives
    selected = np.bincount(g, weights=chosen, minlength=k)
    tp = np.bincount(g, weights=actual & chosen, minlength=k)
    correct = np.bincount(g, weights=actual == chosen, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.where(positives > 0, tp / positives, np.nan)
        fpr = np.where(negatives > 0, (selected - tp) / negatives, np.nan)
    undefined = [f"TPR of {groups[i]!r} (no positives)" for i in np.flatnonzero(positives == 0)]
    undefined += [f"FPR of {groups[i]!r} (no negatives)" for i in np.flatnonzero(negatives == 0)]
    return FairnessReport(groups, size, selected / size, tpr, fpr, correct / size, undefined)
