"""The pipeline tables: one run's rows as it goes (:class:`RunRecords`), and reading
runs back — listings for ``mloop pipeline status``, one run for ``show``.

A run whose engine process died (SIGKILL, a crash of the machine) is marked ``killed``
on read, as tracking runs are (see :func:`mloop.tracking.records.reap_runs`: reads
repair the stored status, with a compare-and-set, so every reader agrees).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.redact import get_logger
from mloop.errors import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mloop.pipelines.engine import PipelineRun, StepResult
    from mloop.pipelines.values import ValueRef
    from mloop.project import Project

log = get_logger(__name__)


def list_runs(project: Project, pipeline: str | None = None, *,
              limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first, with a count of steps by status."""
    from mloop.store.lite import lite

    where, params = ("WHERE pipeline = :p", {"p": pipeline}) if pipeline else ("", {})
    reap_runs(project)
    with lite(project).read() as q:
        runs = q.all(f"SELECT * FROM pipeline_runs {where} ORDER BY started_at DESC "
                     f"LIMIT {int(limit)}", params)
        for r in runs:
            counts = q.all("SELECT status, COUNT(*) AS n FROM pipeline_steps WHERE "
                           "pipeline_run_id = :id GROUP BY status", {"id": r["id"]})
            r["steps"] = {c["status"]: int(c["n"]) for c in counts}
            r["uri"] = f"pipelines:/{r['pipeline']}/{r['id']}"
            r["params"] = json.loads(r["params"]) if r["params"] else {}
            r["inputs"] = json.loads(r["inputs"]) if r["inputs"] else {}
            for key in _OWNER_KEYS:
                r.pop(key, None)
    return runs


def get_run(project: Project, run_id: str) -> dict[str, Any]:
    """One run (a full id, or a unique suffix of 6+ characters) with its steps."""
    from mloop.store.lite import lite

    reap_runs(project)
    with lite(project).read() as q:
        rows = q.all("SELECT * FROM pipeline_runs WHERE id = :id", {"id": run_id})
        if not rows and len(run_id) >= 6:
            rows = q.all("SELECT * FROM pipeline_runs WHERE id LIKE :s",
                         {"s": f"%{run_id.replace('%', '').replace('_', '')}"})
        if len(rows) != 1:
            raise NotFoundError(f"No pipeline run {run_id!r}" + (" (ambiguous)" if rows else "")
                                + "; see `mloop pipeline status`.")
        run = rows[0]
        steps = q.all("SELECT * FROM pipeline_steps WHERE pipeline_run_id = :id "
                      "ORDER BY started_at, step", {"id": run["id"]})
    for key in _OWNER_KEYS:
        run.pop(key, None)
    for s in steps:
        s["outputs"] = json.loads(s["outputs"]) if s["outputs"] else {}
    run["params"] = json.loads(run["params"])
    run["inputs"] = json.loads(run["inputs"])
    run["steps"] = steps
    run["uri"] = f"pipelines:/{run['pipeline']}/{run['id']}"
    return run


_OWNER_KEYS = ("owner_host", "owner_pid", "owner_start", "heartbeat_at")


def reap_runs(project: Project) -> list[str]:
    """Mark ``running`` pipeline runs whose engine died as ``killed``; returns their ids."""
    from mloop.core.owner import Owner, is_dead
    from mloop.store.lite import lite

    db = lite(project)
    with db.read() as q:
        rows = q.all("SELECT id, owner_host, owner_pid, owner_start, heartbeat_at, started_at "
                     "FROM pipeline_runs WHERE status = 'running'")
    now = now_ms()
    dead = [r for r in rows if r["owner_pid"] is not None and is_dead(
        Owner(r["owner_host"], r["owner_pid"], r["owner_start"]), r["heartbeat_at"], now)]
    if not dead:
        return []
    try:
        with db.write() as q:
            for r in dead:
                seen = ("heartbeat_at IS NULL" if r["heartbeat_at"] is None
                        else "heartbeat_at = :hb")
                q.all("UPDATE pipeline_runs SET status = 'killed', finished_at = :t, error = "
                      f":e WHERE id = :id AND status = 'running' AND owner_pid = :pid AND {seen}",
                      {"t": max(r["heartbeat_at"] or r["started_at"], r["started_at"]),
                       "id": r["id"], "pid": r["owner_pid"], "hb": r["heartbeat_at"],
                       "e": f"the engine process (pid {r['owner_pid']} on {r['owner_host']}) "
                            "died before the run ended (killed, or its machine stopped)"})
    except Exception as exc:  # e.g. a read-only store: shown as stored
        log.debug("mloop: cannot mark dead pipeline runs: %s", exc)
        return []
    return [r["id"] for r in dead]


