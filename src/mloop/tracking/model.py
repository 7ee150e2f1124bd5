"""What tracking returns: plain data objects with no I/O of their own, except Run's lazy views."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mloop.core.clock import ms_to_datetime

if TYPE_CHECKING:
    import pandas as pd

    from mloop.project import Project


class RunStatus(StrEnum):
    """Where a run is: RUNNING, or how it ended."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of runs (``run_count`` excludes deleted runs)."""

    id: str
    name: str
    created_at: int
    description: str | None = None
    run_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": _iso(self.created_at),
                "description": self.description, "runs": self.run_count}


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
        from mloop.tracking.records import metric_history

        return metric_history(self._need_project(), self.id, key)

    @property
    def environment(self) -> Environment | None:
        """Python version, platform and the installed packages the run ran with."""
        from mloop.tracking.records import get_environment

        if self.environment_id is None:
            return None
        return get_environment(self._need_project(), self.environment_id)

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
            "start_time": _iso(self.start_time), "end_time": _iso(self.end_time),
            "duration_ms": self.duration_ms, "parent_id": self.parent_id, "user": self.user,
            "command": self.command, "seed": self.seed,
            "git": {"commit": self.git_commit, "branch": self.git_branch,
                    "dirty": self.git_dirty},
            "environment_id": self.environment_id, "deleted": self.deleted,
            "params": dict(self.params), "metrics": {k: json_float(v)
                                                     for k, v in self.metrics.items()},
            "tags": dict(self.tags), "artifacts": [a.to_dict() for a in self.artifacts],
        }


def json_float(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: spell them as strings, keep finite values as numbers."""
    if value is None:
        return None
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _iso(ms: int | None) -> str | None:
    dt = ms_to_datetime(ms)
    return None if dt is None else dt.isoformat(timespec="milliseconds")
