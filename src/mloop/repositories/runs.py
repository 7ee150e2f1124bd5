"""Runs: their records, what may be asked of them, and the look-ups of the hot path.

A run has ``params`` (immutable), ``tags``, ``metrics`` (every point), ``latest_metrics``
(the highest-step point per key, for search), ``artifacts`` (path → blob digest) and an
``environments`` row. This module holds the typed records, the :class:`Runs` protocol
and the two look-ups of the model-loading path (:func:`resolve_run_id`,
:func:`list_artifacts`), in plain SQL through :func:`mloop.store.lite.lite`: a fresh
process loads a model without importing SQLAlchemy (~0.2 s). The SQLAlchemy half of
the implementation is :mod:`mloop.repositories.runs_sql`, and the search's SQL is
:mod:`mloop.repositories.run_search`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from mloop.core.clock import ms_to_datetime
from mloop.core.jsonsafe import json_float
from mloop.errors import InvalidInputError, RunNotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from mloop.core.owner import Owner
    from mloop.project import Project
    from mloop.tracking.filter import Node, OrderKey

__all__ = ["BASE_COLUMNS", "ArtifactInfo", "Environment", "MetricPoint", "NewRun",
           "ResumedRun", "Run", "RunStatus", "Runs", "SearchPage", "SearchQuery", "json_float",
           "list_artifacts", "resolve_run_id"]


class RunStatus(StrEnum):
    """Where a run is: RUNNING, or how it ended."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


MetricPoint = tuple[str, str, int, int, float | None]  # run_id, key, step, timestamp, value


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """One artifact file of a run: its path, size in bytes and content digest."""

    path: str
    size: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "digest": self.digest}


@dataclass(frozen=True, slots=True)
class Environment:
    """The interpreter, platform and installed packages a run ran with."""

    id: str
    python: str
    platform: str
    packages: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "python": self.python, "platform": self.platform,
                "packages": list(self.packages)}


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create: its identity and reproducibility record (the owner is added)."""

    id: str
    experiment_id: str
    name: str
    start_time: int
    parent_id: str | None
    user: str | None
    command: str | None
    seed: int | None
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    git_diff_digest: str | None
    environment_id: str | None


@dataclass(frozen=True, slots=True)
class ResumedRun:
    """What resuming a run needs to go on: each metric's last step and the stored params."""

    last_steps: dict[str, int]
    params: dict[str, str]


