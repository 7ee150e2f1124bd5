"""Pipeline runs, their steps and the step cache: ``pipeline_runs``, ``pipeline_steps``,
``pipeline_cache``.

Every statement is plain SQL text through :func:`mloop.store.lite.lite`: a pipeline run,
even a fully cached one, must not pay for SQLAlchemy. The no-op ``mloop pipeline run``
goes further: :func:`~mloop.repositories.pipeline_states.record_cached_run` writes it
over the stdlib ``sqlite3`` driver before the rest of mloop is imported (that module,
with the statuses, imports nothing else; they are re-exported here).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mloop.errors import NotFoundError
from mloop.repositories.pipeline_states import (
    PipelineStatus,
    StepStatus,
    record_cached_run,
)
from mloop.store.failures import unique_or_conflict

if TYPE_CHECKING:
    from mloop.core.owner import Owner
    from mloop.project import Project
    from mloop.store.lite import Query

__all__ = ["CacheEntry", "PipelineRunRecord", "PipelineRuns", "PipelineStatus", "RunOwner",
           "SqlPipelineRuns", "StepRecord", "StepStatus", "count_steps", "describe_counts",
           "record_cached_run"]


def count_steps(statuses: Iterable[str]) -> dict[str, int]:
    """How many steps have each status (``{"cached": 3, "ran": 1}``)."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def describe_counts(counts: Mapping[str, int]) -> str:
    """``"3 cached, 1 ran"`` (statuses in alphabetical order; ``""`` for none)."""
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


@dataclass(frozen=True)
class StepRecord:
    """One step of one pipeline run as stored (``outputs``: value refs as dicts)."""

    pipeline_run_id: str
    step: str
    status: StepStatus
    cache_key: str | None = None
    attempts: int = 0
    run_id: str | None = None
    seconds: float | None = None
    error: str | None = None
    log: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    started_at: int | None = None
    finished_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row's columns (``mloop pipeline show --json``)."""
        return {"pipeline_run_id": self.pipeline_run_id, "step": self.step,
                "status": str(self.status), "cache_key": self.cache_key,
                "attempts": self.attempts, "run_id": self.run_id, "seconds": self.seconds,
                "error": self.error, "log": self.log, "outputs": dict(self.outputs),
                "started_at": self.started_at, "finished_at": self.finished_at}


@dataclass(frozen=True)
class PipelineRunRecord:
    """One pipeline run as stored; ``step_counts`` in listings, ``steps`` in :meth:`get`."""

    id: str
    pipeline: str
    status: PipelineStatus
    executor: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    trigger: str | None
    run_id: str | None  # the tracking run parenting the steps' runs
    error: str | None
    started_at: int
    finished_at: int | None
    step_counts: dict[str, int] = field(default_factory=dict)
    steps: tuple[StepRecord, ...] = ()

    @property
    def uri(self) -> str:
        return f"pipelines:/{self.pipeline}/{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """The run's columns and its URI (``steps`` left to the caller's shape)."""
        return {"id": self.id, "pipeline": self.pipeline, "status": str(self.status),
                "executor": self.executor, "params": dict(self.params),
                "inputs": dict(self.inputs), "trigger": self.trigger, "run_id": self.run_id,
                "error": self.error, "started_at": self.started_at,
                "finished_at": self.finished_at, "uri": self.uri}


@dataclass(frozen=True)
class CacheEntry:
    """What a step produced for a cache key: its outputs (refs as dicts), its run."""

    key: str
    outputs: dict[str, Any]
    run_id: str | None


@dataclass(frozen=True)
class RunOwner:
    """A running pipeline run's engine process, as the reaper needs it."""

    id: str
    owner: Owner | None
    heartbeat_at: int | None
    started_at: int


class PipelineRuns(Protocol):
    """What the rest of mloop may ask of the pipeline tables."""

    def start(self, run_id: str, pipeline: str, *, executor: str, params: Mapping[str, Any],
              inputs: Mapping[str, Any], trigger: str | None, started_at: int,
              owner: Owner) -> None:
        """Record a run that starts now, owned (and heart-beaten) by ``owner``."""
        ...

    def beat(self, run_id: str, owner: Owner, now: int) -> None:
        """The owner still drives the run (a run marked killed meanwhile runs again)."""
        ...

    def save_step(self, step: StepRecord, *, pipeline: str | None = None) -> None:
        """Record (or replace) a step's outcome; with ``pipeline``, its cache entry too."""
        ...

    def cached(self, key: str) -> CacheEntry | None:
        """The cache entry of ``key`` (None: never produced)."""
        ...

    def finish(self, run_id: str, status: PipelineStatus, *, tracking_run: str | None,
               error: str | None, finished_at: int | None) -> None:
        """Record how the run ended."""
        ...

    def recent(self, pipeline: str | None = None, *, limit: int = 20
             ) -> list[PipelineRunRecord]:
        """Recent runs, newest first, with their ``step_counts``."""
        ...

    def get(self, run_id: str) -> PipelineRunRecord:
        """One run (a full id or a unique suffix of 6+ characters) with its ``steps``."""
        ...

    def running(self) -> list[RunOwner]:
        """The runs stored as ``running``, with their owners."""
        ...

    def mark_killed(self, run: RunOwner, *, finished_at: int, error: str) -> bool:
        """``running`` → ``killed``, unless the owner beat since ``run`` was read."""
        ...


