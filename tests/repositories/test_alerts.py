"""The Alerts contract: one open alert per rule and subject, counted, resolved, listed."""

from __future__ import annotations

import pytest

from mloop import repositories
from mloop.errors import NotFoundError
from mloop.project import Project
from mloop.repositories.alerts import Alerts, AlertStatus, Firing

HOUR = 3_600_000


def _firing(rule: str = "drift", subject: str = "models:/churn/1", *,
            severity: str = "warning", value: float = 0.6, cooldown_ms: int = HOUR) -> Firing:
    return Firing(rule, "drift.share", subject, severity, value, 0.5, f"{rule} fired",
                  cooldown_ms)


@pytest.fixture
def alerts(project: Project) -> Alerts:
    return repositories.backend(project).alerts


def test_a_new_firing_opens_an_alert(alerts: Alerts) -> None:
    alert, new = alerts.record(_firing(), 1_000)
    assert new and alert.status is AlertStatus.OPEN and alert.count == 1
    assert (alert.rule, alert.signal, alert.subject, alert.severity, alert.value,
            alert.threshold, alert.message) == ("drift", "drift.share", "models:/churn/1",
                                                "warning", 0.6, 0.5, "drift fired")
    assert (alert.opened_at, alert.last_seen_at, alert.resolved_at) == (1_000, 1_000, None)
    assert alert.uri == f"alerts:/{alert.id}"
    assert alert.to_dict()["status"] == "open" and type(alert.to_dict()["status"]) is str


def test_firing_again_counts_into_the_open_alert(alerts: Alerts) -> None:
    first, _ = alerts.record(_firing(), 1_000)
    again, new = alerts.record(_firing(value=0.9), 2_000)
    assert not new and again.id == first.id and again.count == 2
    assert again.value == 0.9 and again.last_seen_at == 2_000 and again.opened_at == 1_000
    other, new = alerts.record(_firing(subject="models:/churn/2"), 2_000)
    assert new and other.id != first.id


def test_clear_resolves_and_the_cooldown_reopens(alerts: Alerts) -> None:
    first, _ = alerts.record(_firing(), 1_000)
    assert alerts.clear("drift", "models:/churn/1", 2_000) == 1
    assert alerts.clear("drift", "models:/churn/1", 2_500) == 0  # nothing open
    resolved = alerts.list()[0]
    assert resolved.status is AlertStatus.RESOLVED and resolved.resolved_at == 2_000
    reopened, new = alerts.record(_firing(), 3_000)  # within the cooldown: the same one
    assert not new and reopened.id == first.id and reopened.status is AlertStatus.OPEN
    assert reopened.resolved_at is None
    alerts.clear("drift", "models:/churn/1", 4_000)
    later, new = alerts.record(_firing(), 1_000 + 2 * HOUR)  # past it: a new alert
    assert new and later.id != first.id


def test_resolve_by_hand(alerts: Alerts) -> None:
    alert, _ = alerts.record(_firing(), 1_000)
    done = alerts.resolve(alert.id, 5_000)
    assert done.status is AlertStatus.RESOLVED and done.resolved_at == 5_000
    assert alerts.resolve(alert.id, 9_000).resolved_at == 5_000  # resolved already
    with pytest.raises(NotFoundError, match="No alert 'nope'"):
        alerts.resolve("nope")


def test_list_filters_and_orders(alerts: Alerts) -> None:
    a, _ = alerts.record(_firing("a", "models:/churn/1"), 1_000)
    b, _ = alerts.record(_firing("b", "models:/churn/2"), 2_000)
    c, _ = alerts.record(_firing("c", "models:/churn_x/1"), 3_000)
    alerts.clear("b", "models:/churn/2", 4_000)
    assert [x.id for x in alerts.list()] == [c.id, b.id, a.id]
    assert [x.id for x in alerts.list(open_only=True)] == [c.id, a.id]
    assert [x.id for x in alerts.list(subject="models:/churn/")] == [b.id, a.id]
    assert [x.id for x in alerts.list(subject="models:/churn/2")] == [b.id]
    assert len(alerts.list(limit=1)) == 1


def test_open_counts_by_severity(alerts: Alerts) -> None:
    assert alerts.open_counts() == {"info": 0, "warning": 0, "critical": 0}
    alerts.record(_firing("a", severity="critical"), 1_000)
    alerts.record(_firing("b", severity="critical"), 1_000)
    alerts.record(_firing("c"), 1_000)
    alerts.clear("c", "models:/churn/1", 2_000)
    assert alerts.open_counts() == {"info": 0, "warning": 0, "critical": 2}
