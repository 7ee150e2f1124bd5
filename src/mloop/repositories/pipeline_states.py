"""Pipeline and step statuses, and the no-op run's one write: the standard library only.

``mloop pipeline run`` of an unchanged pipeline answers in a few tens of milliseconds
(:mod:`mloop.quick`), before SQLAlchemy, ``typing`` or ``dataclasses`` are imported; this
module is all of the repository layer that path loads. Everything else about pipeline
runs is in :mod:`mloop.repositories.pipelines`, which re-exports these names.
"""

from __future__ import annotations

from enum import StrEnum

TYPE_CHECKING = False  # importing typing costs the no-op path ~3 ms
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


class PipelineStatus(StrEnum):
    """A pipeline run's status; ``killed``: its engine process died while it ran."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"


class StepStatus(StrEnum):
    """A step's status in one run (``pending`` only in memory, before it is decided)."""

    PENDING = "pending"
    RAN = "ran"
    CACHED = "cached"
    FAILED = "failed"
    NOT_RUN = "not_run"

    @property
    def done(self) -> bool:
        """It produced its outputs (ran, or restored from the cache)."""
        return self in (StepStatus.RAN, StepStatus.CACHED)

    @property
    def blocks(self) -> bool:
        """Its downstream steps cannot run (it failed, or did not run)."""
        return self in (StepStatus.FAILED, StepStatus.NOT_RUN)


def record_cached_run(db: Path, run_id: str, pipeline: str, steps: list[dict[str, Any]], *,
                      head: str, now: int) -> bool:
    """The no-op run (every step ``cached``), written over stdlib ``sqlite3`` at once.

    ``steps``: ``{"step", "key", "run_id", "outputs"}`` (outputs as JSON text). False
    when the embedded store cannot take it here (not at schema ``head``, locked past
    the timeout, a schema this release does not know): the full engine decides then.
    """
    import sqlite3

    try:
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if version is None or version[0] != head:
            return False
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO pipeline_runs (id, pipeline, status, executor, params, "
                     "inputs, started_at, finished_at) VALUES (?, ?, ?, 'local', '{}', '{}', "
                     "?, ?)", (run_id, pipeline, PipelineStatus.SUCCEEDED.value, now, now))
        conn.executemany(
            "INSERT INTO pipeline_steps (pipeline_run_id, step, status, cache_key, attempts, "
            "run_id, seconds, outputs, started_at, finished_at) VALUES "
            "(?, ?, ?, ?, 0, ?, 0, ?, ?, ?)",
            [(run_id, s["step"], StepStatus.CACHED.value, s["key"], s["run_id"],
              s["outputs"], now, now) for s in steps])
        conn.execute("COMMIT")
    except sqlite3.Error:
        return False  # e.g. a schema this snapshot does not know: the full path decides
    finally:
        conn.close()
    return True
