"""One protocol over every repository, and its SQL implementation.

The public API and the CLI reach stored things through a :class:`Backend`, never through
SQL. :class:`SqlBackend` is the embedded and PostgreSQL implementation; each repository is
created on first use (importing one must not import the others: a CLI command pays only
for what it touches).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.experiments import Experiments
    from mloop.repositories.runs import Runs


class Backend(Protocol):
    """Every stored thing of one project, by repository."""

    # ── tracking ─────────────────────────────────────────────────────────────────
    @property
    def experiments(self) -> Experiments: ...

    @property
    def runs(self) -> Runs: ...


    # ── data and lineage ─────────────────────────────────────────────────────────


    # ── registry, evaluations, precompute, monitoring ────────────────────────────


    # ── pipelines and automation ─────────────────────────────────────────────────


class SqlBackend:
    """The repositories over the project's metadata store (SQLite or PostgreSQL)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def __repr__(self) -> str:
        return f"SqlBackend({self.project.root})"

    # ── tracking ─────────────────────────────────────────────────────────────────
    @cached_property
    def experiments(self) -> Experiments:
        from mloop.repositories.experiments import SqlExperiments

        return SqlExperiments(self.project)

    @cached_property
    def runs(self) -> Runs:
        from mloop.repositories.runs_sql import SqlRuns

        return SqlRuns(self.project)


    # ── data and lineage ─────────────────────────────────────────────────────────


    # ── registry, evaluations, precompute, monitoring ────────────────────────────


    # ── pipelines and automation ─────────────────────────────────────────────────

