"""``mloop.metrics``: model metrics equal to scikit-learn's definitions, and bootstrap intervals.

See :mod:`mloop.evaluation.metrics` for the definitions.
"""

from mloop.evaluation.metrics import (
    METRICS,
    Metric,
    accuracy,
    balanced_accuracy,
    bootstrap,
    brier,
    calibration_error,
    confusion_matrix,
    f1,
    get_metric,
    log_loss,
    mae,
    mape,
    median_absolute_error,
    pr_auc,
    precision,
    r2,
    recall,
    rmse,
    roc_auc,
    specificity,
)

sensitivity = recall

__all__ = ["METRICS", "Metric", "accuracy", "balanced_accuracy", "bootstrap", "brier",
           "calibration_error", "confusion_matrix", "f1", "get_metric", "log_loss", "mae",
           "mape", "median_absolute_error", "pr_auc", "precision", "r2", "recall", "rmse",
           "roc_auc", "sensitivity", "specificity"]
