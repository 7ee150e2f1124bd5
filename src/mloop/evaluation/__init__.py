"""Evaluation and model testing: ``mloop.evaluate`` and the ``mloop test`` gate.

>>> report = mloop.evaluate("models:/churn/2", data="test@1", target="churned",  # doctest: +SKIP
...                         sensitive_features=["gender"], baseline="models:/churn@champion")
>>> report.passed, report.metrics["roc_auc"], report.checks                       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.project import Project, current_project

if TYPE_CHECKING:
    from mloop.evaluation.report import EvaluationReport
    from mloop.evaluation.suite import Suite


def evaluate(model: str, data: Any, target: str, *,
             sensitive_features: list[str] | None = None, baseline: str | None = None,
             suite: str | Path | Suite | None = None, slices: list[str] | None = None,
             cv: int | None = None, seeds: int = 1, cv_strategy: str = "auto",
             cv_groups: str | None = None, resamples: int = 200, seed: int = 0,
             record: bool = True,
             project: Project | None = None) -> EvaluationReport:
    """Measure and check ``model`` on labelled ``data``; the report is the deployment decision.

    ``model``: ``models:/churn/2``, ``models:/churn@champion`` or ``runs:/<id>/model``.
    ``data``: a dataset ref (``test@1``), a CSV or Parquet file, or a DataFrame holding the
    ``target`` column. Metrics come with bootstrap intervals (``resamples``; 0 for none)
    and per-slice values for every sensitive feature and ``slices`` column. ``suite``: a
    YAML file (or :class:`~mloop.evaluation.suite.Suite`) choosing checks and thresholds;
    default: the documented default suite. ``baseline``: a model to compare with.
    ``cv``: folds of a cross-validation that refits the model, repeated over ``seeds``
    (``cv_strategy``: auto, stratified, kfold, group with the ``cv_groups`` column, or
    timeseries); inside an active run each fold is a nested run.
    With ``record``, the report is stored with the model version and the active run.
    """
    from mloop.evaluation.core import evaluate_request
    from mloop.evaluation.request import EvaluationRequest

    where = project if project is not None else current_project()
    return evaluate_request(where, EvaluationRequest.of(
        model, data, target, sensitive_features=sensitive_features, baseline=baseline,
        suite=suite, slices=slices, cv=cv, seeds=seeds, cv_strategy=cv_strategy,
        cv_groups=cv_groups, resamples=resamples, seed=seed, record=record))