@dataclass(frozen=True)
class Run:
    """A run as stored: identity, state, reproducibility record, params, metrics, tags.

    ``metrics`` holds the latest value of each metric; :meth:`metric_history` returns
    every point. NaN comes back as ``float('nan')``.
    """

    id: str
    experiment_id: str
    experiment: str
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_id: str | None
    user: str | None
    command: str | None
    seed: int | None
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    git_diff_digest: str | None
    environment_id: str | None
    deleted: bool
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[ArtifactInfo] = field(default_factory=list)
    _project: Project | None = field(default=None, repr=False, compare=False)

    @property
    def start_datetime(self) -> datetime | None:
        return ms_to_datetime(self.start_time)

    @property
    def end_datetime(self) -> datetime | None:
        return ms_to_datetime(self.end_time)

    @property
    def duration_ms(self) -> int | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def metric_history(self, key: str) -> pd.DataFrame:
        """Every logged point of ``key``: columns ``step``, ``timestamp`` (UTC), ``value``."""
        import pandas as pd

        from mloop.repositories import backend

        rows = backend(self._need_project()).runs.metric_history(self.id, key)
        frame = pd.DataFrame(rows, columns=["step", "timestamp", "value"])
        frame["value"] = frame["value"].astype("float64")  # NULL (stored NaN) → NaN
        frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("int64"), unit="ms",
                                            utc=True)
        return frame

    @property
    def environment(self) -> Environment | None:
        """Python version, platform and the installed packages the run ran with."""
        from mloop.repositories import backend

        if self.environment_id is None:
            return None
        return backend(self._need_project()).runs.environment(self.environment_id)

    @property
    def git_diff(self) -> str | None:
        """The uncommitted changes (``git diff HEAD``) when the run started, if any."""
        if self.git_diff_digest is None:
            return None
        return self._need_project().objects.get_bytes(self.git_diff_digest).decode(
            "utf-8", "replace")

    def _need_project(self) -> Project:
        if self._project is None:
            raise RuntimeError("This Run was built without a project; use mloop.get_run().")
        return self._project

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (times as ISO 8601, NaN/inf as strings)."""
        return {
            "id": self.id, "experiment": self.experiment, "experiment_id": self.experiment_id,
            "name": self.name, "status": str(self.status),
            "start_time": iso(self.start_time), "end_time": iso(self.end_time),
            "duration_ms": self.duration_ms, "parent_id": self.parent_id, "user": self.user,
            "command": self.command, "seed": self.seed,
            "git": {"commit": self.git_commit, "branch": self.git_branch,
                    "dirty": self.git_dirty},
            "environment_id": self.environment_id, "deleted": self.deleted,
            "params": dict(self.params), "metrics": {k: json_float(v)
                                                     for k, v in self.metrics.items()},
            "tags": dict(self.tags), "artifacts": [a.to_dict() for a in self.artifacts],
        }


BASE_COLUMNS = ["run_id", "experiment", "name", "status", "start_time", "end_time",
                "parent_id", "user"]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """One page of a search: the parsed filter and order, the scope, the page's bounds."""

    filter: Node | None = None
    order: tuple[OrderKey, ...] = ()
    experiment_ids: tuple[str, ...] | None = None  # None: every experiment
    include_deleted: bool = False
    max_results: int | None = None  # None: every matching run
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Matching runs as tuples of :data:`BASE_COLUMNS`, and their (run_id, key, value)
    tuples per ``metrics``/``params``/``tags``; ``more`` when runs remain after the page."""

    rows: list[Any]  # row tuples (the store's own rows: not copied, pages can be large)
    kv: dict[str, list[tuple[Any, ...]]]
    more: bool


def iso(ms: int | None) -> str | None:
    """Unix milliseconds as ISO 8601 (UTC, to the millisecond); ``None`` stays ``None``."""
    dt = ms_to_datetime(ms)
    return None if dt is None else dt.isoformat(timespec="milliseconds")


class Runs(Protocol):
    """The runs of one project: every statement on ``runs`` and the tables of a run."""

    def resolve_id(self, run_id: str) -> str:
        """The full id of a run given its id or a unique prefix or suffix (>= 6 hex digits)."""
        ...

    def get(self, run_id: str) -> Run:
        """A run (by full id) with params, latest metrics, tags and artifacts."""
        ...

    def newest_id(self) -> str | None:
        """The id of the run created last (ids are time-ordered); None: no run yet."""
        ...

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, int, float | None]]:
        """Every ``(step, timestamp, value)`` point of ``key``, by step then time."""
        ...

    def environment(self, env_id: str) -> Environment | None: ...

    def create(self, run: NewRun, owner: Owner | None, *, tags: Mapping[str, str],
               environment: Mapping[str, Any] | None = None) -> None:
        """Store a RUNNING run with its tags (and its environment row, once) at once;
        ``owner=None``: no process of this host runs it (an mlflow client's run), so it is
        never reaped."""
        ...

    def resume(self, run_id: str, owner: Owner | None) -> ResumedRun:
        """Mark an existing run RUNNING again, owned by ``owner``."""
        ...

    def log_params(self, run_id: str, values: Mapping[str, str]) -> None:
        """Insert params; same value again is a no-op, another one a ParamConflictError."""
        ...

    def set_tags(self, run_id: str, values: Mapping[str, str]) -> None: ...

    def set_seed(self, run_id: str, seed: int) -> None: ...

    def rename(self, run_id: str, name: str) -> None:
        """Give a run another display name (an mlflow client's ``update_run``)."""
        ...

    def set_status(self, run_id: str, status: RunStatus, end_time: int | None = None) -> None:
        """Record how a run ended (and when: now unless given)."""
        ...

    def fail_if_running(self, run_id: str) -> bool:
        """Mark a run still RUNNING as FAILED; whether it was."""
        ...

    def beat(self, run_ids: Iterable[str], owner: Owner, now: int) -> None:
        """Tell readers that ``owner`` still runs ``run_ids``."""
        ...

    def reap(self) -> list[str]:
        """Mark RUNNING runs whose owner died as KILLED; their ids."""
        ...

    def set_deleted(self, run_ids: Iterable[str], deleted: bool) -> None: ...

    def record_artifacts(self, run_id: str, infos: Iterable[ArtifactInfo]) -> None:
        """List files with a run (a path logged again points at its new bytes)."""
        ...

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]: ...

    def write_points(self, points: list[MetricPoint]) -> None:
        """Append metric points and advance each key's latest point."""
        ...

    def search(self, query: SearchQuery) -> SearchPage:
        """One page of runs matching a parsed filter, with their params, metrics, tags."""
        ...


# -- the model-loading path: plain SQL, no SQLAlchemy ----------------------------------

_HEX = frozenset("0123456789abcdef")


def resolve_run_id(project: Project, run_id: str) -> str:
    """The full id of a run given its id, or a unique prefix or suffix of >= 6 hex digits.

    Short ids shown by the CLI are suffixes (see :func:`mloop.core.ids.short_id`).
    """
    from mloop.store.lite import lite  # here: the records above are read by every command

    if project.remote:
        from mloop.repositories import backend

        return backend(project).runs.resolve_id(run_id)
    run_id = run_id.strip().lower() if isinstance(run_id, str) else ""
    hexadecimal = all(c in _HEX for c in run_id)
    if len(run_id) >= 6 and hexadecimal:
        with lite(project).read() as q:
            if len(run_id) == 32:
                if q.all("SELECT id FROM runs WHERE id = :id", {"id": run_id}):
                    return run_id
            else:  # hex digits only: nothing in the pattern is a LIKE wildcard
                for pattern in (run_id + "%", "%" + run_id):
                    found = q.all("SELECT id FROM runs WHERE id LIKE :p LIMIT 2",
                                  {"p": pattern})
                    if len(found) > 1:
                        raise InvalidInputError(f"Run id {run_id!r} matches several runs; "
                                                "give more digits.")
                    if found:
                        return str(found[0]["id"])
    why = ""
    if not hexadecimal:
        why = " (run ids are hexadecimal: 0-9 and a-f)"
    elif len(run_id) < 6:
        why = (f" ({len(run_id)} characters: give at least 6 characters of an id, as the "
               "12 that `mloop runs list` shows)")
    raise RunNotFoundError(f"No run with id {run_id!r}{why}. List runs with `mloop runs list`.")


def list_artifacts(project: Project, run_id: str, path: str = "") -> list[ArtifactInfo]:
    """Artifacts of a run at or under ``path`` (all of them for ``""``)."""
    from mloop.core.paths import safe_relpath
    from mloop.store.lite import lite

    if project.remote:
        from mloop.repositories import backend

        return backend(project).runs.list_artifacts(run_id, path)
    rel = safe_relpath(path, allow_empty=True)
    sql = "SELECT path, size, digest FROM artifacts WHERE run_id = :run"
    params: dict[str, object] = {"run": run_id}
    if rel:  # a prefix compared as text: '%' and '_' in a path are not wildcards
        sql += " AND (path = :rel OR substr(path, 1, :n) = :under)"
        params.update(rel=rel, n=len(rel) + 1, under=rel + "/")
    with lite(project).read() as q:
        rows = q.all(sql + " ORDER BY path", params)
    return [ArtifactInfo(r["path"], r["size"], r["digest"]) for r in rows]
