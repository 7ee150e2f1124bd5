"""Rollback on monitoring alerts: a rule naming a deployment rolls back the version its
rollout put into traffic, once, and never a rollback itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier

import mloop
import mloop.deploy as deploy
from mloop.deploy.alarms import alarm
from mloop.monitoring.alerting import Firing, fire


def _versions(project, count: int) -> None:
    X = pd.DataFrame({"x": np.arange(6.0)})
    for i in range(count):
        model = DummyClassifier(strategy="constant", constant=i % 2).fit(X, [0, 1] * 3)
        with mloop.start_run(project=project):
            mloop.log_model(model, input_example=X.head(2), registered_name="churn",
                            onnx=False)


def _fire(project, rule: str, subject: str) -> None:
    fire(project, Firing(rule, "drift.dataset", subject, "critical", 1.0, 1.0,
                         "inputs drifted", 3_600_000))


def test_an_alert_on_the_new_version_calls_for_its_rollback(sqlite_project):
    project = sqlite_project
    _versions(project, 2)
    (project.root / ".mloop" / "monitoring.yaml").write_text(
        "rules:\n  - name: data-drift\n    signal: drift.dataset\n    rollback: live\n"
        "  - name: quiet\n    signal: drift.dataset\n")
    deploy.create("live", "models:/churn/1", project=project)
    revision = deploy.canary("live", "models:/churn/2", project=project)
    assert alarm(project, revision) is None
    _fire(project, "quiet", "models:/churn/2")  # a rule that names no deployment
    _fire(project, "data-drift", "models:/churn/1")  # on the stable: not the rollout's
    assert alarm(project, revision) is None
    _fire(project, "data-drift", "models:/churn/2")
    found = alarm(project, revision)
    assert found is not None and found.model == "models:/churn/2"
    assert "alert data-drift (critical) on models:/churn/2" in found.reason
    back = deploy.rollback("live", reason=found.reason, initiated_by="system",
                           project=project)
    # the rollback itself is never rolled back by the alert still open
    assert back.rollback_of == revision.number and alarm(project, back) is None


def test_a_rule_naming_a_deployment_is_checked(tmp_path):
    import pytest

    from mloop.errors import ConfigError
    from mloop.monitoring.rules import parse_config

    rules = parse_config({"rules": [{"signal": "drift.dataset", "rollback": "live"}]}).rules
    assert rules[0].rollback == "live"
    with pytest.raises(ConfigError, match="rollback"):
        parse_config({"rules": [{"signal": "drift.dataset", "rollback": "no good"}]})


def test_the_controller_rolls_back_on_the_alert_once(sqlite_project):
    from mloop.deploy.controller import Controller

    project = sqlite_project
    _versions(project, 2)
    (project.root / ".mloop" / "monitoring.yaml").write_text(
        "rules:\n  - name: data-drift\n    signal: drift.dataset\n    rollback: live\n")
    deploy.create("live", "models:/churn/1", project=project)
    deploy.replace("live", "models:/churn/2", project=project)
    controller = Controller(project, ["live"])
    assert controller.tick() == []
    _fire(project, "data-drift", "models:/churn/2")
    (decision,) = controller.tick()
    assert (decision.action, decision.revision) == ("rolled_back", 2)
    current = deploy.status("live", project=project).revision
    assert current.arms[0].model == "models:/churn/1" and current.rollback_of == 2
    assert current.created_by == "system" and "data-drift" in current.reason
    assert controller.tick() == []  # the rollback is not rolled back
    controller.release()
