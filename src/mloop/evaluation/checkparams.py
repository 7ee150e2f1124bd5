"""The parameters of the built-in check kinds, one model per kind (or per value of its
key), as :mod:`mloop.evaluation.kinds` asks of every kind.

Thresholds named ``min``/``max`` bound the measured value; ``min_change``/``max_change``
bound its change against the baseline model. The docs of every key are generated from
these models (``docs/configuration.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, Field, model_validator

from mloop.core.schema import Name, Schema, TypeName
from mloop.evaluation.fairness import FAIRNESS_METRICS
from mloop.evaluation.kinds import CheckParams
from mloop.evaluation.metrics import METRICS


def _scalar(value: Any) -> Any:
    if not isinstance(value, str | int | float | bool):
        raise ValueError(f"expected a value (text, a number or true/false), got {value!r}")
    return value


Scalar = Annotated[Any, AfterValidator(_scalar), TypeName("a value (text, number, true/false)")]
if TYPE_CHECKING:
    MetricName: TypeAlias = str
    LabelMetric: TypeAlias = str
else:  # the registered metrics, as choices that errors and docs can name
    MetricName = Literal[tuple(sorted(METRICS))]
    LabelMetric = Literal[tuple(sorted(n for n, m in METRICS.items() if m.uses == "label"))]
Share = Annotated[float, Field(ge=0, le=1)]


def _field(default: Any, description: str) -> Any:
    return Field(default, description=description)


# -- metric ------------------------------------------------------------------------------------


class MetricCheck(CheckParams):
    min: float | None = _field(None, "fails when the metric is below")
    max: float | None = _field(None, "fails when the metric is above")
    min_change: float | None = _field(None, "vs the --baseline model: fails when the change "
                                      "(new - old) is below, e.g. -0.01")
    max_change: float | None = _field(None, "vs the --baseline model: fails when the change "
                                      "is above")
    relative: bool = _field(False, "changes as a share of the baseline's value")
    slice: dict[Name, Scalar] | None = _field(None, "the metric on the rows where every "
                                              "column has the value, e.g. {gender: f}")

    @model_validator(mode="after")
    def _one_kind_of_bound(self) -> MetricCheck:
        bounds = {"min", "max"} & self.model_fields_set
        changes = {"min_change", "max_change"} & self.model_fields_set
        if bounds and changes:
            raise ValueError(f"give {' and '.join(sorted(bounds))} or "
                             f"{' and '.join(sorted(changes))}, not both: a change check "
                             "ignores min and max (make two entries)")
        if self.relative and not changes:
            raise ValueError("relative applies to min_change/max_change only")
        return self


# -- baseline ----------------------------------------------------------------------------------


class BaselineCheck(CheckParams):
    metric_name: LabelMetric | None = _field(None, "label metric compared (default: accuracy "
                                             "for classifiers, mae for regressors)")
    min_margin: float = _field(0.0, "how much better than the naive predictor the model must be")


# -- fairness ----------------------------------------------------------------------------------


class FairnessRule(CheckParams):
    sensitive: Name = _field(..., "the sensitive column (also passed as --sensitive)")


class FairnessBound(FairnessRule):
    min: float | None = _field(None, "fails when the value is below")
    max: float | None = _field(None, "fails when the value is above, e.g. 0.10")


FAIRNESS: dict[str, type[CheckParams]] = {
    name: FairnessRule if name == "four_fifths_rule" else FairnessBound
    for name in FAIRNESS_METRICS}


# -- robustness --------------------------------------------------------------------------------


class _Perturbation(CheckParams):
    metric_name: MetricName | None = _field(None, "the metric whose drop is measured "
                                            "(default: accuracy or rmse)")
    max_metric_drop: float | None = _field(None, "fails when the metric gets worse by more")
    relative: bool = _field(False, "the drop as a share of the metric's value")
    max_flip_rate: Share | None = _field(None, "classifiers: fails when a larger share of "
                                         "predictions changes")


class GaussianNoise(_Perturbation):
    scale: Annotated[float, Field(gt=0)] = _field(0.1, "noise in standard deviations of each "
                                                  "numeric column")


class MissingValues(_Perturbation):
    share: Annotated[float, Field(gt=0, le=1)] = _field(0.1, "share of numeric values "
                                                        "replaced by NaN")


class OutOfRange(_Perturbation):
    factor: float = _field(10.0, "numeric values are multiplied by this")


class FlipSearch(CheckParams):
    rows: Annotated[int, Field(ge=1)] = _field(200, "rows sampled")
    min_median_scale: float | None = _field(None, "fails when the median smallest noise that "
                                            "flips a prediction is below (standard deviations)")


ROBUSTNESS: dict[str, type[CheckParams]] = {
    "gaussian_noise": GaussianNoise, "missing_values": MissingValues,
    "out_of_range": OutOfRange, "flip_search": FlipSearch}


# -- behaviour ---------------------------------------------------------------------------------


class OutputBounds(CheckParams):
    min: float | None = _field(None, "regressors: fails when a prediction is below")
    max: float | None = _field(None, "regressors: fails when a prediction is above")


class Invariance(CheckParams):
    column: Name = _field(..., "a column the predictions must not depend on")
    max_flip_rate: Share = _field(0.0, "share of predictions allowed to change when it is "
                                  "shuffled")


class Monotonic(CheckParams):
    column: Name = _field(..., "the numeric column the output must follow")
    direction: Literal["increasing", "decreasing"] = _field("increasing", "which way")
    step: Annotated[float, Field(gt=0)] = _field(0.5, "how far the column is raised, in "
                                                 "standard deviations")
    max_violations: Share = _field(0.0, "share of outputs allowed to move the wrong way")


class SeedStability(CheckParams):
    seeds: Annotated[int, Field(ge=1)] = _field(3, "refits with other random seeds")
    min_agreement: Share = _field(0.95, "fails when a refit agrees less with the model")


BEHAVIOUR: dict[str, type[CheckParams]] = {
    "probabilities_sum_to_one": CheckParams, "determinism": CheckParams,
    "output_bounds": OutputBounds, "invariance": Invariance, "monotonic": Monotonic,
    "engine_consistency": CheckParams, "seed_stability": SeedStability}


# -- data --------------------------------------------------------------------------------------


def _max(default: float, what: str) -> Any:
    return _field(default, f"fails when {what} is above")


class Nulls(CheckParams):
    max: Share = _max(0.0, "the largest share of nulls in a column")


class Duplicates(CheckParams):
    max: Share = _max(0.01, "the share of repeated rows")


class ClassBalance(CheckParams):
    min: Share = _field(0.05, "fails when the smallest class's share is below")


class Leakage(CheckParams):
    max: float = _max(0.98, "a single feature's AUC (or |r|) with the target")


class TrainTestOverlap(CheckParams):
    max: Share = _max(0.0, "the share of evaluation rows also in the training data")


class Skew(CheckParams):
    max: float = _max(0.1, "the largest Kolmogorov-Smirnov distance to the training data")


class Range(Schema):
    min: float | None = _field(None, "values below are out of range")
    max: float | None = _field(None, "values above are out of range")


class Ranges(CheckParams):
    columns: Annotated[dict[Name, Range], Field(min_length=1)] = _field(
        ..., "per column, its allowed range: {age: {min: 0, max: 120}}")
    max: Share = _max(0.0, "the largest share of out-of-range values in a column")


DATA: dict[str, type[CheckParams]] = {
    "nulls": Nulls, "duplicates": Duplicates, "class_balance": ClassBalance,
    "leakage": Leakage, "train_test_overlap": TrainTestOverlap, "skew": Skew,
    "schema": CheckParams, "ranges": Ranges}

METRIC: dict[str, type[CheckParams]] = dict.fromkeys(sorted(METRICS), MetricCheck)
BASELINE: dict[str, type[CheckParams]] = dict.fromkeys(("majority", "mean", "median"),
                                                       BaselineCheck)
