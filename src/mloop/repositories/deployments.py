"""Deployments: named endpoints, their revisions and events, and the controller's lease.

A deployment (``deployments``) points at its current revision
(``deployment_revisions``): a strategy, arms (model versions pinned when the revision was
made), a policy, a fallback and the runtime state its controller moves (weights, the
canary's step, the last decision). Everything that happens is an event
(``deployment_events``). Every change bumps the deployment's ``serial`` in the same
transaction: replicas poll that one integer, and a writer that read serial ``s`` changes
the deployment only if it is still ``s`` (:class:`~mloop.errors.ConflictError`
otherwise), so a controller replaced mid-step can never apply a step twice.

SQLAlchemy Core on ``project.store``; the JSON columns are parsed here, the meaning of a
policy or a state is :mod:`mloop.deploy`'s.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from mloop.project import Project

__all__ = ["Arm", "DeployEvent", "Deployment", "Deployments", "Ending", "NewRevision",
           "Revision", "RevisionStatus", "SqlDeployments", "Strategy"]


class Strategy(enum.StrEnum):
    """How a revision splits traffic between its arms."""

    REPLACE = "replace"
    CANARY = "canary"
    AB = "ab"
    BANDIT = "bandit"
    SHADOW = "shadow"
    BLUE_GREEN = "blue_green"


class RevisionStatus(enum.StrEnum):
    """Where a revision stands; only an ``active`` one has its controller move it."""

    ACTIVE = "active"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"  # governance: waits for `models approve`
    COMPLETED = "completed"  # promoted, switched for good, or a replace in place
    ABORTED = "aborted"  # an analysis failed; traffic went back to the stable arm
    SUPERSEDED = "superseded"  # a newer revision took over

    @property
    def live(self) -> bool:
        """Whether a controller still has work on it."""
        return self in (RevisionStatus.ACTIVE, RevisionStatus.PAUSED,
                        RevisionStatus.AWAITING_APPROVAL)


@dataclass(frozen=True)
class Arm:
    """One side of a revision: ``model`` is pinned (``models:/NAME/V``); ``source`` is the
    reference it was given as (``models:/churn@champion``); ``weight`` in percent."""

    name: str
    model: str
    source: str
    weight: float
    role: str = "arm"  # stable, canary, shadow, blue, green, primary, arm

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "source": self.source,
                "weight": self.weight, "role": self.role}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Arm:
        return cls(d["name"], d["model"], d["source"], float(d["weight"]),
                   d.get("role", "arm"))


@dataclass(frozen=True)
class Deployment:
    name: str
    current_revision: int | None
    serial: int
    created_at: int
    updated_at: int

    @property
    def uri(self) -> str:
        return f"deployments:/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.uri, "current_revision": self.current_revision,
                "serial": self.serial, "created_at": self.created_at,
                "updated_at": self.updated_at}


@dataclass(frozen=True)
class Revision:
    """One stored revision; ``state`` holds the live weights (percent by arm name)."""

    deployment: str
    number: int
    strategy: Strategy
    status: RevisionStatus
    arms: tuple[Arm, ...]
    policy: dict[str, Any]
    fallback: dict[str, Any] | None
    state: dict[str, Any]
    rollback_of: int | None
    rollback_target: dict[str, Any] | None  # {"revision": n, "model": "models:/…"}
    created_by: str
    reason: str | None
    created_at: int

    @property
    def uri(self) -> str:
        return f"deployments:/{self.deployment}/{self.number}"

    @property
    def weights(self) -> dict[str, float]:
        """Percent of traffic by arm name, now."""
        live = self.state.get("weights")
        if live is not None:
            return {k: float(v) for k, v in live.items()}
        return {a.name: a.weight for a in self.arms}

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise NotFoundError(f"{self.uri} has no arm {name!r}; its arms are "
                            f"{', '.join(a.name for a in self.arms)}.")

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "revision": self.number, "uri": self.uri,
                "strategy": str(self.strategy), "status": str(self.status),
                "arms": [a.to_dict() for a in self.arms], "weights": self.weights,
                "policy": self.policy, "fallback": self.fallback, "state": self.state,
                "rollback_of": self.rollback_of, "rollback_target": self.rollback_target,
                "created_by": self.created_by, "reason": self.reason,
                "created_at": self.created_at}


@dataclass(frozen=True)
class NewRevision:
    """What a strategy command asks to store as the next revision."""

    strategy: Strategy
    arms: tuple[Arm, ...]
    policy: dict[str, Any] = field(default_factory=dict)
    fallback: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    status: RevisionStatus = RevisionStatus.ACTIVE
    rollback_of: int | None = None
    rollback_target: dict[str, Any] | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Ending:
    """How the live revision a new one replaces ends: its status and its last event."""

    status: RevisionStatus = RevisionStatus.SUPERSEDED
    kind: str = "superseded"
    reason: str | None = None
    analysis: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeployEvent:
    id: str
    deployment: str
    revision: int
    kind: str  # created, step, weights, paused, resumed, promoted, aborted, switched, …
    initiated_by: str  # "user:<name>" or "system"
    reason: str | None
    analysis: dict[str, Any] | None
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "deployment": self.deployment, "revision": self.revision,
                "kind": self.kind, "initiated_by": self.initiated_by, "reason": self.reason,
                "analysis": self.analysis, "created_at": self.created_at}


class Deployments(Protocol):
    """What the rest of mloop may ask of the deployment tables."""

    def create(self, name: str) -> Deployment:
        """A new deployment without a revision; ConflictError when the name is taken."""
        ...

    def get(self, name: str) -> Deployment:
        """The deployment ``name``; NotFoundError (naming the ones that exist) if none."""
        ...

    def all(self) -> list[Deployment]:
        """Every deployment, by name."""
        ...

    def delete(self, name: str) -> None:
        """Forget ``name``: its revisions, events and lease (traffic rows stay)."""
        ...

    def add_revision(self, name: str, new: NewRevision, *, initiated_by: str,
                     expected_serial: int | None = None,
                     ending: Ending | None = None) -> Revision:
        """Store ``new`` as the next revision and make it current, in one transaction: the
        previous live revision ends as ``ending`` says (superseded by default, with an
        event) and a ``created`` event is recorded. With ``expected_serial``,
        ConflictError when the deployment changed since."""
        ...

    def revision(self, name: str, number: int | None = None) -> Revision:
        """Revision ``number`` (the current one without it); NotFoundError if none."""
        ...

    def revisions(self, name: str) -> list[Revision]:
        """Every revision of ``name``, oldest first."""
        ...

    def update(self, name: str, number: int, *, expected_serial: int, kind: str,
               initiated_by: str, state: dict[str, Any] | None = None,
               status: RevisionStatus | None = None, reason: str | None = None,
               analysis: dict[str, Any] | None = None) -> Revision:
        """Change revision ``number``'s state and/or status and record the event ``kind``,
        in one transaction, only if the deployment's serial is still
        ``expected_serial`` (ConflictError otherwise: someone else moved it first)."""
        ...

    def events(self, name: str, *, limit: int = 200) -> list[DeployEvent]:
        """The newest ``limit`` events of ``name``, oldest first."""
        ...

    def serials(self, names: list[str]) -> dict[str, int]:
        """The serial of each of ``names`` that exists (replicas poll this)."""
        ...

    def acquire_lease(self, name: str, holder: str, ttl_ms: int,
                      now: int | None = None) -> bool:
        """Take or renew the controller lease of ``name`` for ``ttl_ms``: True when
        ``holder`` holds it afterwards (it was free, lapsed, or already its own)."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only if ``holder`` holds it)."""
        ...

    def lease_holder(self, name: str, now: int | None = None) -> str | None:
        """Who holds an unexpired lease on ``name``, if anyone."""
        ...


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _deployment(r: Any) -> Deployment:
    return Deployment(r.name, r.current_revision, int(r.serial), int(r.created_at),
                      int(r.updated_at))


