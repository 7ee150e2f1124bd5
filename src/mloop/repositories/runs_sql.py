"""The runs repository over SQLAlchemy Core: :class:`SqlRuns`, and the statements that
join a caller's transaction.

Statements run thousands of times (a metric flush, a run's creation, its params) are
built once per store (:meth:`mloop.store.Store.statement`). The functions taking
``(store, conn, …)`` run inside a transaction the caller holds, so that related writes
land together: the metric writer's last batch and a run's final status, a pipeline
step's run and its params.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy.exc
from sqlalchemy import Connection, and_, bindparam, or_, select, update

from mloop.core.clock import now_ms
from mloop.core.owner import Owner, is_dead
from mloop.errors import (
    ConflictError,
    ExperimentNotFoundError,
    InvalidInputError,
    MloopError,
    NotFoundError,
    ParamConflictError,
    RunNotFoundError,
)
from mloop.repositories import runs as _lite
from mloop.repositories.runs import (
    ArtifactInfo,
    Environment,
    MetricPoint,
    NewRun,
    ResumedRun,
    Run,
    RunStatus,
    SearchPage,
    SearchQuery,
)
from mloop.store import Store
from mloop.store.failures import violation
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

if TYPE_CHECKING:
    from mloop.project import Project

Transaction = Connection  # what the ``(store, conn, …)`` functions write through

__all__ = ["SqlRuns", "Transaction", "insert_params", "owner_values", "raise_on_conflict",
           "set_status", "write_params", "write_points", "write_tags"]


class SqlRuns:
    """Runs in the metadata store (SQLite or PostgreSQL)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def __repr__(self) -> str:
        return f"SqlRuns({self.project.root})"

    @property
    def store(self) -> Store:
        return self.project.store

    def resolve_id(self, run_id: str) -> str:
        return _lite.resolve_run_id(self.project, run_id)

    def newest_id(self) -> str | None:
        with self.store.read() as conn:
            newest = conn.execute(select(runs.c.id).order_by(runs.c.id.desc()).limit(1))
            return newest.scalar()

    def get(self, run_id: str) -> Run:
        with self.store.read() as conn:
            row = conn.execute(
                select(runs, experiments.c.name.label("experiment"))
                .join(experiments, experiments.c.id == runs.c.experiment_id)
                .where(runs.c.id == run_id)).one_or_none()
            if row is None:
                raise RunNotFoundError(
                    f"No run with id {run_id!r}. List runs with `mloop runs list`.")
            p = dict(conn.execute(select(params.c.key, params.c.value)
                                  .where(params.c.run_id == run_id)).all())
            m = {k: _nan(v) for k, v in conn.execute(
                select(latest_metrics.c.key, latest_metrics.c.value)
                .where(latest_metrics.c.run_id == run_id)).all()}
            t = dict(conn.execute(select(tags.c.key, tags.c.value)
                                  .where(tags.c.run_id == run_id)).all())
            a = [ArtifactInfo(r.path, r.size, r.digest) for r in conn.execute(
                select(artifacts).where(artifacts.c.run_id == run_id)
                .order_by(artifacts.c.path))]
        return Run(
            id=row.id, experiment_id=row.experiment_id, experiment=row.experiment,
            name=row.name, status=RunStatus(row.status), start_time=row.start_time,
            end_time=row.end_time, parent_id=row.parent_id, user=row.user,
            command=row.command, seed=row.seed, git_commit=row.git_commit,
            git_branch=row.git_branch, git_dirty=row.git_dirty, git_diff_digest=row.git_diff,
            environment_id=row.environment_id, deleted=row.deleted_at is not None,
            params=p, metrics=m, tags=t, artifacts=a, _project=self.project,
        )

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float | None]]:
        # Through the driver's own cursor, as plain tuples: a curve has tens of thousands
        # of points, and a result row object per point was most of the time of reading one.
        store = self.store
        with store.read() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(_HISTORY_SQL[store.dialect], (run_id, key))
                return list(cursor.fetchall())
            finally:
                cursor.close()

    def environment(self, env_id: str) -> Environment | None:
        with self.store.read() as conn:
            row = conn.execute(select(environments)
                               .where(environments.c.id == env_id)).first()
        if row is None:
            return None
        return Environment(row.id, row.python, row.platform,
                           tuple(line for line in row.packages.splitlines() if line))

    def create(self, run: NewRun, owner: Owner | None, *, tags: Mapping[str, str],
               environment: Mapping[str, Any] | None = None) -> None:
        if environment is not None:
            _check_environment(environment)
        row = {
            "id": run.id, "experiment_id": run.experiment_id, "name": run.name,
            "status": str(RunStatus.RUNNING), "start_time": run.start_time,
            "parent_id": run.parent_id, "user": run.user,
            "environment_id": run.environment_id, "command": run.command,
            "git_commit": run.git_commit, "git_branch": run.git_branch,
            "git_dirty": run.git_dirty, "git_diff": run.git_diff_digest, "seed": run.seed,
            **owner_values(owner, now_ms()),
        }
        store = self.store
        try:
            with store.write() as conn:
                if environment is not None:
                    conn.execute(store.insert(environments).values(**environment)
                                 .on_conflict_do_nothing())
                conn.execute(store.statement("runs.insert", lambda s: runs.insert()), row)
                if tags:  # in the same transaction: a run never exists without its tags
                    write_tags(store, conn, run.id, tags)
        except sqlalchemy.exc.IntegrityError as exc:
            raise self._refused_run(exc, run) from None

    def _refused_run(self, exc: Exception, run: NewRun) -> Exception:
        """Why the store refused a new run, as the caller's error (else ``exc``)."""
        kind = violation(exc)
        if kind == "unique":
            return ConflictError(f"A run with the id {run.id!r} exists already.")
        if kind != "foreign_key":
            return exc
        with self.store.read() as conn:
            def known(table: Any, key: str | None) -> bool:
                return key is None or conn.execute(
                    select(table.c.id).where(table.c.id == key)).first() is not None

            if not known(experiments, run.experiment_id):
                return ExperimentNotFoundError(f"No experiment with the id "
                                               f"{run.experiment_id!r}.")
            if not known(runs, run.parent_id):
                return RunNotFoundError(f"No parent run with the id {run.parent_id!r}.")
            if not known(environments, run.environment_id):
                return NotFoundError(f"No environment with the id {run.environment_id!r}; "
                                     "send the environment with the run.")
        return exc

    def resume(self, run_id: str, owner: Owner | None) -> ResumedRun:
        with self.store.write() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                status=str(RunStatus.RUNNING), end_time=None, **owner_values(owner, now_ms())))
            steps = dict(conn.execute(select(latest_metrics.c.key, latest_metrics.c.step)
                                      .where(latest_metrics.c.run_id == run_id)).all())
            stored = dict(conn.execute(select(params.c.key, params.c.value)
                                       .where(params.c.run_id == run_id)).all())
        return ResumedRun(steps, stored)

    def log_params(self, run_id: str, values: Mapping[str, str]) -> None:
        # Inserted straight away (the caller knows them new); a writer in another process
        # trips the primary key, and then the stored values decide, key by key.
        store = self.store
        with _run_exists(run_id):
            try:
                with store.write() as conn:
                    insert_params(store, conn, run_id, values)
            except sqlalchemy.exc.IntegrityError:
                with store.write() as conn:
                    write_params(store, conn, run_id, values)

    def set_tags(self, run_id: str, values: Mapping[str, str]) -> None:
        if values:
            with _run_exists(run_id), self.store.write() as conn:
                write_tags(self.store, conn, run_id, values)

    def set_seed(self, run_id: str, seed: int) -> None:
        with self.store.write() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(seed=seed))

    def rename(self, run_id: str, name: str) -> None:
        with self.store.write() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(name=name))

    def set_status(self, run_id: str, status: RunStatus, end_time: int | None = None) -> None:
        with self.store.write() as conn:
            set_status(self.store, conn, run_id, status, end_time)

    def fail_if_running(self, run_id: str) -> bool:
        with self.store.write() as conn:
            done = conn.execute(
                update(runs).where(runs.c.id == run_id,
                                   runs.c.status == str(RunStatus.RUNNING))
                .values(status=str(RunStatus.FAILED), end_time=now_ms()))
        return bool(done.rowcount)

    def beat(self, run_ids: Iterable[str], owner: Owner, now: int) -> None:
        ids = list(run_ids)
        if ids:
            with self.store.write() as conn:
                conn.execute(self.store.statement("runs.beat", _beat),
                             {"ids": ids, "host": owner.host, "pid": owner.pid, "now": now})

    def reap(self) -> list[str]:
        """Mark RUNNING runs whose owner died as KILLED; returns their ids.

        Reads repair the stored status rather than only display another one, so that
        every reader — filters (``attributes.status = 'RUNNING'``), sorts, counts, the
        REST API — sees the same value. The write is a compare-and-set on the owner and
        heartbeat that were judged, so a run resumed or beating meanwhile is left alone;
        ``end_time`` is the last sign of life. A store that refuses the write (read-only)
        is read as is.
        """
        store = self.store
        with store.read() as conn:
            rows = conn.execute(store.statement("runs.running", _running)).all()
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

    def set_deleted(self, run_ids: Iterable[str], deleted: bool) -> None:
        with self.store.write() as conn:
            conn.execute(update(runs).where(runs.c.id.in_(list(run_ids)))
                         .values(deleted_at=now_ms() if deleted else None))

    def record_artifacts(self, run_id: str, infos: Iterable[ArtifactInfo]) -> None:
        now = now_ms()
        rows = [{"run_id": run_id, "path": _artifact_path(i.path),
                 "digest": _artifact_digest(i), "size": _artifact_size(i),
                 "created_at": now} for i in infos]
        if rows:
            with _run_exists(run_id), self.store.write() as conn:
                conn.execute(self.store.statement("artifacts.upsert", _artifacts_upsert), rows)

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        return _lite.list_artifacts(self.project, run_id, path)

    def write_points(self, points: list[MetricPoint]) -> None:
        if points:
            with _run_exists(*{p[0] for p in points}), self.store.write() as conn:
                write_points(self.store, conn, points)

    def search(self, query: SearchQuery) -> SearchPage:
        from mloop.repositories.run_search import search

        return search(self.store, query)


