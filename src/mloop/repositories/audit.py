"""Who did what through the team server: ``audit_log``.

Written in batches by :mod:`mloop.server.audit` (never a transaction per request); read
newest first by ``mloop server audit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mloop.core.ids import new_id

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["Audit", "AuditEntry", "SqlAudit"]


@dataclass(frozen=True)
class AuditEntry:
    """One audited call: who (name, token id, role), what (action, target), how it ended
    (the HTTP status) and when (Unix ms)."""

    at_ms: int
    actor: str
    token_id: str | None
    role: str
    action: str  # "POST /api/v1/models/register", or a method name
    target: str | None  # short and redacted: a model name, a run id …
    status: int
    id: str = field(default_factory=new_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Audit(Protocol):
    """What the rest of mloop may ask of the audit log."""

    def add(self, entries: Sequence[AuditEntry]) -> int:
        """Store entries in one transaction (an id stored already is skipped, so a batch
        retried after an unclear failure is not doubled); how many were given."""
        ...

    def list(self, *, limit: int = 100, actor: str | None = None,
             since_ms: int | None = None) -> list[AuditEntry]:
        """The newest ``limit`` entries (of ``actor``, at or after ``since_ms``), newest
        first."""
        ...

    def prune(self, before_ms: int) -> int:
        """Delete entries older than ``before_ms``; how many."""
        ...


class SqlAudit:
    """The audit log in the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def add(self, entries: Sequence[AuditEntry]) -> int:
        from mloop.store.schema import audit_log

        if not entries:
            return 0
        store = self.project.store
        stmt = store.insert(audit_log).on_conflict_do_nothing(index_elements=["id"])
        with store.write() as conn:
            conn.execute(stmt, [e.to_dict() for e in entries])
        return len(entries)

    def list(self, *, limit: int = 100, actor: str | None = None,
             since_ms: int | None = None) -> list[AuditEntry]:
        from sqlalchemy import select

        from mloop.core.limits import check_limit

        check_limit(limit)

        from mloop.store.schema import audit_log as a

        query = select(a).order_by(a.c.at_ms.desc(), a.c.id.desc()).limit(max(0, limit))
        if actor is not None:
            query = query.where(a.c.actor == actor)
        if since_ms is not None:
            query = query.where(a.c.at_ms >= since_ms)
        with self.project.store.read() as conn:
            rows = conn.execute(query).all()
        return [AuditEntry(int(r.at_ms), r.actor, r.token_id, r.role, r.action, r.target,
                           int(r.status), r.id) for r in rows]

    def prune(self, before_ms: int) -> int:
        from sqlalchemy import delete

        from mloop.store.schema import audit_log

        with self.project.store.write() as conn:
            gone = conn.execute(delete(audit_log).where(audit_log.c.at_ms < before_ms))
        return int(gone.rowcount or 0)
