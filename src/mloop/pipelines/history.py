"""A pipeline run's records as it goes (:class:`RunRecords`), and reading runs back —
listings for ``mloop pipeline status``, one run for ``show`` — through the pipeline runs
repository (:mod:`mloop.repositories.pipelines`, which owns the tables).

A run whose engine process died (SIGKILL, a crash of the machine) is marked ``killed``
on read, as tracking runs are (see :func:`mloop.tracking.records.reap_runs`: reads
repair the stored status, with a compare-and-set, so every reader agrees).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.redact import get_logger
from mloop.repositories.pipelines import PipelineStatus, StepRecord, StepStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mloop.pipelines.engine import PipelineRun, StepResult
    from mloop.pipelines.values import ValueRef
    from mloop.project import Project
    from mloop.repositories.pipelines import PipelineRunRecord, PipelineRuns

log = get_logger(__name__)


def list_runs(project: Project, pipeline: str | None = None, *,
              limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first, with a count of steps by status."""
    reap_runs(project)
    return [_shape(r, r.step_counts) for r in _runs(project).recent(pipeline, limit=limit)]


def get_run(project: Project, run_id: str) -> dict[str, Any]:
    """One run (a full id, or a unique suffix of 6+ characters) with its steps."""
    reap_runs(project)
    run = _runs(project).get(run_id)
    return _shape(run, [s.to_dict() for s in run.steps])


def _shape(run: PipelineRunRecord, steps: Any) -> dict[str, Any]:
    """The run as the CLI's ``--json`` shows it: its columns, ``steps``, then ``uri``."""
    out = run.to_dict()
    out["steps"] = steps
    out["uri"] = out.pop("uri")
    return out


def reap_runs(project: Project) -> list[str]:
    """Mark ``running`` pipeline runs whose engine died as ``killed``; returns their ids."""
    from mloop.core.owner import is_dead

    repo = _runs(project)
    now = now_ms()
    dead = [r for r in repo.running()
            if r.owner is not None and is_dead(r.owner, r.heartbeat_at, now)]
    try:
        for r in dead:
            assert r.owner is not None
            repo.mark_killed(r, finished_at=max(r.heartbeat_at or r.started_at, r.started_at),
                             error=f"the engine process ({r.owner.describe()}) died before "
                                   "the run ended (killed, or its machine stopped)")
    except Exception as exc:  # e.g. a read-only store: shown as stored
        log.debug("mloop: cannot mark dead pipeline runs: %s", exc)
        return []
    return [r.id for r in dead]


def _runs(project: Project) -> PipelineRuns:
    from mloop.repositories import backend

    return backend(project).pipeline_runs


class RunRecords:
    """The rows of one pipeline run as it goes (through plain SQL: the no-op path stays
    light): the run, each step, the step cache, the heartbeat."""

    def __init__(self, project: Project, run: PipelineRun, executor: str,
                 params: Mapping[str, Any], inputs: Mapping[str, ValueRef]) -> None:
        from mloop.core.owner import this_process

        self.repo = _runs(project)
        self.run = run
        self.owner = this_process()
        self.repo.start(run.id, run.pipeline, executor=executor, params=params,
                        inputs={k: v.to_dict() for k, v in inputs.items()},
                        trigger=run.trigger, started_at=run.started_at, owner=self.owner)

    def beat(self, now: int) -> None:
        """The engine still drives this run (a run marked killed by a reader that missed
        our beats runs again: we are alive)."""
        self.repo.beat(self.run.id, self.owner, now)

    def cached(self, key: str) -> tuple[dict[str, ValueRef], str | None] | None:
        """The outputs stored for ``key`` and the tracking run that made them."""
        entry = self.repo.cached(key)
        if entry is None:
            return None
        from mloop.pipelines.values import ValueRef

        return {k: ValueRef.from_dict(v) for k, v in entry.outputs.items()}, entry.run_id

    def step(self, r: StepResult, *, cache: bool = False) -> None:
        self.repo.save_step(StepRecord(
            self.run.id, r.name, StepStatus(r.status), r.key, r.attempts, r.run_id,
            r.seconds, r.error, r.log, {k: v.to_dict() for k, v in r.outputs.items()}),
            pipeline=self.run.pipeline if cache else None)

    def finish(self) -> None:
        self.repo.finish(self.run.id, PipelineStatus(self.run.status),
                         tracking_run=self.run.run_id, error=self.run.error,
                         finished_at=self.run.finished_at)