_HISTORY_SQL = {
    "sqlite": "SELECT step, timestamp, value FROM metrics WHERE run_id = ? AND key = ? "
              "ORDER BY step, timestamp",
    "postgresql": "SELECT step, timestamp, value FROM metrics WHERE run_id = %s AND key = %s "
                  "ORDER BY step, timestamp",
}

# the columns of an ``environments`` row, as a run's creation may send one
_ENVIRONMENT = {"id": str, "python": str, "platform": str, "packages": str, "created_at": int}


def _check_environment(environment: Mapping[str, Any]) -> None:
    """An environment row is exactly its columns, of their types (InvalidInputError)."""
    wrong = sorted(k for k in environment.keys() | _ENVIRONMENT.keys()
                   if not isinstance(environment.get(k), _ENVIRONMENT.get(k, ()))
                   or isinstance(environment.get(k), bool))
    if wrong:
        raise InvalidInputError(
            f"A run's environment has the fields id, python, platform, packages (strings) "
            f"and created_at (an integer), and nothing else; wrong or missing: "
            f"{', '.join(repr(k[:50]) for k in wrong[:10])}.")


@contextlib.contextmanager
def _run_exists(*run_ids: str) -> Iterator[None]:
    """A write about ``run_ids`` whose run does not exist raises RunNotFoundError (the
    store's foreign key says so), not the database's error."""
    try:
        yield
    except sqlalchemy.exc.IntegrityError as exc:
        if violation(exc) != "foreign_key":
            raise
        named = ", ".join(repr(r) for r in sorted(run_ids)[:5])
        raise RunNotFoundError(f"No run with the id {named}." if len(run_ids) == 1 else
                               f"A point refers to a run that does not exist (runs "
                               f"{named}{', …' if len(run_ids) > 5 else ''}).") from None


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


