"""Per-arm measures of a revision from the traffic index and feedback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mloop import deploy, repositories
from mloop.core.clock import now_ms
from mloop.deploy.measure import ArmMeasure, measure, measure_all
from mloop.repositories.feedback import Feedback
from mloop.repositories.traffic import Outcome, TrafficRow
from tests.deploy.traffic import register, send


@pytest.fixture
def canary(project):
    register()
    deploy.create("live", "models:/churn@champion")
    return deploy.canary("live", "models:/churn/2", interval="1m")


def _row(rid, arm, outcome, pred, latency, *, rev, t=None, row=0):
    return TrafficRow(rid, row, arm, "live", rev.number, rev.arm(arm).model if arm in
                      {a.name for a in rev.arms} else "models:/churn/9", outcome, pred,
                      latency, t or now_ms())


def test_counts_rates_latency_and_accuracy_per_arm(project, canary):
    backend = repositories.backend(project)
    rows = [_row("r1", "canary", Outcome.OK, 1, 10.0, rev=canary),
            _row("r2", "canary", Outcome.ERROR, None, 50.0, rev=canary),
            _row("r3", "canary", Outcome.FALLBACK, 0, 200.0, rev=canary),
            _row("r4", "canary", Outcome.OK, 0, 20.0, rev=canary),
            _row("r5", "stable", Outcome.OK, "1", None, rev=canary)]
    backend.traffic.record(rows)
    backend.feedback.save([Feedback("r1", 0, json.dumps("1")),  # "1" matches 1
                           Feedback("r3", 0, "0"),  # the fallback's answer: not the arm's
                           Feedback("r4", 0, "1"), Feedback("r5", 0, "1")])
    got = measure(project, canary)
    c = got["canary"]
    assert (c.requests, c.errors, c.fallbacks) == (4, 1, 1)
    assert c.error_rate == pytest.approx(0.5)  # a fallback is the arm failing too
    assert sorted(c.predictions.tolist()) == [0, 1]
    assert c.labelled == 2 and c.metrics["accuracy"] == pytest.approx(0.5)
    assert c.latency_p99 == pytest.approx(np.percentile([10, 50, 200, 20], 99))
    s = got["stable"]
    assert s.requests == 1 and s.latency_p99 is None and s.metrics["accuracy"] == 1.0
    json.dumps({k: v.to_dict() for k, v in got.items()}, allow_nan=False)


def test_numeric_predictions_also_get_mae_and_rmse(project, canary):
    backend = repositories.backend(project)
    backend.traffic.record([_row(f"n{i}", "canary", Outcome.OK, p, 1.0, rev=canary)
                            for i, p in enumerate([1.5, 2.0, 4.0])])
    backend.feedback.save([Feedback(f"n{i}", 0, json.dumps(v))
                           for i, v in enumerate([1.0, 2.0, 2.0])])
    c = measure(project, canary)["canary"]
    assert c.metrics["mae"] == pytest.approx((0.5 + 0 + 2) / 3)
    assert c.metrics["rmse"] == pytest.approx(np.sqrt((0.25 + 4) / 3))
    assert c.metrics["accuracy"] == pytest.approx(1 / 3)


def test_since_filters_and_an_unknown_arm_is_ignored_and_counted(project, canary):
    backend = repositories.backend(project)
    old = now_ms() - 60_000
    backend.traffic.record([_row("o1", "canary", Outcome.OK, 1, 1.0, rev=canary, t=old),
                            _row("x1", "gone", Outcome.OK, 1, 1.0, rev=canary),
                            _row("c1", "canary", Outcome.OK, 1, 1.0, rev=canary)])
    backend.feedback.save([Feedback("x1", 0, "1")])
    got = measure_all(project, canary, since_ms=old + 1)
    assert got.arms["canary"].requests == 1
    assert set(got.arms) == {"stable", "canary"}
    assert (got.ignored, got.ignored_labelled) == (1, 1)


def test_status_reports_the_measurements(project, canary):
    send(project, "live", "canary", 20, error_rate=0.5, seed=3)
    status = deploy.status("live").to_dict()
    assert status["measurements"]["canary"]["requests"] == 20
    assert status["measurements"]["stable"]["requests"] == 0


def test_a_shadow_gets_its_agreement_with_the_primary(sqlite_project):
    register()
    deploy.create("live", "models:/churn@champion")
    rev = deploy.shadow("live", "models:/churn/2")
    backend = repositories.backend(sqlite_project)
    t = now_ms()
    rows = []
    for i, (p, s) in enumerate([(1, 1), (0, 0), (1, 0), (0, 0)]):
        rows += [TrafficRow(f"q{i}", 0, "primary", "live", rev.number, "models:/churn/1",
                            Outcome.OK, p, 1.0, t),
                 TrafficRow(f"q{i}", 0, "shadow", "live", rev.number, "models:/churn/2",
                            Outcome.SHADOW, s, 2.0, t)]
    backend.traffic.record(rows)
    got = measure(sqlite_project, rev)
    assert got["shadow"].agreement == pytest.approx(0.75) and got["shadow"].compared == 4
    assert got["shadow"].to_dict()["agreement"] == pytest.approx(0.75)
    assert got["primary"].requests == 4 and got["shadow"].requests == 4


def test_an_empty_arm_is_all_zeros():
    m = ArmMeasure("x")
    assert m.error_rate is None
    assert m.to_dict()["requests"] == 0
