"""Automation's memory: ``automation_decisions``, ``automation_events``, ``automation_state``.

* ``automation_decisions``: every decision, newest first in ``mloop automate history``:
  a run and its outcome (promoted, rejected, succeeded, failed), or why nothing ran
  (blocked by data validation, skipped for the cooldown).
* ``automation_events``: ``(pipeline, trigger, event)`` → the decision it caused. An event
  (a dataset version, an alert, a cron tick) fires once because its row is its claim; a
  round that crashed (an exception, an evaluation that could not run, a process that
  died) deletes its rows, so its events fire again at the next check.
* ``automation_state``: per pipeline, the *lease* (the decision and process running it)
  and the start of the last triggered run (the cooldown's anchor, shared by processes).

Starting a pipeline is one write transaction (:meth:`SqlAutomation.claim`): a
compare-and-set ``UPDATE`` takes the lease only if none is held (or it expired) and the
cooldown has passed, and the events are inserted with ``ON CONFLICT DO NOTHING`` (any
another process consumed meanwhile drop out; none left: roll back). Both databases make
this atomic: SQLite runs one writer at a time (``BEGIN IMMEDIATE``), PostgreSQL locks the
state row and re-checks the ``WHERE`` clause once the other writer commits (READ
COMMITTED). Two ``mloop automate check`` at once therefore start a pipeline once.

Statements use SQLAlchemy Core on ``project.store`` (automation is no hot path).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mloop.core.clock import format_ms, ms_to_datetime
from mloop.core.ids import new_id
from mloop.repositories.automation_states import ClaimStatus, DecisionOutcome
from mloop.store.failures import unique_or_conflict

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["LEASE_MS", "Automation", "Claim", "ClaimStatus", "Decision", "DecisionOutcome",
           "PipelineState", "SqlAutomation", "holder"]

# How long a lease holds without its process finishing. A process that died on this host
# is noticed at once (its pid is gone); one on another host only when the lease expires.
LEASE_MS = 24 * 3_600_000


def holder() -> str:
    """``host:pid`` of this process: who holds a lease."""
    import socket  # only when a lease is taken: not on `mloop --help`

    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Decision:
    """One decision of the automation: what fired, what ran, what came of it and why."""

    id: str
    pipeline: str
    trigger: str
    decision: DecisionOutcome
    reasons: list[str]
    fired_at: int
    finished_at: int | None = None
    pipeline_run_id: str | None = None
    model_uri: str | None = None  # the candidate: runs:/<run>/<path>
    registered: str | None = None  # the version it became: models:/<name>/<version>
    holder: str | None = None

    @property
    def pipeline_uri(self) -> str | None:
        if self.pipeline_run_id is None:
            return None
        return f"pipelines:/{self.pipeline}/{self.pipeline_run_id}"

    def to_dict(self) -> dict[str, Any]:
        def iso(ms: int | None) -> str | None:
            when = ms_to_datetime(ms)
            return when.isoformat(timespec="seconds") if when else None

        return {"id": self.id, "pipeline": self.pipeline, "trigger": self.trigger,
                "decision": str(self.decision), "reasons": list(self.reasons),
                "fired_at": iso(self.fired_at), "finished_at": iso(self.finished_at),
                "pipeline_run": self.pipeline_uri, "model_uri": self.model_uri,
                "registered": self.registered}


@dataclass(frozen=True)
class Claim:
    """What an attempt to start a pipeline got.

    ``status``: ``claimed`` (this process runs it; ``decision_id`` is its decision),
    ``busy`` (another decision holds the lease), ``cooldown`` (too soon after the last
    run; ``skipped`` is the skip recorded, or None when the same events were skipped
    before) or ``stale`` (every event was consumed by another process meanwhile).
    """

    status: ClaimStatus
    decision_id: str | None = None
    until: int | None = None  # cooldown: when the next run may start
    holder: str | None = None  # busy: who holds the lease
    events: list[tuple[str, str]] = field(default_factory=list)  # claimed: the events won
    skipped: Decision | None = None


@dataclass(frozen=True)
class PipelineState:
    """A pipeline's lease and cooldown anchor."""

    lease: str | None
    lease_holder: str | None
    lease_until: int | None
    last_run_at: int | None


