"""Alerts: a rule that fired on a subject, one open record at a time (``alerts``).

SQLAlchemy Core on ``project.store`` (monitoring checks and the alerts commands, off the
CLI's quick paths); imported when first used.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["SEVERITIES", "Alert", "AlertStatus", "Alerts", "Firing", "SqlAlerts"]

SEVERITIES = ("info", "warning", "critical")


class AlertStatus(enum.StrEnum):
    """An alert is open while its rule keeps firing, resolved when the signal recovers."""

    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    """One stored alert."""

    id: str
    rule: str
    signal: str
    subject: str
    severity: str
    status: AlertStatus
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
        return {**asdict(self), "status": str(self.status), "uri": self.uri}


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


class Alerts(Protocol):
    """What the rest of mloop may ask of the alerts table."""

    def record(self, firing: Firing, now: int) -> tuple[Alert, bool]:
        """Store ``firing``: (the alert, whether it is a new one). An open alert of the same
        rule and subject, or one opened within the cooldown, is counted (and reopened)."""
        ...

    def clear(self, rule: str, subject: str, now: int) -> int:
        """Resolve the open alert of ``rule`` on ``subject``; how many were resolved."""
        ...

    def resolve(self, alert_id: str, now: int | None = None) -> Alert:
        """Resolve one alert (unchanged when resolved already); NotFoundError if none."""
        ...

    def list(self, *, open_only: bool = False, subject: str | None = None,
             limit: int = 100) -> list[Alert]:
        """Alerts, last seen first; ``subject`` ending in ``/`` matches it as a prefix."""
        ...

    def open_counts(self) -> dict[str, int]:
        """Open alerts by severity (every severity present, zero included)."""
        ...


def _row(r: Any) -> Alert:
    m = r._mapping  # ("count" is also a method of the row's tuple)
    return Alert(m["id"], m["rule"], m["signal"], m["subject"], m["severity"],
                 AlertStatus(m["status"]), m["value"], m["threshold"], m["message"],
                 int(m["count"]), int(m["opened_at"]), int(m["last_seen_at"]),
                 None if m["resolved_at"] is None else int(m["resolved_at"]))


class SqlAlerts:
    """Alerts in the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def record(self, firing: Firing, now: int) -> tuple[Alert, bool]:
        # Checks running at once (several server workers, a server and `monitor run`)
        # cannot open two alerts: a unique index allows one open alert per rule and
        # subject, and the loser of the race counts itself into the winner's.
        from sqlalchemy.exc import IntegrityError

        try:
            return self._record(firing, now)
        except IntegrityError:
            pass
        try:
            return self._record(firing, now)
        except IntegrityError as exc:
            raise ConflictError(f"Could not record alert {firing.rule} on {firing.subject}: "
                                f"another check kept opening it ({exc.orig}).") from exc

    def _record(self, firing: Firing, now: int) -> tuple[Alert, bool]:
        from sqlalchemy import select, update

        from mloop.store.schema import alerts

        with self.project.store.write() as conn:
            latest = conn.execute(select(alerts).where(
                alerts.c.rule == firing.rule, alerts.c.subject == firing.subject)
                .order_by(alerts.c.opened_at.desc()).limit(1)).first()
            if latest is not None and (latest.status == AlertStatus.OPEN
                                       or latest.opened_at >= now - firing.cooldown_ms):
                conn.execute(update(alerts).where(alerts.c.id == latest.id).values(
                    status=AlertStatus.OPEN.value, resolved_at=None, last_seen_at=now,
                    count=alerts.c.count + 1, value=firing.value, message=firing.message))
                row = conn.execute(select(alerts).where(alerts.c.id == latest.id)).one()
                return _row(row), False
            alert_id = new_id()
            conn.execute(alerts.insert().values(
                id=alert_id, rule=firing.rule, signal=firing.signal, subject=firing.subject,
                severity=firing.severity, status=AlertStatus.OPEN.value, value=firing.value,
                threshold=firing.threshold, message=firing.message, count=1, opened_at=now,
                last_seen_at=now, resolved_at=None))
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
        return _row(row), True

    def clear(self, rule: str, subject: str, now: int) -> int:
        from sqlalchemy import update

        from mloop.store.schema import alerts

        with self.project.store.write() as conn:
            done = conn.execute(update(alerts).where(
                alerts.c.rule == rule, alerts.c.subject == subject,
                alerts.c.status == AlertStatus.OPEN.value)
                .values(status=AlertStatus.RESOLVED.value, resolved_at=now))
        return int(done.rowcount or 0)

    def resolve(self, alert_id: str, now: int | None = None) -> Alert:
        from sqlalchemy import select, update

        from mloop.store.schema import alerts

        with self.project.store.write() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            if row is None:
                raise NotFoundError(f"No alert {alert_id!r}; see `mloop monitor alerts`.")
            if row.status == AlertStatus.OPEN:
                conn.execute(update(alerts).where(alerts.c.id == alert_id).values(
                    status=AlertStatus.RESOLVED.value,
                    resolved_at=now_ms() if now is None else now))
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
        return _row(row)

    def list(self, *, open_only: bool = False, subject: str | None = None,
             limit: int = 100) -> list[Alert]:
        from sqlalchemy import select

        from mloop.core.limits import check_limit

        check_limit(limit)

        from mloop.store.schema import alerts

        query = select(alerts)
        if open_only:
            query = query.where(alerts.c.status == AlertStatus.OPEN.value)
        if subject is not None:  # a version (models:/churn/3) exactly, a model (…/churn/) all
            query = query.where(alerts.c.subject.startswith(subject, autoescape=True)
                                if subject.endswith("/") else alerts.c.subject == subject)
        with self.project.store.read() as conn:
            rows = conn.execute(query.order_by(alerts.c.last_seen_at.desc())
                                .limit(limit)).all()
        return [_row(r) for r in rows]

    def open_counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from mloop.store.schema import alerts

        with self.project.store.read() as conn:
            rows = conn.execute(select(alerts.c.severity, func.count()).where(
                alerts.c.status == AlertStatus.OPEN.value).group_by(alerts.c.severity)).all()
        counts = dict.fromkeys(SEVERITIES, 0)
        counts.update({str(s): int(n) for s, n in rows})
        return counts
