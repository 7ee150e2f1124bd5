"""One round of automation: see what fired, claim, validate, run, promote, record.

For each pipeline of ``.mloop/automation.yaml`` with events pending (see
:mod:`.triggers`):

1. claim it (:func:`.state.claim`): one process wins, the events are consumed, a
   ``running`` decision is recorded; a cooldown or another process's run says no;
2. validate the data the run will read; a failure is a ``blocked`` decision (no run);
3. run the pipeline with the events written into its ``trigger``; lineage gets
   ``data:/… or alerts:/… --triggered--> pipelines:/<name>/<id>``;
4. promote its newest model by the policy (:mod:`.promotion`: registered only when the
   gate promotes it), or ``succeeded`` without one;
5. record the outcome and the reasons, and release the pipeline. A round that crashed
   (an exception, or an evaluation that could not run) gives its events back: they stay
   pending and the next check tries again.

``mloop automate check`` is one round; ``mloop automate run`` calls it on a schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mloop.automation import state
from mloop.automation.config import AutomationConfig, PipelineAutomation, load_config
from mloop.automation.triggers import Event, pending
from mloop.core.clock import format_ms, now_ms
from mloop.core.redact import get_logger, redact
from mloop.errors import MloopError
from mloop.repositories.automation import ClaimStatus, DecisionOutcome
from mloop.repositories.pipelines import PipelineStatus, count_steps, describe_counts

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.automation")
RETRY = "the events stay pending: the next check tries again"


class RoundStatus(StrEnum):
    """What a round did about a pipeline when it recorded no decision (see :class:`Outcome`)."""

    IDLE = "idle"
    WOULD_RUN = "would_run"
    WOULD_WAIT = "would_wait"
    BUSY = "busy"
    ERROR = "error"


@dataclass
class Outcome:
    """What one round did about one pipeline.

    ``status``: ``idle`` (nothing fired), ``would_run`` / ``would_wait`` (dry run),
    ``busy`` (another process is running it), ``error`` (it could not be started, e.g. an
    unknown pipeline, or its triggers could not be read; nothing recorded, the events
    stay pending), or the recorded decision: ``promoted``, ``rejected``, ``succeeded``,
    ``failed``, ``blocked``, ``skipped_cooldown``.

    ``error`` says what went wrong in the automation itself rather than what it decided:
    set with status ``error``, and with ``failed`` when an exception stopped the
    automation after the claim (the decision is recorded). ``error_code`` is that error's
    exit code (3 for a pipeline that cannot be found, 70 for an unexpected exception …),
    which ``mloop automate check`` exits with. A pipeline run that failed is a decision,
    not an error.
    """

    pipeline: str
    status: RoundStatus | DecisionOutcome
    events: list[Event] = field(default_factory=list)
    decision: state.Decision | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    error_code: int | None = None

    @property
    def trigger(self) -> str:
        return "; ".join(e.label for e in self.events)

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "status": str(self.status),
                "events": [e.to_dict() for e in self.events],
                "decision": self.decision.to_dict() if self.decision else None,
                "notes": list(self.notes), "error": self.error}


def check(project: Project, config: AutomationConfig | None = None, *,
          dry_run: bool = False, pipelines: list[str] | None = None,
          kinds: set[str] | None = None, now: int | None = None) -> list[Outcome]:
    """One round over every automated pipeline (or ``pipelines``), triggers of ``kinds``
    only when given; ``now`` in Unix ms (tests pin it)."""
    config = config if config is not None else load_config(project.root)
    t = now_ms() if now is None else now
    names = list(config.pipelines) if pipelines is None else pipelines
    unknown = [n for n in names if n not in config.pipelines]
    if unknown:
        from mloop.errors import NotFoundError

        raise NotFoundError(f"No automation for {', '.join(unknown)} in .mloop/automation.yaml"
                            f"; it has: {', '.join(config.pipelines) or 'none'}.")
    return [check_pipeline(project, config.pipelines[n], dry_run=dry_run, kinds=kinds, now=t)
            for n in names]


def check_pipeline(project: Project, auto: PipelineAutomation, *, dry_run: bool = False,
                   kinds: set[str] | None = None, now: int | None = None) -> Outcome:
    """One round for one pipeline; see the module docs."""
    t = now_ms() if now is None else now
    out = Outcome(auto.name, RoundStatus.IDLE)
    try:  # nothing is claimed yet: an exception leaves the events pending
        out.events, out.notes = pending(project, auto, now=t, kinds=kinds)
        if not out.events:
            return out
        pipeline = _find(project, auto.name)
        _check(project, auto, pipeline)  # a param the steps refuse: no claim, no run
        if dry_run:
            return _dry_run(project, auto, out, t)
        claim = state.claim(project, auto.name, [(e.trigger, e.event) for e in out.events],
                            out.trigger, cooldown_ms=auto.cooldown_ms, now=t)
    except Exception as exc:
        if not isinstance(exc, MloopError):
            log.exception("automation of %s failed before it started", auto.name)
        out.status, out.error = RoundStatus.ERROR, _message(exc)
        out.error_code = _exit_code(exc)
        out.notes.append(out.error)
        return out
    if claim.status != ClaimStatus.CLAIMED:
        return _not_claimed(out, claim)
    assert claim.decision_id is not None
    won = set(claim.events)
    out.events = [e for e in out.events if (e.trigger, e.event) in won]
    try:
        out.decision = _act(project, auto, pipeline, out, decision_id=claim.decision_id, t=t)
    except BaseException as exc:  # never leave the lease held by a live process
        out.error, out.error_code = f"automation stopped: {_message(exc)}", _exit_code(exc)
        out.decision = state.finish(project, claim.decision_id, DecisionOutcome.FAILED,
                                    [out.error, RETRY], retry=True)
        if not isinstance(exc, Exception):
            raise
        if not isinstance(exc, MloopError):  # a bug: its traceback; else the message says it
            log.exception("automation of %s failed", auto.name)
    out.status = out.decision.decision
    return out


def _exit_code(exc: BaseException) -> int:
    """The exit code the CLI would end with for ``exc`` (70: not raised on purpose)."""
    return exc.exit_code if isinstance(exc, MloopError) else MloopError.exit_code


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, MloopError) else redact(f"{type(exc).__name__}: {exc}")


def _not_claimed(out: Outcome, claim: state.Claim) -> Outcome:
    if claim.status == ClaimStatus.BUSY:
        out.status = RoundStatus.BUSY
        out.notes.append(f"already running (decision {claim.decision_id} by {claim.holder}); "
                         "the events wait for the next round")
    elif claim.status == ClaimStatus.COOLDOWN:
        out.status = DecisionOutcome.SKIPPED_COOLDOWN
        out.notes.append(f"cooldown until {format_ms(claim.until)} UTC; the events wait")
        out.decision = claim.skipped
    else:  # stale: another process handled every event between our look and our claim
        out.status, out.events = RoundStatus.IDLE, []
    return out


def _dry_run(project: Project, auto: PipelineAutomation, out: Outcome, t: int) -> Outcome:
    current = state.get_state(project, auto.name)
    until = state.cooldown_until(current, auto.cooldown_ms)
    if current is not None and current.lease is not None:
        out.status = RoundStatus.BUSY
        out.notes.append(f"already running (by {current.lease_holder})")
    elif until is not None and until > t:
        out.status = RoundStatus.WOULD_WAIT
        out.notes.append(f"cooldown until {format_ms(until)} UTC")
    else:
        out.status = RoundStatus.WOULD_RUN
        if auto.validate is not None:
            out.notes.append(f"validates {auto.validate.dataset} against "
                             f"{auto.validate.schema} first")
        if auto.promotion is not None:
            p = auto.promotion
            out.notes.append(f"then evaluates the new model on {p.data}, compares it with "
                             f"{p.model}@{p.compare_alias} and registers it as {p.model} "
                             "only when promoted")
    return out


def _act(project: Project, auto: PipelineAutomation, pipeline: Any, out: Outcome, *,
         decision_id: str, t: int) -> state.Decision:
    """Validate, run, promote; the claimed decision's outcome."""
    if auto.validate is not None:
        problem = _validation_problem(project, auto, out.events)
        if problem is not None:
            return state.finish(project, decision_id, DecisionOutcome.BLOCKED, [problem])
    state.started(project, auto.name, now=t)
    run = _run(project, auto, pipeline, out.trigger)
    for event in out.events:
        if event.source is not None:
            from mloop import lineage

            lineage.add_edge(project, event.source, run.uri, "triggered")
    if run.status != PipelineStatus.SUCCEEDED:
        return state.finish(project, decision_id, DecisionOutcome.FAILED, [
            f"{run.uri} failed: {run.error or 'see mloop pipeline show ' + run.id}"],
            pipeline_run_id=run.id)
    counts = count_steps(s.status for s in run.steps.values())
    reasons = [f"{run.uri} succeeded ({describe_counts(counts) or 'no steps'})"]
    if auto.promotion is None:
        return state.finish(project, decision_id, DecisionOutcome.SUCCEEDED,
                            [*reasons, "no promotion policy: nothing registered"],
                            pipeline_run_id=run.id,
                            model_uri=run.models[-1] if run.models else None)
    if not run.models:
        return state.finish(project, decision_id, DecisionOutcome.FAILED, [
            *reasons, "it logged no model to promote: return an mloop.Model from a step"],
            pipeline_run_id=run.id)
    known = _registered_as(project, auto.promotion.model, run.models[-1])
    if known is not None:  # every step that makes the model came from the cache
        return state.finish(project, decision_id, DecisionOutcome.SUCCEEDED, [
            f"no new model: {run.models[-1]} is already {known}", *reasons],
            pipeline_run_id=run.id, model_uri=run.models[-1], registered=known)
    from mloop.automation.promotion import promote

    result = promote(project, run.models[-1], auto.promotion, source=run.uri)
    crashed = result.decision == DecisionOutcome.FAILED  # the gate could not decide: try again
    return state.finish(project, decision_id, result.decision,
                        [*result.reasons[:1], *reasons, *result.reasons[1:],
                         *([RETRY] if crashed else [])],
                        pipeline_run_id=run.id, model_uri=result.model_uri,
                        registered=result.registered, retry=crashed)


