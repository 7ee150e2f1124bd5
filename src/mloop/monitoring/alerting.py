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
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.redact import get_logger
from mloop.errors import NotFoundError
from mloop.monitoring import webhooks
from mloop.monitoring.webhooks import check_webhook

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.monitoring")
SEVERITIES = ("info", "warning", "critical")
__all__ = ["SEVERITIES", "Alert", "Firing", "check_webhook", "clear", "fire", "list_alerts",
           "notify", "open_counts", "resolve"]


@dataclass
class Alert:
    id: str
    rule: str
    signal: str
    subject: str
    severity: str
    status: str
    value: float | None
    threshold: float | None
    message: str
    count: int
    opened_at: int
    last_seen_at: int
    resolved_at: int | None

    @property
    def uri(self) -> str:
        return f"alerts:/{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "uri": self.uri}


@dataclass(frozen=True)
class Firing:
    """What a check found: a rule's signal over its threshold on a subject."""

    rule: str
    signal: str
    subject: str  # models:/name/version
    severity: str
    value: float | None
    threshold: float | None
    message: str
    cooldown_ms: int


def _row(r: Any) -> Alert:
    m = r._mapping  # ("count" is also a method of the row's tuple)
    return Alert(m["id"], m["rule"], m["signal"], m["subject"], m["severity"], m["status"],
                 m["value"], m["threshold"], m["message"], int(m["count"]),
                 int(m["opened_at"]), int(m["last_seen_at"]),
                 None if m["resolved_at"] is None else int(m["resolved_at"]))


def fire(project: Project, firing: Firing, *, webhook: str | None = None,
         now: int | None = None) -> tuple[Alert, bool]:
    """Record ``firing``; returns (the alert, whether it is new and was announced).

    Checks running at once (several server workers, a server and ``monitor run``) cannot
    open two alerts: a unique index allows one open alert per rule and subject, and the
    loser of the race counts itself into the winner's.
    """
    from sqlalchemy.exc import IntegrityError

    try:
        return _fire(project, firing, webhook, now)
    except IntegrityError:
        return _fire(project, firing, webhook, now)


def _fire(project: Project, firing: Firing, webhook: str | None,
          now: int | None) -> tuple[Alert, bool]:
    from sqlalchemy import select, update

    from mloop.store.schema import alerts

    t = now_ms() if now is None else now
    store = project.store
    with store.write() as conn:
        latest = conn.execute(select(alerts).where(
            alerts.c.rule == firing.rule, alerts.c.subject == firing.subject)
            .order_by(alerts.c.opened_at.desc()).limit(1)).first()
        if latest is not None and (latest.status == "open"
                                   or latest.opened_at >= t - firing.cooldown_ms):
            conn.execute(update(alerts).where(alerts.c.id == latest.id).values(
                status="open", resolved_at=None, last_seen_at=t, count=alerts.c.count + 1,
                value=firing.value, message=firing.message))
            row = conn.execute(select(alerts).where(alerts.c.id == latest.id)).one()
            return _row(row), False
        alert_id = new_id()
        conn.execute(alerts.insert().values(
            id=alert_id, rule=firing.rule, signal=firing.signal, subject=firing.subject,
            severity=firing.severity, status="open", value=firing.value,
            threshold=firing.threshold, message=firing.message, count=1, opened_at=t,
            last_seen_at=t, resolved_at=None))
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
    alert = _row(row)
    from mloop import lineage

    lineage.add_edge(project, firing.subject, alert.uri, "alert")
    log.warning("alert %s [%s] %s on %s: %s", alert.id, alert.severity, alert.rule,
                alert.subject, alert.message)
    if webhook:
        notify(webhook, alert)
    return alert, True


def clear(project: Project, rule: str, subject: str, *, now: int | None = None) -> int:
    """Resolve the open alert of ``rule`` on ``subject`` (the signal recovered)."""
    from sqlalchemy import update

    from mloop.store.schema import alerts

    with project.store.write() as conn:
        done = conn.execute(update(alerts).where(
            alerts.c.rule == rule, alerts.c.subject == subject, alerts.c.status == "open")
            .values(status="resolved", resolved_at=now_ms() if now is None else now))
    return int(done.rowcount or 0)


def resolve(project: Project, alert_id: str) -> Alert:
    """Mark one alert resolved by hand (it reopens if its rule fires again)."""
    from sqlalchemy import select, update

    from mloop.store.schema import alerts

    with project.store.write() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"No alert {alert_id!r}; see `mloop monitor alerts`.")
        if row.status == "open":
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(
                status="resolved", resolved_at=now_ms()))
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
    return _row(row)


def list_alerts(project: Project, *, open_only: bool = False, subject: str | None = None,
                limit: int = 100) -> list[Alert]:
    """Alerts, newest first."""
    from sqlalchemy import select

    from mloop.store.schema import alerts

    query = select(alerts)
    if open_only:
        query = query.where(alerts.c.status == "open")
    if subject is not None:  # a version (models:/churn/3) exactly, a model (models:/churn/) all
        query = query.where(alerts.c.subject.startswith(subject, autoescape=True)
                            if subject.endswith("/") else alerts.c.subject == subject)
    with project.store.read() as conn:
        rows = conn.execute(query.order_by(alerts.c.last_seen_at.desc()).limit(limit)).all()
    return [_row(r) for r in rows]


def open_counts(project: Project) -> dict[str, int]:
    """Open alerts by severity (every severity present, zero included)."""
    from sqlalchemy import func, select

    from mloop.store.schema import alerts

    with project.store.read() as conn:
        rows = conn.execute(select(alerts.c.severity, func.count()).where(
            alerts.c.status == "open").group_by(alerts.c.severity)).all()
    counts = dict.fromkeys(SEVERITIES, 0)
    counts.update({str(s): int(n) for s, n in rows})
    return counts


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
