"""Experiments: named groups of runs."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.uris import check_name
from mloop.errors import ExperimentNotFoundError
from mloop.project import Project
from mloop.store.schema import experiments, runs
from mloop.tracking.model import Experiment

DEFAULT_EXPERIMENT = "default"


def get_or_create_experiment(project: Project, name: str) -> Experiment:
    """The experiment called ``name``, created if missing (safe under concurrency)."""
    check_name(name, "experiment name")
    store = project.store
    with store.read() as conn:
        row = conn.execute(select(experiments).where(experiments.c.name == name)).first()
    if row is None:
        with store.write() as conn:
            conn.execute(store.insert(experiments).values(
                id=new_id(), name=name, created_at=now_ms()).on_conflict_do_nothing())
            row = conn.execute(select(experiments).where(experiments.c.name == name)).one()
    return Experiment(row.id, row.name, row.created_at, row.description)


def get_experiment(project: Project, name_or_id: str) -> Experiment:
    """The experiment with this name or id; raises :class:`ExperimentNotFoundError`."""
    with project.store.read() as conn:
        row = conn.execute(select(experiments).where(
            or_(experiments.c.name == name_or_id, experiments.c.id == name_or_id))).first()
    if row is None:
        raise ExperimentNotFoundError(
            f"No experiment named {name_or_id!r}. List them with `mloop experiments list`.")
    return Experiment(row.id, row.name, row.created_at, row.description)


def list_experiments(project: Project) -> list[Experiment]:
    """Every experiment with its number of (not deleted) runs, oldest first."""
    counts = (select(runs.c.experiment_id, func.count().label("n"))
              .where(runs.c.deleted_at.is_(None)).group_by(runs.c.experiment_id).subquery())
    query = (select(experiments, func.coalesce(counts.c.n, 0).label("n"))
             .outerjoin(counts, counts.c.experiment_id == experiments.c.id)
             .where(experiments.c.deleted_at.is_(None)).order_by(experiments.c.created_at))
    with project.store.read() as conn:
        return [Experiment(r.id, r.name, r.created_at, r.description, r.n)
                for r in conn.execute(query)]
