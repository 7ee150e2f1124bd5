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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInputError

POLICIES = ("pass", "warn", "fail")


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


def load_suite(path: str | Path) -> Suite:
    """A suite from a YAML file, validated before anything runs."""
    import yaml

    from mloop.evaluation.checks import check_kinds

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"No suite file {str(path)!r}.") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"Suite {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
        raise InvalidInputError(f"Suite {path} needs a 'checks:' list; see `mloop test --help`.")
    unknown = sorted(set(data) - {"checks", "first_model", "name"})
    if unknown:
        raise InvalidInputError(f"Suite {path}: unknown key(s) {', '.join(unknown)}.")
    policy = data.get("first_model", "warn")
    if policy not in POLICIES:
        raise InvalidInputError(f"first_model must be one of {', '.join(POLICIES)}.")
    kinds = set(check_kinds())
    for i, entry in enumerate(data["checks"], 1):
        if not isinstance(entry, dict):
            raise InvalidInputError(f"Suite {path}, check {i}: expected a mapping like "
                                    "'metric: accuracy'.")
        named = [k for k in entry if k in kinds]
        if len(named) != 1:
            raise InvalidInputError(f"Suite {path}, check {i} ({entry}): name exactly one check "
                                    f"kind of {', '.join(sorted(kinds))}.")
    return Suite(str(data.get("name", Path(path).stem)), list(data["checks"]), policy)