class Automation(Protocol):
    """What the rest of mloop may ask of automation's tables."""

    def consumed(self, pipeline: str, trigger: str) -> set[str]:
        """The events of one trigger that already fired."""
        ...

    def get_state(self, pipeline: str) -> PipelineState | None:
        """The lease and cooldown anchor of ``pipeline`` (None before its first claim)."""
        ...

    def claim(self, pipeline: str, fired: list[tuple[str, str]], trigger: str, *,
              cooldown_ms: int, now: int) -> Claim:
        """Take the lease for the events ``fired`` ((trigger key, event) pairs), or say
        why not; a claimed decision is recorded as ``running`` (see the module docs)."""
        ...

    def started(self, pipeline: str, now: int) -> None:
        """The claimed pipeline starts now: the cooldown runs from here."""
        ...

    def finish(self, decision_id: str, outcome: DecisionOutcome, reasons: list[str], *,
               pipeline_run_id: str | None = None, model_uri: str | None = None,
               registered: str | None = None, retry: bool = False, now: int) -> Decision:
        """Record how a claimed decision ended and release the lease (``retry``: its
        events fire again); :class:`~mloop.errors.NotFoundError` for no such decision."""
        ...

    def record(self, decision: Decision) -> None:
        """Record a decision taken outside a claim (a promotion asked for by hand)."""
        ...

    def history(self, *, pipeline: str | None = None,
                decision: DecisionOutcome | None = None, limit: int = 50) -> list[Decision]:
        """Decisions, newest first (optionally of one pipeline, or one kind)."""
        ...

    def recorded_report(self, model_uri: str, data: str) -> str | None:
        """The report digest of ``model_uri``'s newest recorded evaluation on ``data``
        (the promotion gate's read of the evaluations)."""
        ...


class _Stale(Exception):
    """Every event was consumed by another process: roll the claim back."""


def _decision(row: Any) -> Decision:
    m = row._mapping
    return Decision(m["id"], m["pipeline"], m["trigger"], DecisionOutcome(m["decision"]),
                    json.loads(m["reasons"]), int(m["fired_at"]),
                    None if m["finished_at"] is None else int(m["finished_at"]),
                    m["pipeline_run_id"], m["model_uri"], m["registered"], m["holder"])


def _insert(conn: Any, d: Decision) -> None:
    from mloop.store.schema import automation_decisions as decisions

    conn.execute(decisions.insert().values(
        id=d.id, pipeline=d.pipeline, trigger=d.trigger, decision=str(d.decision),
        reasons=json.dumps(d.reasons), fired_at=d.fired_at, finished_at=d.finished_at,
        pipeline_run_id=d.pipeline_run_id, model_uri=d.model_uri, registered=d.registered,
        holder=d.holder))


