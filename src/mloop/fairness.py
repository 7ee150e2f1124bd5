"""``mloop.fairness``: group fairness of a binary classifier (Fairlearn's definitions).

See :mod:`mloop.evaluation.fairness`.
"""

from mloop.evaluation.fairness import FAIRNESS_METRICS, FairnessReport, fairness

__all__ = ["FAIRNESS_METRICS", "FairnessReport", "fairness"]