def _validation_problem(project: Project, auto: PipelineAutomation,
                        events: list[Event]) -> str | None:
    """Why the data gate fails (None: it passes)."""
    from mloop.data.quality import validate

    rule = auto.validate
    assert rule is not None
    ref = rule.dataset
    if "@" not in ref:  # the version a dataset trigger saw, else the newest
        ref = next((f"{ref}@{e.event}" for e in events if e.trigger == f"dataset {ref}"), ref)
    try:
        result = validate(project, ref, rule.schema)
    except MloopError as exc:
        return f"data validation of {ref} could not run: {exc.message}"
    if result.passed:
        return None
    failed = [c for c in result.checks if not c.passed]
    shown = "; ".join(f"{c.column} {c.check}: measured {c.measured!r}, expected {c.expected!r}"
                      for c in failed[:5]) + (" …" if len(failed) > 5 else "")
    return (f"data validation of data:/{result.ref} against {rule.schema} failed "
            f"({len(failed)} of {len(result.checks)} checks): {shown}")


def _registered_as(project: Project, model: str, source: str) -> str | None:
    """The version of ``model`` registered from ``source`` (a runs:/ URI), if any."""
    from mloop.registry.models import list_versions

    try:
        versions = list_versions(project, model)
    except MloopError:  # not registered yet
        return None
    return next((v.uri for v in versions if v.source == source), None)


# The pipeline engine, imported only when something runs (and replaced in unit tests).


def _find(project: Project, name: str) -> Any:
    from mloop.pipelines.registry import find_pipeline

    return find_pipeline(project, name)


def _check(project: Project, auto: PipelineAutomation, pipeline: Any) -> None:
    from mloop.automation.config import check_params

    check_params(auto, pipeline, source=project.root / ".mloop" / "automation.yaml")


def _run(project: Project, auto: PipelineAutomation, pipeline: Any, trigger: str) -> Any:
    from mloop.pipelines.engine import run_pipeline

    return run_pipeline(project, pipeline, inputs=auto.inputs or None,
                        params=auto.params or None, executor=auto.executor,
                        scheduler=auto.scheduler, quiet=True, trigger=trigger)