# -- statements inside a caller's transaction ---------------------------------------------

def owner_values(owner: Owner | None, now: int) -> dict[str, Any]:
    """The owner columns of a run this process starts or resumes; ``None``: a run no
    process of ours runs (an mlflow client's, through the server), never reaped."""
    if owner is None:
        return {"owner_host": None, "owner_pid": None, "owner_start": None,
                "heartbeat_at": None}
    return {"owner_host": owner.host, "owner_pid": owner.pid, "owner_start": owner.start,
            "heartbeat_at": now}


def _select_params(_store: Store) -> Any:
    return select(params.c.key, params.c.value).where(
        params.c.run_id == bindparam("run_id"),
        params.c.key.in_(bindparam("keys", expanding=True)))


def write_params(store: Store, conn: Transaction, run_id: str,
                 values: Mapping[str, str]) -> None:
    """Insert params; identical re-sets are no-ops, a different value raises."""
    existing = dict(conn.execute(store.statement("params.select", _select_params),
                                 {"run_id": run_id, "keys": list(values)}).all())
    raise_on_conflict({k: (existing[k], v) for k, v in values.items()
                       if k in existing and existing[k] != v})
    insert_params(store, conn, run_id, {k: v for k, v in values.items() if k not in existing})


def insert_params(store: Store, conn: Transaction, run_id: str,
                  values: Mapping[str, str]) -> None:
    """Insert params known to be new (a stored key fails the transaction)."""
    if values:
        conn.execute(store.statement("params.insert", lambda s: params.insert()),
                     [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])


