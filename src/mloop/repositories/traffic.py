"""The prediction index of deployment traffic (``deployment_traffic``), every replica's.

Each served row of a deployment is indexed here (request id, row, arm, revision, model,
outcome, prediction, latency, time) by the server's writer thread in batches, so a
canary's analysis or a bandit's rewards see the traffic of every replica sharing the
store, not one host's. Reads answer in columns (:class:`TrafficColumns`); labels are
joined from ``feedback`` in SQL.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["Outcome", "Served", "SqlTraffic", "Traffic", "TrafficColumns", "TrafficRow"]


class Outcome(enum.StrEnum):
    OK = "ok"
    ERROR = "error"  # the arm failed (5xx, a model error, a timeout without fallback)
    FALLBACK = "fallback"  # the arm failed or was too slow; the fallback answered
    SHADOW = "shadow"  # a shadow's answer, never sent to the caller


@dataclass(frozen=True, slots=True)
class TrafficRow:
    request_id: str
    row: int
    arm: str
    deployment: str
    revision: int
    model: str
    outcome: Outcome
    prediction: Any  # a JSON scalar; None for an error
    latency_ms: float | None
    time_ms: int


@dataclass(frozen=True)
class TrafficColumns:
    """Indexed rows column by column; ``label`` (JSON text or None) when joined."""

    request_id: list[str] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    arm: list[str] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)
    prediction: list[Any] = field(default_factory=list)
    latency_ms: list[float | None] = field(default_factory=list)
    time_ms: list[int] = field(default_factory=list)
    label: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.request_id)


@dataclass(frozen=True, slots=True)
class Served:
    """How much traffic one model version answered in one deployment revision."""

    deployment: str
    revision: int
    model: str
    rows: int  # predicted rows answered (shadow copies excluded)
    first_ms: int
    last_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "revision": self.revision,
                "uri": f"deployments:/{self.deployment}/{self.revision}",
                "model": self.model, "rows": self.rows, "first_ms": self.first_ms,
                "last_ms": self.last_ms}


class Traffic(Protocol):
    """What the rest of mloop may ask of the traffic index."""

    def record(self, rows: Iterable[TrafficRow]) -> int:
        """Index ``rows`` in one transaction (a repeated key is ignored); how many."""
        ...

    def read(self, deployment: str, revision: int, *, since_ms: int | None = None,
             labelled: bool = False) -> TrafficColumns:
        """The rows of a revision (at or after ``since_ms``), with their feedback label
        (None where none came); ``labelled`` keeps only rows that have one."""
        ...

    def prune(self, before_ms: int) -> int:
        """Delete rows older than ``before_ms``; how many."""
        ...

    def counts(self, deployment: str, revision: int, *, since_ms: int | None = None,
               labelled: bool = False) -> dict[str, dict[str, int]]:
        """Rows of a revision by arm and outcome (``{"canary": {"ok": 90, "error": 10}}``),
        counted in the database: cheap enough to ask on every controller tick;
        ``labelled`` counts only rows that have feedback."""
        ...

    def served(self, models: Iterable[str]) -> list[Served]:
        """The traffic each of ``models`` (``models:/NAME/V``) answered, by deployment
        revision (outcome ok; a fallback's rows count for the fallback's model)."""
        ...


_INSERT = ("INSERT INTO deployment_traffic (request_id, row, arm, deployment, revision, "
           "model, outcome, prediction, latency_ms, time_ms) VALUES (:request_id, :row, "
           ":arm, :deployment, :revision, :model, :outcome, :prediction, :latency_ms, "
           ":time_ms) ON CONFLICT DO NOTHING")


class SqlTraffic:
    """:class:`Traffic` over the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def record(self, rows: Iterable[TrafficRow]) -> int:
        # the server's writer thread, once a second: portable SQL through ``lite`` (the
        # stdlib driver on SQLite, ~10x less CPU a row than SQLAlchemy's executemany,
        # and no SQLAlchemy import in a server that never needed it)
        from mloop.store.lite import lite

        values = [{"request_id": r.request_id, "row": r.row, "arm": r.arm,
                   "deployment": r.deployment, "revision": r.revision, "model": r.model,
                   "outcome": r.outcome.value,
                   "prediction": None if r.prediction is None else json.dumps(r.prediction),
                   "latency_ms": r.latency_ms, "time_ms": r.time_ms} for r in rows]
        if not values:
            return 0
        with lite(self.project).write() as q:
            q.many(_INSERT, values)
        return len(values)

    def read(self, deployment: str, revision: int, *, since_ms: int | None = None,
             labelled: bool = False) -> TrafficColumns:
        from sqlalchemy import and_, select

        from mloop.store.schema import deployment_traffic as t
        from mloop.store.schema import feedback as f

        join = t.join(f, and_(f.c.request_id == t.c.request_id, f.c.row == t.c.row),
                      isouter=not labelled)
        query = (select(t.c.request_id, t.c.row, t.c.arm, t.c.outcome, t.c.prediction,
                        t.c.latency_ms, t.c.time_ms, f.c.label).select_from(join)
                 .where(t.c.deployment == deployment, t.c.revision == revision))
        if since_ms is not None:
            query = query.where(t.c.time_ms >= since_ms)
        with self.project.store.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return TrafficColumns()
        ids, numbers, arms, outcomes, preds, latencies, times, labels = (
            list(c) for c in zip(*rows, strict=True))
        return TrafficColumns(ids, [int(n) for n in numbers], arms, outcomes,
                              [None if p is None else json.loads(p) for p in preds],
                              latencies, [int(x) for x in times], labels)

    def prune(self, before_ms: int) -> int:
        from sqlalchemy import delete

        from mloop.store.schema import deployment_traffic

        with self.project.store.write() as conn:
            gone = conn.execute(delete(deployment_traffic).where(
                deployment_traffic.c.time_ms < before_ms))
        return int(gone.rowcount or 0)

    def counts(self, deployment: str, revision: int, *, since_ms: int | None = None,
               labelled: bool = False) -> dict[str, dict[str, int]]:
        from sqlalchemy import and_, func, select

        from mloop.store.schema import deployment_traffic as t
        from mloop.store.schema import feedback as f

        query = select(t.c.arm, t.c.outcome, func.count())
        if labelled:
            query = query.select_from(t.join(f, and_(f.c.request_id == t.c.request_id,
                                                     f.c.row == t.c.row)))
        query = (query.where(t.c.deployment == deployment, t.c.revision == revision)
                 .group_by(t.c.arm, t.c.outcome))
        if since_ms is not None:
            query = query.where(t.c.time_ms >= since_ms)
        with self.project.store.read() as conn:
            rows = conn.execute(query).all()
        out: dict[str, dict[str, int]] = {}
        for arm, outcome, n in rows:
            out.setdefault(arm, {})[outcome] = int(n)
        return out

    def served(self, models: Iterable[str]) -> list[Served]:
        from sqlalchemy import func, select

        from mloop.store.schema import deployment_traffic as t

        wanted = sorted(set(models))
        if not wanted:
            return []
        query = (select(t.c.deployment, t.c.revision, t.c.model, func.count(),
                        func.min(t.c.time_ms), func.max(t.c.time_ms))
                 .where(t.c.model.in_(wanted), t.c.outcome == Outcome.OK.value)
                 .group_by(t.c.deployment, t.c.revision, t.c.model)
                 .order_by(t.c.deployment, t.c.revision, t.c.model))
        with self.project.store.read() as conn:
            rows = conn.execute(query).all()
        return [Served(d, int(r), m, int(n), int(lo), int(hi)) for d, r, m, n, lo, hi in rows]
