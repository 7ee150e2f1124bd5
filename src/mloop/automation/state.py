"""Automation's memory in the metadata store: decisions, consumed events, leases.

The tables and how a claim is made atomic are described in
:mod:`mloop.repositories.automation`, which owns them; these functions are what the
runner and the public API call (with the time, in Unix ms, pinned by tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.repositories.automation import (
    LEASE_MS,
    Claim,
    ClaimStatus,
    Decision,
    DecisionOutcome,
    PipelineState,
    holder,
)

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.automation import Automation

__all__ = ["LEASE_MS", "Claim", "ClaimStatus", "Decision",
           "DecisionOutcome", "PipelineState", "claim", "consumed", "cooldown_until",
           "finish", "get_state", "history", "holder", "record", "started"]

def _repo(project: Project) -> Automation:
    from mloop.repositories import backend

    return backend(project).automation


def consumed(project: Project, pipeline: str, trigger: str) -> set[str]:
    """The events of one trigger that already fired."""
    return _repo(project).consumed(pipeline, trigger)


def get_state(project: Project, pipeline: str) -> PipelineState | None:
    """The lease and cooldown anchor of ``pipeline`` (None before its first decision)."""
    return _repo(project).get_state(pipeline)


def cooldown_until(st: PipelineState | None, cooldown_ms: int) -> int | None:
    """When the cooldown after the last triggered run ends (None: no cooldown holds)."""
    if st is None or st.last_run_at is None or cooldown_ms <= 0:
        return None
    return int(st.last_run_at) + cooldown_ms


def claim(project: Project, pipeline: str, fired: Iterable[tuple[str, str]], trigger: str,
          *, cooldown_ms: int, now: int | None = None) -> Claim:
    """Take ``pipeline``'s lease for the events ``fired`` ((trigger key, event) pairs), or
    say why not; a claimed decision is recorded as ``running``."""
    return _repo(project).claim(pipeline, list(fired), trigger, cooldown_ms=cooldown_ms,
                                now=_now(now))


def started(project: Project, pipeline: str, *, now: int | None = None) -> None:
    """The claimed pipeline passed its gate and starts now: the cooldown runs from here."""
    _repo(project).started(pipeline, _now(now))


def finish(project: Project, decision_id: str, outcome: str, reasons: list[str], *,
           pipeline_run_id: str | None = None, model_uri: str | None = None,
           registered: str | None = None, retry: bool = False,
           now: int | None = None) -> Decision:
    """Record how a claimed decision ended and release its pipeline's lease. ``retry``
    gives its events back (a round that crashed decided nothing about them): they are
    pending again, and the next check fires them."""
    return _repo(project).finish(decision_id, DecisionOutcome(outcome), reasons,
                                 pipeline_run_id=pipeline_run_id, model_uri=model_uri,
                                 registered=registered, retry=retry, now=_now(now))


def record(project: Project, pipeline: str, trigger: str, outcome: str, reasons: list[str],
           *, pipeline_run_id: str | None = None, model_uri: str | None = None,
           registered: str | None = None, now: int | None = None) -> Decision:
    """Record a decision taken outside a claim (a promotion asked for by hand)."""
    t = _now(now)
    decision = Decision(new_id(), pipeline, trigger, DecisionOutcome(outcome), list(reasons),
                        t, t, pipeline_run_id, model_uri, registered, holder())
    _repo(project).record(decision)
    return decision


def history(project: Project, *, pipeline: str | None = None, decision: str | None = None,
            limit: int = 50) -> list[Decision]:
    """Decisions, newest first (optionally of one pipeline, or one kind)."""
    if decision is not None and decision not in set(DecisionOutcome):
        return []  # no decision is of an unknown kind
    return _repo(project).history(
        pipeline=pipeline, decision=None if decision is None else DecisionOutcome(decision),
        limit=limit)


def _now(now: int | None) -> int:
    return now_ms() if now is None else now