def raise_on_conflict(clashes: Mapping[str, tuple[str, str]]) -> None:
    """Raise :class:`ParamConflictError` naming each ``key: (stored, new)`` clash."""
    if clashes:
        detail = "; ".join(f"{k}: stored {old!r}, new {new!r}"
                           for k, (old, new) in clashes.items())
        raise ParamConflictError(
            f"Params are immutable once logged ({detail}). Start a new run for a new value, "
            "or log it under another name.")


def _tags_upsert(store: Store) -> Any:
    stmt = store.insert(tags)
    return stmt.on_conflict_do_update(index_elements=["run_id", "key"],
                                      set_={"value": stmt.excluded.value})


def write_tags(store: Store, conn: Transaction, run_id: str, values: Mapping[str, str]) -> None:
    """Set tags (insert or replace)."""
    conn.execute(store.statement("tags.upsert", _tags_upsert),
                 [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])


def _status_update(_store: Store) -> Any:
    return update(runs).where(runs.c.id == bindparam("rid")).values(
        status=bindparam("status"), end_time=bindparam("end_time"))


def set_status(store: Store, conn: Transaction, run_id: str, status: RunStatus,
               end_time: int | None = None) -> None:
    """Record how a run ended (and when)."""
    conn.execute(store.statement("runs.status", _status_update),
                 {"rid": run_id, "status": str(status),
                  "end_time": end_time if end_time is not None else now_ms()})


def _beat(_store: Store) -> Any:
    mine = and_(runs.c.id.in_(bindparam("ids", expanding=True)),
                runs.c.owner_host == bindparam("host"), runs.c.owner_pid == bindparam("pid"),
                runs.c.status.in_([str(RunStatus.RUNNING), str(RunStatus.KILLED)]))
    # KILLED too: a reader on another host that missed our beats (a stalled network, a
    # suspended machine) may have marked the run; we are alive, so it runs again.
    return update(runs).where(mine).values(heartbeat_at=bindparam("now"),
                                           status=str(RunStatus.RUNNING), end_time=None)


def _running(_store: Store) -> Any:
    return select(runs.c.id, runs.c.owner_host, runs.c.owner_pid, runs.c.owner_start,
                  runs.c.heartbeat_at, runs.c.start_time).where(
        runs.c.status == str(RunStatus.RUNNING))


def _artifacts_upsert(store: Store) -> Any:
    stmt = store.insert(artifacts)
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "path"],
        set_={"digest": stmt.excluded.digest, "size": stmt.excluded.size,
              "created_at": stmt.excluded.created_at})


def _latest_upsert(store: Store) -> Any:
    stmt = store.insert(latest_metrics)
    ex, cur = stmt.excluded, latest_metrics.c
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={"step": ex.step, "timestamp": ex.timestamp, "value": ex.value},
        where=or_(ex.step > cur.step, (ex.step == cur.step) & (ex.timestamp >= cur.timestamp)),
    )


def write_points(store: Store, conn: Transaction, batch: list[MetricPoint]) -> None:
    """Insert ``batch`` into the history and advance ``latest_metrics``.

    ``latest_metrics`` keeps the point with the highest ``(step, timestamp)`` per run and
    key, by a conditional upsert, so that batches from several processes can land in
    any order.
    """
    conn.execute(store.statement("metrics.insert", lambda s: metrics.insert()), [
        {"run_id": r, "key": k, "step": s, "timestamp": t, "value": v} for r, k, s, t, v in batch
    ])
    latest: dict[tuple[str, str], MetricPoint] = {}
    for point in batch:
        ident = (point[0], point[1])
        best = latest.get(ident)
        if best is None or (point[2], point[3]) >= (best[2], best[3]):
            latest[ident] = point
    conn.execute(store.statement("latest_metrics.upsert", _latest_upsert),
                 [{"run_id": r, "key": k, "step": s, "timestamp": t, "value": v}
                  for r, k, s, t, v in latest.values()])


def _artifact_path(path: str) -> str:
    """An artifact's path as stored: relative, normalised, inside the run's root (a path
    another process sends, e.g. through the server, is checked like a local one)."""
    from mloop.core.paths import safe_relpath

    clean = safe_relpath(path)
    if clean != path:
        raise InvalidInputError(f"Artifact path {path!r} is not in its normal form; send "
                                f"{clean!r}.")
    return clean


def _artifact_digest(info: ArtifactInfo) -> str:
    from mloop.core.hashing import is_digest

    if not is_digest(info.digest):
        raise InvalidInputError(f"Artifact {info.path!r}: {info.digest!r} is not a blob "
                                "digest (64 hex digits).")
    return info.digest


def _artifact_size(info: ArtifactInfo) -> int:
    if info.size < 0:
        raise InvalidInputError(f"Artifact {info.path!r}: a size cannot be negative.")
    return info.size
