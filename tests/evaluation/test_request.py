"""The evaluation request (validated once, frozen), the phases' one timing helper, and the
checks' context (built once, frozen)."""

import dataclasses

import numpy as np
import pytest

from mloop.errors import ConfigError
from mloop.evaluation.checks import Context
from mloop.evaluation.core import timed
from mloop.evaluation.request import EvaluationRequest
from mloop.evaluation.suite import Suite


def test_a_request_holds_tuples_and_a_checked_suite(tmp_path):
    suite = tmp_path / "gate.yaml"
    suite.write_text("checks:\n  - metric: accuracy\n    min: 0.9\n")
    request = EvaluationRequest.of("churn/1", "test@1", "y", sensitive_features=["g"],
                                   slices=["region", "g"], cv_groups="customer",
                                   suite=suite)
    assert request.sensitive_features == ("g",) and request.slices == ("region", "g")
    assert request.suite is not None and request.suite.name == "gate"
    assert request.suite.checks[0]["min"] == 0.9  # validated, with its kind's defaults
    assert request.named_columns == ["g", "region", "g", "customer"]
    assert request.slice_columns == ["g", "region"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.target = "other"  # type: ignore[misc]


def test_a_suite_with_a_mistake_fails_when_the_request_is_built(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text("checks:\n  - metric: accuracy\n    mni: 0.9\n")
    with pytest.raises(ConfigError, match="did you mean 'min'"):
        EvaluationRequest.of("churn/1", "test@1", "y", suite=suite)
    with pytest.raises(ConfigError):
        EvaluationRequest.of("churn/1", "test@1", "y",
                             suite=Suite("py", [{"metric": "accuracy", "mni": 1}]))


def test_timed_records_each_phase_in_order_under_its_final_name():
    timings: dict[str, float] = {}
    with timed(timings, "load"):
        pass
    with timed(timings, "check") as phase:
        phase.name = "check: determinism"
    with pytest.raises(ValueError), timed(timings, "metrics"):
        raise ValueError("no report is made, so nothing is recorded")
    assert list(timings) == ["load", "check: determinism"]
    assert all(seconds >= 0 for seconds in timings.values())


def test_the_checks_context_cannot_change_once_built():
    ctx = Context(model=None, X=None, y=np.zeros(2), task="regression", pred=np.zeros(2),
                  score=None, metrics={"mae": 0.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.metrics = {}  # type: ignore[misc]
    ctx.cache["kept"] = 1  # a check may keep what it computed for later checks