def _alive(who: str) -> bool:
    host, _, pid = who.rpartition(":")
    import socket

    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only the lease's expiry can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class SqlAutomation:
    """Automation's tables of one project, over SQLAlchemy Core on ``project.store``."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def __repr__(self) -> str:
        return f"SqlAutomation({self.project.root})"

    def consumed(self, pipeline: str, trigger: str) -> set[str]:
        from sqlalchemy import select

        from mloop.store.schema import automation_events as events

        with self.project.store.read() as conn:
            rows = conn.execute(select(events.c.event).where(
                events.c.pipeline == pipeline, events.c.trigger == trigger)).all()
        return {str(r[0]) for r in rows}

    def get_state(self, pipeline: str) -> PipelineState | None:
        from sqlalchemy import select

        from mloop.store.schema import automation_state as state

        with self.project.store.read() as conn:
            row = conn.execute(select(state).where(state.c.pipeline == pipeline)).first()
        if row is None:
            return None
        return PipelineState(row.lease, row.lease_holder, row.lease_until, row.last_run_at)

    def claim(self, pipeline: str, fired: list[tuple[str, str]], trigger: str, *,
              cooldown_ms: int, now: int) -> Claim:
        try:
            return self._claim(pipeline, list(dict.fromkeys(fired)), trigger,
                               cooldown_ms=cooldown_ms, t=now)
        except _Stale:
            return Claim(ClaimStatus.STALE)

    def _claim(self, pipeline: str, fired: list[tuple[str, str]], trigger: str, *,
               cooldown_ms: int, t: int) -> Claim:
        from sqlalchemy import and_, or_, select, update

        from mloop.store.schema import automation_events as events
        from mloop.store.schema import automation_state as state

        store = self.project.store
        decision_id = new_id()
        me = holder()
        free: Any = state.c.lease.is_(None)
        if cooldown_ms > 0:
            free = and_(free, or_(state.c.last_run_at.is_(None),
                                  state.c.last_run_at <= t - cooldown_ms))
        with store.write() as conn:
            conn.execute(store.insert(state).values(pipeline=pipeline).on_conflict_do_nothing())
            take = (update(state).where(state.c.pipeline == pipeline, free)
                    .values(lease=decision_id, lease_holder=me, lease_until=t + LEASE_MS))
            won = conn.execute(take).rowcount == 1
            if not won and _take_over(conn, pipeline, t):
                won = conn.execute(take).rowcount == 1
            if not won:
                row = conn.execute(select(state).where(state.c.pipeline == pipeline)).one()
                if row.lease is not None:
                    return Claim(ClaimStatus.BUSY, row.lease, holder=row.lease_holder)
                until = int(row.last_run_at) + cooldown_ms
                return Claim(ClaimStatus.COOLDOWN, until=until, skipped=_record_skip(
                    conn, pipeline, trigger, row.last_run_at, until=until, t=t))
            # RETURNING tells what was inserted (psycopg reports no rowcount for ON CONFLICT)
            new = [(k, e) for k, e in fired if conn.execute(
                store.insert(events).values(pipeline=pipeline, trigger=k, event=e,
                                            decision_id=decision_id, created_at=t)
                .on_conflict_do_nothing().returning(events.c.event)).first() is not None]
            if not new:
                raise _Stale  # rolls the lease back too
            _insert(conn, Decision(decision_id, pipeline, trigger, DecisionOutcome.RUNNING, [],
                                   t, holder=me))
        return Claim(ClaimStatus.CLAIMED, decision_id, events=new)

    def started(self, pipeline: str, now: int) -> None:
        from sqlalchemy import update

        from mloop.store.schema import automation_state as state

        with self.project.store.write() as conn:
            conn.execute(update(state).where(state.c.pipeline == pipeline).values(
                last_run_at=now, last_skip=None))

    def finish(self, decision_id: str, outcome: DecisionOutcome, reasons: list[str], *,
               pipeline_run_id: str | None = None, model_uri: str | None = None,
               registered: str | None = None, retry: bool = False, now: int) -> Decision:
        from sqlalchemy import delete, select, update

        from mloop.errors import NotFoundError
        from mloop.store.schema import automation_decisions as decisions
        from mloop.store.schema import automation_events as events
        from mloop.store.schema import automation_state as state

        with self.project.store.write() as conn:
            if retry:
                conn.execute(delete(events).where(events.c.decision_id == decision_id))
            conn.execute(update(decisions).where(decisions.c.id == decision_id).values(
                decision=str(DecisionOutcome(outcome)), reasons=json.dumps(reasons),
                finished_at=now, pipeline_run_id=pipeline_run_id, model_uri=model_uri,
                registered=registered))
            conn.execute(update(state).where(state.c.lease == decision_id).values(
                lease=None, lease_holder=None, lease_until=None))
            row = conn.execute(select(decisions).where(decisions.c.id == decision_id)).first()
        if row is None:
            raise NotFoundError(f"No automation decision {decision_id!r}; see "
                                "`mloop automate history`.")
        return _decision(row)

    def record(self, decision: Decision) -> None:
        with unique_or_conflict(f"An automation decision with the id {decision.id!r} "
                                "exists already."), self.project.store.write() as conn:
            _insert(conn, decision)

    def history(self, *, pipeline: str | None = None,
                decision: DecisionOutcome | None = None, limit: int = 50) -> list[Decision]:
        from sqlalchemy import select

        from mloop.core.limits import check_limit
        from mloop.store.schema import automation_decisions as decisions

        check_limit(limit)
        query = select(decisions)
        if pipeline is not None:
            query = query.where(decisions.c.pipeline == pipeline)
        if decision is not None:
            query = query.where(decisions.c.decision == str(decision))
        with self.project.store.read() as conn:
            rows = conn.execute(query.order_by(decisions.c.fired_at.desc(),
                                               decisions.c.id.desc()).limit(limit)).all()
        return [_decision(r) for r in rows]

    def recorded_report(self, model_uri: str, data: str) -> str | None:
        from sqlalchemy import select

        from mloop.store.schema import evaluations

        with self.project.store.read() as conn:
            digest = conn.execute(select(evaluations.c.report).where(
                evaluations.c.model_uri == model_uri, evaluations.c.data == data)
                .order_by(evaluations.c.created_at.desc()).limit(1)).scalar()
        return None if digest is None else str(digest)


def _take_over(conn: Any, pipeline: str, t: int) -> bool:
    """Free a lease that expired or whose process died on this host; its decision
    becomes ``failed``."""
    from sqlalchemy import delete, select, update

    from mloop.store.schema import automation_decisions as decisions
    from mloop.store.schema import automation_events as events
    from mloop.store.schema import automation_state as state

    row = conn.execute(select(state).where(state.c.pipeline == pipeline)).one()
    if row.lease is None or (row.lease_until >= t and _alive(row.lease_holder or "")):
        return False
    # the dead round decided nothing about its events: they fire again (next check)
    conn.execute(delete(events).where(events.c.decision_id == row.lease))
    freed = conn.execute(update(state).where(state.c.pipeline == pipeline,
                                             state.c.lease == row.lease)
                         .values(lease=None, lease_holder=None, lease_until=None))
    conn.execute(update(decisions).where(
        decisions.c.id == row.lease,
        decisions.c.decision == str(DecisionOutcome.RUNNING)).values(
        decision=str(DecisionOutcome.FAILED), finished_at=t, reasons=json.dumps([
            f"the process running it ({row.lease_holder}) ended before it finished, or "
            f"its lease of {LEASE_MS // 3_600_000} h expired; its events fire again"])))
    return bool(freed.rowcount == 1)


def _record_skip(conn: Any, pipeline: str, trigger: str, last_run_at: int, *, until: int,
                 t: int) -> Decision | None:
    """Record one ``skipped_cooldown`` per set of waiting events, not one per check."""
    from sqlalchemy import or_, update

    from mloop.store.schema import automation_state as state

    changed = conn.execute(update(state).where(
        state.c.pipeline == pipeline,
        or_(state.c.last_skip.is_(None), state.c.last_skip != trigger)).values(
        last_skip=trigger)).rowcount == 1
    if not changed:
        return None
    skip = Decision(new_id(), pipeline, trigger, DecisionOutcome.SKIPPED_COOLDOWN, [
        f"cooldown: the last triggered run started at {format_ms(last_run_at)} UTC; the "
        f"next may start at {format_ms(until)} UTC (the events wait until then)"], t, t)
    _insert(conn, skip)
    return skip