_RUN_COLUMNS = ("id, pipeline, status, executor, params, inputs, trigger, run_id, error, "
                "started_at, finished_at")
_STEP_COLUMNS = ("pipeline_run_id, step, status, cache_key, attempts, run_id, seconds, "
                 "error, log, outputs, started_at, finished_at")


def _run(row: Mapping[str, Any], **extra: Any) -> PipelineRunRecord:
    return PipelineRunRecord(
        row["id"], row["pipeline"], PipelineStatus(row["status"]), row["executor"],
        json.loads(row["params"]) if row["params"] else {},
        json.loads(row["inputs"]) if row["inputs"] else {}, row["trigger"], row["run_id"],
        row["error"], int(row["started_at"]),
        None if row["finished_at"] is None else int(row["finished_at"]), **extra)


def _step(row: Mapping[str, Any]) -> StepRecord:
    return StepRecord(
        row["pipeline_run_id"], row["step"], StepStatus(row["status"]), row["cache_key"],
        int(row["attempts"]), row["run_id"], row["seconds"], row["error"], row["log"],
        json.loads(row["outputs"]) if row["outputs"] else {}, row["started_at"],
        row["finished_at"])


class SqlPipelineRuns:
    """The pipeline tables of one project, over :func:`mloop.store.lite.lite`."""

    def __init__(self, project: Project) -> None:
        from mloop.store.lite import lite

        self.project = project
        self.db = lite(project)

    def __repr__(self) -> str:
        return f"SqlPipelineRuns({self.project.root})"

    def start(self, run_id: str, pipeline: str, *, executor: str, params: Mapping[str, Any],
              inputs: Mapping[str, Any], trigger: str | None, started_at: int,
              owner: Owner) -> None:
        with unique_or_conflict(f"A pipeline run with the id {run_id!r} exists already."), \
                self.db.write() as q:
            q.all("INSERT INTO pipeline_runs (id, pipeline, status, executor, params, inputs, "
                  "trigger, started_at, owner_host, owner_pid, owner_start, heartbeat_at) "
                  "VALUES (:id, :p, :status, :ex, :params, :inputs, :trigger, :t, :host, "
                  ":pid, :start, :t)",
                  {"id": run_id, "p": pipeline, "status": str(PipelineStatus.RUNNING),
                   "ex": executor, "params": json.dumps(dict(params), default=str),
                   "inputs": json.dumps(dict(inputs)), "trigger": trigger, "t": started_at,
                   "host": owner.host, "pid": owner.pid, "start": owner.start})

    def beat(self, run_id: str, owner: Owner, now: int) -> None:
        with self.db.write() as q:
            q.all("UPDATE pipeline_runs SET heartbeat_at = :now, status = :running, "
                  "finished_at = NULL, error = NULL WHERE id = :id AND owner_host = :host "
                  "AND owner_pid = :pid AND status IN (:running, :killed)",
                  {"now": now, "id": run_id, "host": owner.host, "pid": owner.pid,
                   "running": str(PipelineStatus.RUNNING),
                   "killed": str(PipelineStatus.KILLED)})

    def save_step(self, step: StepRecord, *, pipeline: str | None = None) -> None:
        from mloop.core.clock import now_ms

        outputs = json.dumps(step.outputs)
        with self.db.write() as q:
            q.all("INSERT INTO pipeline_steps (pipeline_run_id, step, status, cache_key, "
                  "attempts, run_id, seconds, error, log, outputs, started_at, finished_at) "
                  "VALUES (:run, :step, :status, :key, :attempts, :rid, :s, :err, :log, :out, "
                  ":t, :t) ON CONFLICT (pipeline_run_id, step) DO UPDATE SET "
                  "status = excluded.status, cache_key = excluded.cache_key, attempts = "
                  "excluded.attempts, run_id = excluded.run_id, seconds = excluded.seconds, "
                  "error = excluded.error, log = excluded.log, outputs = excluded.outputs, "
                  "finished_at = excluded.finished_at",
                  {"run": step.pipeline_run_id, "step": step.step, "status": str(step.status),
                   "key": step.cache_key, "attempts": step.attempts, "rid": step.run_id,
                   "s": step.seconds, "err": step.error, "log": step.log, "out": outputs,
                   "t": step.finished_at if step.finished_at is not None else now_ms()})
            if pipeline is not None and step.cache_key:
                q.all("INSERT INTO pipeline_cache (key, pipeline, step, outputs, run_id, "
                      "created_at) VALUES (:k, :p, :s, :o, :r, :t) ON CONFLICT (key) DO UPDATE "
                      "SET outputs = excluded.outputs, run_id = excluded.run_id, "
                      "created_at = excluded.created_at",
                      {"k": step.cache_key, "p": pipeline, "s": step.step, "o": outputs,
                       "r": step.run_id, "t": now_ms()})

    def cached(self, key: str) -> CacheEntry | None:
        with self.db.read() as q:
            rows = q.all("SELECT outputs, run_id FROM pipeline_cache WHERE key = :k", {"k": key})
        if not rows:
            return None
        return CacheEntry(key, json.loads(rows[0]["outputs"]), rows[0]["run_id"])

    def finish(self, run_id: str, status: PipelineStatus, *, tracking_run: str | None,
               error: str | None, finished_at: int | None) -> None:
        with self.db.write() as q:
            q.all("UPDATE pipeline_runs SET status = :s, run_id = :r, error = :e, "
                  "finished_at = :t WHERE id = :id",
                  {"s": str(PipelineStatus(status)), "r": tracking_run, "e": error,
                   "t": finished_at, "id": run_id})

    def recent(self, pipeline: str | None = None, *, limit: int = 20
             ) -> list[PipelineRunRecord]:
        from mloop.core.limits import check_limit
        from mloop.store.lite import in_list

        check_limit(limit)

        where, params = ("WHERE pipeline = :p", {"p": pipeline}) if pipeline else ("", {})
        with self.db.read() as q:
            rows = q.all(f"SELECT {_RUN_COLUMNS} FROM pipeline_runs {where} "
                         f"ORDER BY started_at DESC LIMIT {int(limit)}", params)
            counts: dict[str, dict[str, int]] = {r["id"]: {} for r in rows}
            if rows:  # every listed run's counts in one query
                ids, id_params = in_list("r", counts)
                for c in q.all("SELECT pipeline_run_id, status, COUNT(*) AS n FROM "
                               f"pipeline_steps WHERE pipeline_run_id IN ({ids}) "
                               "GROUP BY pipeline_run_id, status", id_params):
                    counts[c["pipeline_run_id"]][c["status"]] = int(c["n"])
        return [_run(r, step_counts=counts[r["id"]]) for r in rows]

    def get(self, run_id: str) -> PipelineRunRecord:
        with self.db.read() as q:
            rows = q.all(f"SELECT {_RUN_COLUMNS} FROM pipeline_runs WHERE id = :id",
                         {"id": run_id})
            if not rows and len(run_id) >= 6:
                rows = q.all(f"SELECT {_RUN_COLUMNS} FROM pipeline_runs WHERE id LIKE :s",
                             {"s": f"%{run_id.replace('%', '').replace('_', '')}"})
            if len(rows) != 1:
                raise NotFoundError(f"No pipeline run {run_id!r}"
                                    + (" (ambiguous)" if rows else "")
                                    + "; see `mloop pipeline status`.")
            steps = q.all(f"SELECT {_STEP_COLUMNS} FROM pipeline_steps WHERE "
                          "pipeline_run_id = :id ORDER BY started_at, step",
                          {"id": rows[0]["id"]})
        records = tuple(_step(s) for s in steps)
        return _run(rows[0], steps=records, step_counts=count_steps(s.status for s in records))

    def running(self) -> list[RunOwner]:
        from mloop.core.owner import Owner

        with self.db.read() as q:
            rows = q.all("SELECT id, owner_host, owner_pid, owner_start, heartbeat_at, "
                         "started_at FROM pipeline_runs WHERE status = :s",
                         {"s": str(PipelineStatus.RUNNING)})
        return [RunOwner(r["id"], None if r["owner_pid"] is None else
                         Owner(r["owner_host"], r["owner_pid"], r["owner_start"]),
                         r["heartbeat_at"], int(r["started_at"])) for r in rows]

    def mark_killed(self, run: RunOwner, *, finished_at: int, error: str) -> bool:
        if run.owner is None:
            return False
        seen = "heartbeat_at IS NULL" if run.heartbeat_at is None else "heartbeat_at = :hb"
        with self.db.write() as q:
            q.all(f"UPDATE pipeline_runs SET status = :killed, finished_at = :t, error = :e "
                  f"WHERE id = :id AND status = :running AND owner_pid = :pid AND {seen}",
                  {"t": finished_at, "id": run.id, "pid": run.owner.pid,
                   "hb": run.heartbeat_at, "e": error, "killed": str(PipelineStatus.KILLED),
                   "running": str(PipelineStatus.RUNNING)})
            return _status(q, run.id) == PipelineStatus.KILLED


def _status(q: Query, run_id: str) -> str | None:
    rows = q.all("SELECT status FROM pipeline_runs WHERE id = :id", {"id": run_id})
    return rows[0]["status"] if rows else None
