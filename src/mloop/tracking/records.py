"""Reading and changing stored runs: the store-side half of tracking."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy.exc
from sqlalchemy import Connection, and_, bindparam, select, update

from mloop.core.clock import now_ms
from mloop.core.owner import Owner, is_dead
from mloop.core.text import MAX_KEY, MAX_VALUE, check_text, text_problem
from mloop.errors import InvalidInputError, MloopError, ParamConflictError
from mloop.project import Project
from mloop.store import Store
from mloop.store.schema import (
    artifacts,
    environments,
    experiments,
    latest_metrics,
    metrics,
    params,
    runs,
    tags,
)
from mloop.tracking import lookup as _lookup
from mloop.tracking.model import ArtifactInfo, Environment, Run, RunStatus

if TYPE_CHECKING:
    import pandas as pd


resolve_run_id = _lookup.resolve_run_id  # plain SQL: the model-loading path uses it


def get_run(project: Project, run_id: str) -> Run:
    """A run with its params, latest metrics, tags and artifact list."""
    run_id = resolve_run_id(project, run_id)
    reap_runs(project)
    with project.store.read() as conn:
        row = conn.execute(
            select(runs, experiments.c.name.label("experiment"))
            .join(experiments, experiments.c.id == runs.c.experiment_id)
            .where(runs.c.id == run_id)).one()
        p = dict(conn.execute(select(params.c.key, params.c.value)
                              .where(params.c.run_id == run_id)).all())
        m = {k: _nan(v) for k, v in conn.execute(
            select(latest_metrics.c.key, latest_metrics.c.value)
            .where(latest_metrics.c.run_id == run_id)).all()}
        t = dict(conn.execute(select(tags.c.key, tags.c.value)
                              .where(tags.c.run_id == run_id)).all())
        a = [ArtifactInfo(r.path, r.size, r.digest) for r in conn.execute(
            select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.path))]
    return Run(
        id=row.id, experiment_id=row.experiment_id, experiment=row.experiment, name=row.name,
        status=RunStatus(row.status), start_time=row.start_time, end_time=row.end_time,
        parent_id=row.parent_id, user=row.user, command=row.command, seed=row.seed,
        git_commit=row.git_commit, git_branch=row.git_branch, git_dirty=row.git_dirty,
        git_diff_digest=row.git_diff, environment_id=row.environment_id,
        deleted=row.deleted_at is not None, params=p, metrics=m, tags=t, artifacts=a,
        _project=project,
    )


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def metric_history(project: Project, run_id: str, key: str) -> pd.DataFrame:
    """Every point of metric ``key`` of a run, ordered by step then time."""
    import pandas as pd

    query = (select(metrics.c.step, metrics.c.timestamp, metrics.c.value)
             .where(metrics.c.run_id == run_id, metrics.c.key == key)
             .order_by(metrics.c.step, metrics.c.timestamp))
    with project.store.read() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["step", "timestamp", "value"])
    frame["value"] = frame["value"].astype("float64")  # NULL (stored NaN) → NaN
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("int64"), unit="ms", utc=True)
    return frame


def get_environment(project: Project, env_id: str) -> Environment | None:
    with project.store.read() as conn:
        row = conn.execute(select(environments).where(environments.c.id == env_id)).first()
    if row is None:
        return None
    return Environment(row.id, row.python, row.platform,
                       tuple(line for line in row.packages.splitlines() if line))


def check_key(key: str, what: str) -> str:
    """Validate a param/metric/tag key: non-empty, at most 250 characters, one line, no
    NUL, valid Unicode (what both databases store and give back unchanged)."""
    return check_text(key, f"{what} name", MAX_KEY, newlines=False, empty=False)


def check_value(key: str, value: Any, what: str) -> str:
    """A param or tag value as stored: ``str(value)``, checked like a key but multi-line."""
    text = value if isinstance(value, str) else str(value)
    problem = text_problem(text, MAX_VALUE)
    if problem is not None:
        long = len(text) > MAX_VALUE
        raise InvalidInputError(
            f"Invalid value of {what} {key!r}: {problem}. "
            + ("Log long values as an artifact with log_text or log_dict." if long else
               "Store valid UTF-8 text without NUL characters (encode binary data, e.g. "
               "as hex or base64)."))
    return text


def _select_params(_store: Store) -> Any:
    return select(params.c.key, params.c.value).where(
        params.c.run_id == bindparam("run_id"), params.c.key.in_(bindparam("keys", expanding=True)))


def write_params(store: Store, conn: Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Insert params; identical re-sets are no-ops, a different value raises."""
    existing = dict(conn.execute(store.statement("params.select", _select_params),
                                 {"run_id": run_id, "keys": list(values)}).all())
    raise_on_conflict({k: (existing[k], v) for k, v in values.items()
                       if k in existing and existing[k] != v})
    insert_params(store, conn, run_id, {k: v for k, v in values.items() if k not in existing})


