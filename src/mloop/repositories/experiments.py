"""Experiments: named groups of runs (the ``experiments`` table).

The record is importable without SQLAlchemy (``mloop.tracking.model`` re-exports it and
the CLI's renderers read it); the statements import it when they first run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mloop.errors import ExperimentNotFoundError
from mloop.repositories.runs import iso

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["Experiment", "Experiments", "SqlExperiments"]


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of runs (``run_count`` excludes deleted runs)."""

    id: str
    name: str
    created_at: int
    description: str | None = None
    run_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": iso(self.created_at),
                "description": self.description, "runs": self.run_count}


class Experiments(Protocol):
    """The experiments of one project."""

    def get_or_create(self, name: str) -> Experiment:
        """The experiment called ``name``, created if missing (safe under concurrency)."""
        ...

    def get(self, name_or_id: str) -> Experiment:
        """The experiment with this name or id; raises :class:`ExperimentNotFoundError`."""
        ...

    def all(self) -> list[Experiment]:
        """Every experiment with its number of (not deleted) runs, oldest first."""
        ...


class SqlExperiments:
    """Experiments in the metadata store, through SQLAlchemy Core."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def get_or_create(self, name: str) -> Experiment:
        from sqlalchemy import select

        from mloop.core.clock import now_ms
        from mloop.core.ids import new_id
        from mloop.store.schema import experiments

        store = self.project.store
        with store.read() as conn:
            row = conn.execute(select(experiments).where(experiments.c.name == name)).first()
        if row is None:
            with store.write() as conn:
                conn.execute(store.insert(experiments).values(
                    id=new_id(), name=name, created_at=now_ms()).on_conflict_do_nothing())
                row = conn.execute(select(experiments).where(experiments.c.name == name)).one()
        return Experiment(row.id, row.name, row.created_at, row.description)

    def get(self, name_or_id: str) -> Experiment:
        from sqlalchemy import or_, select

        from mloop.store.schema import experiments

        with self.project.store.read() as conn:
            row = conn.execute(select(experiments).where(
                or_(experiments.c.name == name_or_id, experiments.c.id == name_or_id))).first()
        if row is None:
            raise ExperimentNotFoundError(
                f"No experiment named {name_or_id!r}. List them with `mloop experiments list`.")
        return Experiment(row.id, row.name, row.created_at, row.description)

    def all(self) -> list[Experiment]:
        from sqlalchemy import func, select

        from mloop.store.schema import experiments, runs

        counts = (select(runs.c.experiment_id, func.count().label("n"))
                  .where(runs.c.deleted_at.is_(None)).group_by(runs.c.experiment_id).subquery())
        query = (select(experiments, func.coalesce(counts.c.n, 0).label("n"))
                 .outerjoin(counts, counts.c.experiment_id == experiments.c.id)
                 .where(experiments.c.deleted_at.is_(None)).order_by(experiments.c.created_at))
        with self.project.store.read() as conn:
            return [Experiment(r.id, r.name, r.created_at, r.description, r.n)
                    for r in conn.execute(query)]
