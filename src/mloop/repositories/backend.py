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
    from mloop.repositories.alerts import Alerts
    from mloop.repositories.evaluations import Evaluations
    from mloop.repositories.feedback import FeedbackLabels
    from mloop.repositories.models import Models
    from mloop.repositories.precompute import PrecomputeTables


class Backend(Protocol):
    """Every stored thing of one project, by repository."""

    # ── tracking ─────────────────────────────────────────────────────────────────


    # ── data and lineage ─────────────────────────────────────────────────────────


    # ── registry, evaluations, precompute, monitoring ────────────────────────────
    @property
    def models(self) -> Models: ...

    @property
    def evaluations(self) -> Evaluations: ...

    @property
    def precompute(self) -> PrecomputeTables: ...

    @property
    def feedback(self) -> FeedbackLabels: ...

    @property
    def alerts(self) -> Alerts: ...


    # ── pipelines and automation ─────────────────────────────────────────────────


class SqlBackend:
    """The repositories over the project's metadata store (SQLite or PostgreSQL)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def __repr__(self) -> str:
        return f"SqlBackend({self.project.root})"

    # ── tracking ─────────────────────────────────────────────────────────────────


    # ── data and lineage ─────────────────────────────────────────────────────────


    # ── registry, evaluations, precompute, monitoring ────────────────────────────
    @cached_property
    def models(self) -> Models:
        from mloop.repositories.models import SqlModels

        return SqlModels(self.project)

    @cached_property
    def evaluations(self) -> Evaluations:
        from mloop.repositories.evaluations import SqlEvaluations

        return SqlEvaluations(self.project)

    @cached_property
    def precompute(self) -> PrecomputeTables:
        from mloop.repositories.precompute import SqlPrecomputeTables

        return SqlPrecomputeTables(self.project)

    @cached_property
    def feedback(self) -> FeedbackLabels:
        from mloop.repositories.feedback import SqlFeedbackLabels

        return SqlFeedbackLabels(self.project)

    @cached_property
    def alerts(self) -> Alerts:
        from mloop.repositories.alerts import SqlAlerts

        return SqlAlerts(self.project)


    # ── pipelines and automation ─────────────────────────────────────────────────

