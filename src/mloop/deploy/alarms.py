"""Rollback on monitoring alerts: a rule of ``.mloop/monitoring.yaml`` may name a
deployment (``rollback: churn-live``); while that rule has an open alert on a model version
the deployment's current revision put into traffic, its controller rolls it back.

"Put into traffic" means an arm of the current revision other than what a rollback
restores (the stable that served before); a revision that is itself a rollback is never
rolled back by an alert (no ping-pong). Only alerts seen after the revision was made count:
an old alert on a version deployed again does not undo the new deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.alerts import Alert
    from mloop.repositories.deployments import Revision

__all__ = ["Alarm", "alarm"]


@dataclass(frozen=True)
class Alarm:
    """An open alert that calls for rolling ``revision`` back."""

    alert: Alert
    model: str

    @property
    def reason(self) -> str:
        return (f"alert {self.alert.rule} ({self.alert.severity}) on {self.model}: "
                f"{self.alert.message} [{self.alert.uri}]")


def alarm(project: Project, revision: Revision) -> Alarm | None:
    """The open alert that should roll ``revision`` back, if any."""
    from mloop.monitoring.alerting import list_alerts
    from mloop.monitoring.rules import load_config

    if revision.rollback_of is not None:
        return None
    rules = {r.name for r in load_config(project.root).rules
             if r.rollback == revision.deployment}
    if not rules:
        return None
    stable = (revision.rollback_target or {}).get("model")
    for model in dict.fromkeys(a.model for a in revision.arms if a.model != stable):
        for alert in list_alerts(project, open_only=True, subject=model):
            if alert.rule in rules and alert.last_seen_at >= revision.created_at:
                return Alarm(alert, model)
    return None
