"""Alerts: a rule that fired on a model version, stored once, told once.

A rule watches a *signal* of a model version (see :mod:`.rules`). When it fires:

* an open alert for the same rule and version is updated (``count``, ``last_seen_at``,
  ``value``) — one record, however many checks keep firing;
* an alert of that rule and version opened within the rule's ``cooldown`` is reopened
  rather than duplicated, and nobody is told again;
* otherwise a new alert is stored, a warning is logged (logger ``mloop.monitoring``), the
  webhook (if configured) receives it as JSON (:mod:`.webhooks`: refused for private
  addresses unless allowed, retried, delivered before the process exits), and the
  lineage graph gets
  ``models:/name/version --alert--> alerts:/<id>``.

When the signal recovers the open alert is resolved. ``mloop monitor alerts`` lists them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mloop.core.clock import now_ms
from mloop.core.redact import get_logger
from mloop.monitoring import webhooks
from mloop.monitoring.webhooks import check_webhook
from mloop.repositories.alerts import SEVERITIES, Alert, AlertStatus, Firing

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.alerts import Alerts

log = get_logger("mloop.monitoring")
__all__ = ["SEVERITIES", "Alert", "AlertStatus", "Firing", "check_webhook", "clear", "fire",
           "list_alerts", "notify", "open_counts", "resolve"]


def _alerts(project: Project) -> Alerts:
    from mloop.repositories import backend

    return backend(project).alerts


def fire(project: Project, firing: Firing, *, webhook: str | None = None,
         now: int | None = None) -> tuple[Alert, bool]:
    """Record ``firing``; returns (the alert, whether it is new and was announced).

    Checks running at once (several server workers, a server and ``monitor run``) cannot
    open two alerts: the repository keeps one open alert per rule and subject.
    """
    alert, new = _alerts(project).record(firing, now_ms() if now is None else now)
    if not new:
        return alert, False
    from mloop import lineage

    lineage.add_edge(project, firing.subject, alert.uri, "alert")
    log.warning("alert %s [%s] %s on %s: %s", alert.id, alert.severity, alert.rule,
                alert.subject, alert.message)
    if webhook:
        notify(webhook, alert)
    return alert, True


def clear(project: Project, rule: str, subject: str, *, now: int | None = None) -> int:
    """Resolve the open alert of ``rule`` on ``subject`` (the signal recovered)."""
    return _alerts(project).clear(rule, subject, now_ms() if now is None else now)


def resolve(project: Project, alert_id: str) -> Alert:
    """Mark one alert resolved by hand (it reopens if its rule fires again)."""
    return _alerts(project).resolve(alert_id)


def list_alerts(project: Project, *, open_only: bool = False, subject: str | None = None,
                limit: int = 100) -> list[Alert]:
    """Alerts, newest first."""
    return _alerts(project).list(open_only=open_only, subject=subject, limit=limit)


def open_counts(project: Project) -> dict[str, int]:
    """Open alerts by severity (every severity present, zero included)."""
    return _alerts(project).open_counts()


def notify(url: str, alert: Alert, *, wait: bool = False) -> None:
    """POST the alert as JSON to ``url`` from a background thread (see
    :mod:`.webhooks`: address policy, retries, delivery before the process exits);
    failures are logged (scheme and host only) and never raised. ``wait`` blocks until
    it is delivered or given up."""
    body = json.dumps({"alert": alert.to_dict(), "text": f"[{alert.severity}] {alert.rule} "
                       f"on {alert.subject}: {alert.message}"}).encode()
    webhooks.send(url, body, f"alert {alert.id}")
    if wait:
        webhooks.flush()