class RunRecords:
    """The rows of one pipeline run as it goes, written through plain SQL (the no-op
    path stays light): the run, each step, the step cache, the heartbeat."""

    def __init__(self, project: Project, run: PipelineRun, executor: str,
                 params: Mapping[str, Any], inputs: Mapping[str, ValueRef]) -> None:
        from mloop.core.owner import this_process
        from mloop.store.lite import lite

        self.db = lite(project)
        self.run = run
        self.owner = this_process()
        with self.db.write() as q:
            q.all("INSERT INTO pipeline_runs (id, pipeline, status, executor, params, inputs, "
                  "trigger, started_at, owner_host, owner_pid, owner_start, heartbeat_at) "
                  "VALUES (:id, :p, 'running', :ex, :params, :inputs, :trigger, :t, :host, "
                  ":pid, :start, :t)",
                  {"id": run.id, "p": run.pipeline, "ex": executor,
                   "params": json.dumps(dict(params), default=str),
                   "inputs": json.dumps({k: v.to_dict() for k, v in inputs.items()}),
                   "trigger": run.trigger, "t": run.started_at, "host": self.owner.host,
                   "pid": self.owner.pid, "start": self.owner.start})

    def beat(self, now: int) -> None:
        """The engine still drives this run (a run marked killed by a reader that missed
        our beats runs again: we are alive)."""
        with self.db.write() as q:
            q.all("UPDATE pipeline_runs SET heartbeat_at = :now, status = 'running', "
                  "finished_at = NULL, error = NULL WHERE id = :id AND owner_host = :host "
                  "AND owner_pid = :pid AND status IN ('running', 'killed')",
                  {"now": now, "id": self.run.id, "host": self.owner.host,
                   "pid": self.owner.pid})

    def cached(self, key: str) -> dict[str, ValueRef] | None:
        with self.db.read() as q:
            rows = q.all("SELECT outputs, run_id FROM pipeline_cache WHERE key = :k", {"k": key})
        if not rows:
            return None
        from mloop.pipelines.values import ValueRef

        return {k: ValueRef.from_dict(v) for k, v in json.loads(rows[0]["outputs"]).items()}

    def cached_run(self, key: str) -> str | None:
        with self.db.read() as q:
            rows = q.all("SELECT run_id FROM pipeline_cache WHERE key = :k", {"k": key})
        return rows[0]["run_id"] if rows else None

    def step(self, r: StepResult, *, cache: bool = False) -> None:
        outputs = json.dumps({k: v.to_dict() for k, v in r.outputs.items()})
        with self.db.write() as q:
            q.all("INSERT INTO pipeline_steps (pipeline_run_id, step, status, cache_key, "
                  "attempts, run_id, seconds, error, log, outputs, started_at, finished_at) "
                  "VALUES (:run, :step, :status, :key, :attempts, :rid, :s, :err, :log, :out, "
                  ":t, :t) ON CONFLICT (pipeline_run_id, step) DO UPDATE SET "
                  "status = excluded.status, cache_key = excluded.cache_key, attempts = "
                  "excluded.attempts, run_id = excluded.run_id, seconds = excluded.seconds, "
                  "error = excluded.error, log = excluded.log, outputs = excluded.outputs, "
                  "finished_at = excluded.finished_at",
                  {"run": self.run.id, "step": r.name, "status": r.status, "key": r.key,
                   "attempts": r.attempts, "rid": r.run_id, "s": r.seconds, "err": r.error,
                   "log": r.log, "out": outputs, "t": now_ms()})
            if cache and r.key:
                q.all("INSERT INTO pipeline_cache (key, pipeline, step, outputs, run_id, "
                      "created_at) VALUES (:k, :p, :s, :o, :r, :t) ON CONFLICT (key) DO UPDATE "
                      "SET outputs = excluded.outputs, run_id = excluded.run_id, "
                      "created_at = excluded.created_at",
                      {"k": r.key, "p": self.run.pipeline, "s": r.name, "o": outputs,
                       "r": r.run_id, "t": now_ms()})

    def finish(self) -> None:
        with self.db.write() as q:
            q.all("UPDATE pipeline_runs SET status = :s, run_id = :r, error = :e, "
                  "finished_at = :t WHERE id = :id",
                  {"s": self.run.status, "r": self.run.run_id, "e": self.run.error,
                   "t": self.run.finished_at, "id": self.run.id})