def insert_params(store: Store, conn: Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Insert params known to be new (a stored key raises IntegrityError)."""
    if values:
        conn.execute(store.statement("params.insert", lambda s: params.insert()),
                     [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])


def raise_on_conflict(clashes: Mapping[str, tuple[str, str]]) -> None:
    """Raise :class:`ParamConflictError` naming each ``key: (stored, new)`` clash."""
    if clashes:
        detail = "; ".join(f"{k}: stored {old!r}, new {new!r}" for k, (old, new) in clashes.items())
        raise ParamConflictError(
            f"Params are immutable once logged ({detail}). Start a new run for a new value, "
            "or log it under another name.")


def stringify_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Params as stored: checked keys, values as checked strings."""
    return {check_key(key, "param"): check_value(key, value, "param")
            for key, value in values.items()}


def stringify_tags(values: Mapping[str, Any]) -> dict[str, str]:
    """Tags as stored: checked keys, values as checked strings."""
    return {check_key(key, "tag"): check_value(key, value, "tag")
            for key, value in values.items()}


def _tags_upsert(store: Store) -> Any:
    stmt = store.insert(tags)
    return stmt.on_conflict_do_update(index_elements=["run_id", "key"],
                                      set_={"value": stmt.excluded.value})


def write_tags(store: Store, conn: Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Set tags (insert or replace)."""
    conn.execute(store.statement("tags.upsert", _tags_upsert),
                 [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])


def _status_update(_store: Store) -> Any:
    return update(runs).where(runs.c.id == bindparam("rid")).values(
        status=bindparam("status"), end_time=bindparam("end_time"))


def set_status(store: Store, conn: Connection, run_id: str, status: RunStatus,
               end_time: int | None = None) -> None:
    """Record how a run ended (and when)."""
    conn.execute(store.statement("runs.status", _status_update),
                 {"rid": run_id, "status": str(status),
                  "end_time": end_time if end_time is not None else now_ms()})


# -- liveness: runs whose process died (see mloop.core.owner) ------------------------

def owner_values(owner: Owner, now: int) -> dict[str, Any]:
    """The owner columns of a run this process starts or resumes."""
    return {"owner_host": owner.host, "owner_pid": owner.pid, "owner_start": owner.start,
            "heartbeat_at": now}


def _beat(_store: Store) -> Any:
    mine = and_(runs.c.id.in_(bindparam("ids", expanding=True)),
                runs.c.owner_host == bindparam("host"), runs.c.owner_pid == bindparam("pid"),
                runs.c.status.in_([str(RunStatus.RUNNING), str(RunStatus.KILLED)]))
    # KILLED too: a reader on another host that missed our beats (a stalled network, a
    # suspended machine) may have marked the run; we are alive, so it runs again.
    return update(runs).where(mine).values(heartbeat_at=bindparam("now"),
                                           status=str(RunStatus.RUNNING), end_time=None)


def beat_runs(store: Store, run_ids: Iterable[str], owner: Owner, now: int) -> None:
    """Tell readers that this process still runs ``run_ids``."""
    ids = list(run_ids)
    if ids:
        with store.write() as conn:
            conn.execute(store.statement("runs.beat", _beat),
                         {"ids": ids, "host": owner.host, "pid": owner.pid, "now": now})


def reap_runs(project: Project) -> list[str]:
    """Mark RUNNING runs whose owner died as KILLED; returns their ids.

    Reads repair the stored status rather than only display another one, so that every
    reader — filters (``attributes.status = 'RUNNING'``), sorts, counts, the REST API —
    sees the same value. The write is a compare-and-set on the owner and heartbeat that
    were judged, so a run resumed or beating meanwhile is left alone; ``end_time`` is
    the last sign of life. A store that refuses the write (read-only) is read as is.
    """
    store = project.store
    cols = (runs.c.id, runs.c.owner_host, runs.c.owner_pid, runs.c.owner_start,
            runs.c.heartbeat_at, runs.c.start_time)
    with store.read() as conn:
        rows = conn.execute(store.statement("runs.running", lambda s: select(*cols).where(
            runs.c.status == str(RunStatus.RUNNING)))).all()
    now = now_ms()
    dead = [r for r in rows if r.owner_pid is not None and is_dead(
        Owner(r.owner_host, r.owner_pid, r.owner_start), r.heartbeat_at, now)]
    if not dead:
        return []
    try:
        with store.write() as conn:
            for r in dead:
                beat = (runs.c.heartbeat_at.is_(None) if r.heartbeat_at is None
                        else runs.c.heartbeat_at == r.heartbeat_at)
                conn.execute(update(runs).where(
                    runs.c.id == r.id, runs.c.status == str(RunStatus.RUNNING),
                    runs.c.owner_pid == r.owner_pid, beat,
                ).values(status=str(RunStatus.KILLED),
                         end_time=max(r.heartbeat_at or r.start_time, r.start_time)))
    except (MloopError, sqlalchemy.exc.DBAPIError):  # e.g. a read-only store: shown as is
        return []
    return [r.id for r in dead]


def set_deleted(project: Project, run_ids: Iterable[str], deleted: bool) -> list[str]:
    """Soft-delete (or restore) runs; returns the full ids. Deleted runs leave listings."""
    ids = [resolve_run_id(project, r) for r in run_ids]
    with project.store.write() as conn:
        conn.execute(update(runs).where(runs.c.id.in_(ids))
                     .values(deleted_at=now_ms() if deleted else None))
    return ids
