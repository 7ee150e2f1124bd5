"""Suites: which checks run, with which thresholds (YAML), and the documented default.

.. code-block:: yaml

    first_model: warn        # when a check compares with a baseline and there is none
    checks:
      - metric: accuracy     # any metric of mloop.metrics
        min: 0.90            # blocking unless severity: warn
      - metric: roc_auc
        min_change: -0.01    # vs --baseline: at most 0.01 worse (relative: true for ratios)
      - metric: recall
        slice: {gender: f}   # on a slice of the rows
        min: 0.8
      - fairness: demographic_parity_difference
        sensitive: gender
        max: 0.10
        severity: warn
      - robustness: gaussian_noise
        scale: 0.1
        max_metric_drop: 0.05

Every key of the file and of every check kind is listed in ``docs/configuration.md``,
generated from :class:`SuiteFile` and the kinds' parameter schemas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from mloop.core.schema import Name, Schema, TypeName, config_error, validate


@dataclass(frozen=True)
class Suite:
    name: str
    checks: list[dict[str, Any]]
    first_model: str = "warn"


def default_suite(task: str, sensitive: list[str], has_baseline: bool) -> Suite:
    """The checks every model gets unless a suite says otherwise.

    Blocking: beating the non-ML baseline, sane outputs (probabilities that sum to one,
    known labels or finite values, determinism), the served form (ONNX twin) agreeing
    with the trained model, the model's input columns present, and (with a baseline
    model) no more than 0.01 worse on the primary metric. Warnings: nulls, duplicates,
    class balance, target leakage, train/test overlap and training/serving skew against
    the data the model's run read, Gaussian noise robustness, and per sensitive feature
    demographic parity (≤ 0.10) and the four-fifths rule.
    """
    classification = task == "classification"
    checks: list[dict[str, Any]] = [
        {"baseline": "majority" if classification else "mean"},
        {"behaviour": "determinism"},
        {"behaviour": "output_bounds"},
        {"behaviour": "engine_consistency"},
        {"data": "schema"},
        {"data": "nulls", "max": 0.05, "severity": "warn"},
        {"data": "duplicates", "max": 0.01, "severity": "warn"},
        {"data": "leakage", "max": 0.98, "severity": "warn"},
        {"data": "train_test_overlap", "max": 0.0, "severity": "warn"},
        {"data": "skew", "max": 0.1, "severity": "warn"},
        {"robustness": "gaussian_noise", "scale": 0.1,
         "max_metric_drop": 0.05 if classification else 0.10,
         "relative": None if classification else True, "severity": "warn"},
    ]
    if classification:
        checks[1:1] = [{"behaviour": "probabilities_sum_to_one"}]
        checks.append({"data": "class_balance", "min": 0.05, "severity": "warn"})
        for column in sensitive:
            checks.append({"fairness": "demographic_parity_difference", "sensitive": column,
                           "max": 0.10, "severity": "warn"})
            checks.append({"fairness": "four_fifths_rule", "sensitive": column,
                           "severity": "warn"})
    if has_baseline:
        checks.append({"metric": "accuracy" if classification else "rmse",
                       ("min_change" if classification else "max_change"):
                       -0.01 if classification else 0.01, "relative": not classification})
    return Suite("default", [{k: v for k, v in c.items() if v is not None} for c in checks])


class SuiteFile(Schema):
    """A test suite file (``mloop test --suite``, ``mloop.evaluate(suite=…)``)."""

    checks: Annotated[list[Any], TypeName("a list of checks")] = Field(
        ..., description="the checks, in order; each names one check kind and its "
        "parameters (see Check kinds below)")
    first_model: Literal["pass", "warn", "fail"] = Field(
        "warn", description="the result of a check that compares with a baseline model when "
        "there is none (the first model)")
    name: Name | None = Field(None, description="shown in reports (default: the file's name)")


def load_suite(path: str | Path) -> Suite:
    """A suite from a YAML file, validated before anything runs: unknown keys of the file
    and of every check kind are errors naming the entry and the closest key."""
    from mloop.core.yamlio import load_yaml
    from mloop.evaluation.kinds import validate_entry

    data = load_yaml(path)
    if data is None:
        raise config_error(path, (), "the file is empty; it needs a 'checks:' list (see "
                           "`mloop test --help`)")
    suite = validate(SuiteFile, data, source=path)
    checks = [validate_entry(entry, source=path, at=("checks", i))
              for i, entry in enumerate(suite.checks)]
    return Suite(suite.name or Path(path).stem, checks, suite.first_model)


def check_suite(suite: Suite) -> Suite:
    """``suite`` with every entry validated (a suite built in Python, or the default)."""
    from mloop.evaluation.kinds import validate_entry

    source = f"suite {suite.name!r}"
    return Suite(suite.name, [validate_entry(entry, source=source, at=("checks", i))
                              for i, entry in enumerate(suite.checks)], suite.first_model)
