"""What one evaluation is asked to do: :class:`EvaluationRequest`, validated once.

``mloop.evaluate``, ``mloop test`` / ``mloop evaluate`` and the promotion policy each build
one with :meth:`EvaluationRequest.of`; :func:`mloop.evaluation.core.evaluate_request` runs
it phase by phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloop.evaluation.suite import Suite, check_suite, load_suite


@dataclass(frozen=True)
class EvaluationRequest:
    """The model, the labelled data and the options of one evaluation.

    ``suite`` is already validated (None: the default suite of the model's task); the
    column lists are tuples so that a request cannot change once built.
    """

    model: str  # a models:/ or runs:/ URI (or a name, name/version, name@alias)
    data: Any  # a dataset ref, a CSV or Parquet path, or a DataFrame
    target: str
    sensitive_features: tuple[str, ...] = ()
    baseline: str | None = None
    suite: Suite | None = None
    slices: tuple[str, ...] = ()
    cv: int | None = None  # folds of a cross-validation; None or 0 for none
    seeds: int = 1
    cv_strategy: str = "auto"
    cv_groups: str | None = None
    resamples: int = 200  # bootstrap resamples of the metric intervals; 0 for none
    seed: int = 0
    record: bool = True

    @classmethod
    def of(cls, model: str, data: Any, target: str, *,
           sensitive_features: list[str] | tuple[str, ...] | None = None,
           baseline: str | None = None, suite: str | Path | Suite | None = None,
           slices: list[str] | tuple[str, ...] | None = None, cv: int | None = None,
           seeds: int = 1, cv_strategy: str = "auto", cv_groups: str | None = None,
           resamples: int = 200, seed: int = 0, record: bool = True) -> EvaluationRequest:
        """A request from the arguments of ``mloop.evaluate``; a suite file (or a
        :class:`Suite` built in Python) with a mistake fails here, before any model or
        data is loaded."""
        checked = check_suite(suite) if isinstance(suite, Suite) else (
            load_suite(suite) if suite is not None else None)
        return cls(model, data, target, sensitive_features=tuple(sensitive_features or ()),
                   baseline=baseline, suite=checked, slices=tuple(slices or ()), cv=cv,
                   seeds=seeds, cv_strategy=cv_strategy, cv_groups=cv_groups,
                   resamples=resamples, seed=seed, record=record)

    @property
    def named_columns(self) -> list[str]:
        """The columns the request names (sensitive, slices, cv groups), in that order:
        each must be in the data, and none is reported as left out of the model's input."""
        return [*self.sensitive_features, *self.slices,
                *([self.cv_groups] if self.cv_groups else [])]

    @property
    def slice_columns(self) -> list[str]:
        """The columns metrics are broken down by: every sensitive feature, then slices."""
        sensitive = list(self.sensitive_features)
        return sensitive + [s for s in self.slices if s not in sensitive]