def _revision(r: Any) -> Revision:
    return Revision(r.deployment, int(r.revision), Strategy(r.strategy),
                    RevisionStatus(r.status),
                    tuple(Arm.from_dict(a) for a in json.loads(r.arms)),
                    json.loads(r.policy), _loads(r.fallback), json.loads(r.state),
                    r.rollback_of, _loads(r.rollback_target), r.created_by, r.reason,
                    int(r.created_at))


def _event(r: Any) -> DeployEvent:
    return DeployEvent(r.id, r.deployment, int(r.revision), r.kind, r.initiated_by, r.reason,
                       _loads(r.analysis), int(r.created_at))


class SqlDeployments:
    """:class:`Deployments` over the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def create(self, name: str) -> Deployment:
        from mloop.store.schema import deployments

        store, now = self.project.store, now_ms()
        with store.write() as conn:
            done = conn.execute(store.insert(deployments).values(
                name=name, current_revision=None, serial=0, created_at=now,
                updated_at=now).on_conflict_do_nothing().returning(deployments.c.name)).first()
        if done is None:
            raise ConflictError(f"A deployment named {name!r} exists already; see "
                                f"`mloop deploy status {name}`, or choose another name.")
        return self.get(name)

    def get(self, name: str) -> Deployment:
        from sqlalchemy import select

        from mloop.store.schema import deployments

        with self.project.store.read() as conn:
            row = conn.execute(select(deployments).where(deployments.c.name == name)).first()
        if row is None:
            known = [d.name for d in self.all()]
            raise NotFoundError(f"No deployment named {name!r}; "
                                + (f"there are {', '.join(known)}." if known else
                                   "create one with `mloop deploy create NAME MODEL`."))
        return _deployment(row)

    def all(self) -> list[Deployment]:
        from sqlalchemy import select

        from mloop.store.schema import deployments

        with self.project.store.read() as conn:
            rows = conn.execute(select(deployments).order_by(deployments.c.name)).all()
        return [_deployment(r) for r in rows]

    def delete(self, name: str) -> None:
        from sqlalchemy import delete

        from mloop.store.schema import (
            deployment_events,
            deployment_leases,
            deployment_revisions,
            deployments,
        )

        self.get(name)
        with self.project.store.write() as conn:
            conn.execute(delete(deployment_events).where(deployment_events.c.deployment == name))
            conn.execute(delete(deployment_revisions).where(
                deployment_revisions.c.deployment == name))
            conn.execute(delete(deployment_leases).where(deployment_leases.c.deployment == name))
            conn.execute(delete(deployments).where(deployments.c.name == name))

    def add_revision(self, name: str, new: NewRevision, *, initiated_by: str,
                     expected_serial: int | None = None,
                     ending: Ending | None = None) -> Revision:
        from sqlalchemy import func, select, update

        from mloop.store.schema import deployment_revisions as revs

        now = now_ms()
        with self.project.store.write() as conn:
            current = _bump(conn, name, expected_serial, now)
            number = int(conn.execute(select(func.coalesce(func.max(revs.c.revision), 0))
                                      .where(revs.c.deployment == name)).scalar_one()) + 1
            if current is not None:  # a live revision gives way; a finished one stays as is
                end = ending or Ending()
                ended = conn.execute(update(revs).where(
                    revs.c.deployment == name, revs.c.revision == current,
                    revs.c.status.in_([s.value for s in RevisionStatus if s.live]))
                    .values(status=end.status.value))
                if ended.rowcount:
                    _record(conn, name, current, end.kind, initiated_by=initiated_by,
                            reason=end.reason, analysis=end.analysis, now=now)
            conn.execute(revs.insert().values(
                deployment=name, revision=number, strategy=new.strategy.value,
                status=new.status.value, arms=json.dumps([a.to_dict() for a in new.arms]),
                policy=json.dumps(new.policy, sort_keys=True), fallback=_json(new.fallback),
                state=json.dumps(new.state, sort_keys=True), rollback_of=new.rollback_of,
                rollback_target=_json(new.rollback_target), created_by=initiated_by,
                reason=new.reason, created_at=now))
            _set_current(conn, name, number)
            _record(conn, name, number, "created", initiated_by=initiated_by,
                    reason=new.reason, analysis=None, now=now)
        return self.revision(name, number)

    def revision(self, name: str, number: int | None = None) -> Revision:
        from sqlalchemy import select

        from mloop.store.schema import deployment_revisions as revs

        if number is None:
            number = self.get(name).current_revision
            if number is None:
                raise NotFoundError(f"Deployment {name!r} has no revision yet; give it a "
                                    f"model with `mloop deploy create {name} MODEL`.")
        with self.project.store.read() as conn:
            row = conn.execute(select(revs).where(revs.c.deployment == name,
                                                  revs.c.revision == number)).first()
        if row is None:
            self.get(name)  # NotFoundError for the deployment itself first
            raise NotFoundError(f"Deployment {name!r} has no revision {number}; see "
                                f"`mloop deploy history {name}`.")
        return _revision(row)

    def revisions(self, name: str) -> list[Revision]:
        from sqlalchemy import select

        from mloop.store.schema import deployment_revisions as revs

        with self.project.store.read() as conn:
            rows = conn.execute(select(revs).where(revs.c.deployment == name)
                                .order_by(revs.c.revision)).all()
        return [_revision(r) for r in rows]

    def update(self, name: str, number: int, *, expected_serial: int, kind: str,
               initiated_by: str, state: dict[str, Any] | None = None,
               status: RevisionStatus | None = None, reason: str | None = None,
               analysis: dict[str, Any] | None = None) -> Revision:
        from sqlalchemy import update

        from mloop.store.schema import deployment_revisions as revs

        values: dict[str, Any] = {}
        if state is not None:
            values["state"] = json.dumps(state, sort_keys=True)
        if status is not None:
            values["status"] = status.value
        now = now_ms()
        with self.project.store.write() as conn:
            _bump(conn, name, expected_serial, now)
            if values:
                changed = conn.execute(update(revs).where(
                    revs.c.deployment == name, revs.c.revision == number).values(**values))
                if not changed.rowcount:
                    raise NotFoundError(f"Deployment {name!r} has no revision {number}.")
            _record(conn, name, number, kind, initiated_by=initiated_by, reason=reason,
                    analysis=analysis, now=now)
        return self.revision(name, number)

    def events(self, name: str, *, limit: int = 200) -> list[DeployEvent]:
        from sqlalchemy import select

        from mloop.core.limits import check_limit

        check_limit(limit)

        from mloop.store.schema import deployment_events as ev

        with self.project.store.read() as conn:
            rows = conn.execute(select(ev).where(ev.c.deployment == name).order_by(
                ev.c.created_at.desc(), ev.c.id.desc()).limit(limit)).all()
        return [_event(r) for r in reversed(rows)]

    def serials(self, names: list[str]) -> dict[str, int]:
        from sqlalchemy import select

        from mloop.store.schema import deployments

        with self.project.store.read() as conn:
            rows = conn.execute(select(deployments.c.name, deployments.c.serial).where(
                deployments.c.name.in_(names))).all()
        return {r.name: int(r.serial) for r in rows}

    def acquire_lease(self, name: str, holder: str, ttl_ms: int,
                      now: int | None = None) -> bool:
        from mloop.store.schema import deployment_leases as leases

        now = now_ms() if now is None else now
        store = self.project.store
        stmt = store.insert(leases).values(deployment=name, holder=holder,
                                           expires_at=now + ttl_ms, acquired_at=now)
        # take it when free; renew when ours; take over when it lapsed; else leave it
        stmt = stmt.on_conflict_do_update(
            index_elements=["deployment"],
            set_={"holder": holder, "expires_at": now + ttl_ms},
            where=(leases.c.holder == holder) | (leases.c.expires_at < now))
        with store.write() as conn:
            conn.execute(stmt)
        return self.lease_holder(name, now) == holder

    def release_lease(self, name: str, holder: str) -> None:
        from sqlalchemy import delete

        from mloop.store.schema import deployment_leases as leases

        with self.project.store.write() as conn:
            conn.execute(delete(leases).where(leases.c.deployment == name,
                                              leases.c.holder == holder))

    def lease_holder(self, name: str, now: int | None = None) -> str | None:
        from sqlalchemy import select

        from mloop.store.schema import deployment_leases as leases

        now = now_ms() if now is None else now
        with self.project.store.read() as conn:
            row = conn.execute(select(leases.c.holder, leases.c.expires_at).where(
                leases.c.deployment == name)).first()
        return row.holder if row is not None and row.expires_at >= now else None


def _bump(conn: Connection, name: str, expected: int | None, now: int) -> int | None:
    """Count a change of ``name`` (compare-and-set on ``expected``); its current revision."""
    from sqlalchemy import select, update

    from mloop.store.schema import deployments

    where = [deployments.c.name == name]
    if expected is not None:
        where.append(deployments.c.serial == expected)
    done = conn.execute(update(deployments).where(*where).values(
        serial=deployments.c.serial + 1, updated_at=now))
    if not done.rowcount:
        exists = conn.execute(select(deployments.c.serial).where(
            deployments.c.name == name)).first()
        if exists is None:
            raise NotFoundError(f"No deployment named {name!r}; create it with "
                                f"`mloop deploy create {name} MODEL`.")
        raise ConflictError(f"Deployment {name!r} changed while this change was being "
                            "made (another command or controller moved it first); read "
                            f"`mloop deploy status {name}` and try again.")
    current: int | None = conn.execute(select(deployments.c.current_revision).where(
        deployments.c.name == name)).scalar_one()
    return current


def _set_current(conn: Connection, name: str, number: int) -> None:
    from sqlalchemy import update

    from mloop.store.schema import deployments

    conn.execute(update(deployments).where(deployments.c.name == name)
                 .values(current_revision=number))


def _record(conn: Connection, name: str, number: int, kind: str, *, initiated_by: str,
            reason: str | None, analysis: dict[str, Any] | None, now: int) -> None:
    from mloop.store.schema import deployment_events

    conn.execute(deployment_events.insert().values(
        id=new_id(), deployment=name, revision=number, kind=kind,
        initiated_by=initiated_by, reason=reason, analysis=_json(analysis), created_at=now))
