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
    from mloop.repositories.automation import Automation
    from mloop.repositories.pipelines import PipelineRuns


class Backend(Protocol):
    """Every stored thing of one project, by repository."""

    # ── tracking ─────────────────────────────────────────────────────────────────


    # ── data and lineage ─────────────────────────────────────────────────────────


    # ── registry, evaluations, precompute, monitoring ────────────────────────────


    # ── pipelines and automation ─────────────────────────────────────────────────
    @property
    def pipeline_runs(self) -> PipelineRuns: ...

    @property
    def automation(self) -> Automation: ...


class SqlBackend:
    """The repositories over the project's metadata store (SQLite or PostgreSQL)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def __repr__(self) -> str:
        return f"SqlBackend({self.project.root})"

    # ── tracking ─────────────────────────────────────────────────────────────────


    # ── data and lineage ─────────────────────────────────────────────────────────


    # ── registry, evaluations, precompute, monitoring ────────────────────────────


    # ── pipelines and automation ─────────────────────────────────────────────────
    @cached_property
    def pipeline_runs(self) -> PipelineRuns:
        from mloop.repositories.pipelines import SqlPipelineRuns

        return SqlPipelineRuns(self.project)

    @cached_property
    def automation(self) -> Automation:
        from mloop.repositories.automation import SqlAutomation

        return SqlAutomation(self.project)
