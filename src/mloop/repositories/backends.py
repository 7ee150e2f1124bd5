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
    from mloop.repositories.api_tokens import ApiTokens
    from mloop.repositories.audit import Audit
    from mloop.repositories.automation import Automation
    from mloop.repositories.datasets import Datasets, StatCache, StoredRemotes
    from mloop.repositories.deployments import Deployments
    from mloop.repositories.evaluations import Evaluations
    from mloop.repositories.experiments import Experiments
    from mloop.repositories.feedback import FeedbackLabels
    from mloop.repositories.lineage import LineageEdges
    from mloop.repositories.models import Models
    from mloop.repositories.pipelines import PipelineRuns
    from mloop.repositories.precompute import PrecomputeTables
    from mloop.repositories.prediction_segments import PredictionSegments
    from mloop.repositories.references import BlobReferences
    from mloop.repositories.runs import Runs
    from mloop.repositories.traffic import Traffic


class Backend(Protocol):
    """Every stored thing of one project, by repository."""

    # ── tracking ─────────────────────────────────────────────────────────────────
    @property
    def experiments(self) -> Experiments: ...

    @property
    def runs(self) -> Runs: ...


    # ── data and lineage ─────────────────────────────────────────────────────────
    @property
    def datasets(self) -> Datasets: ...

    @property
    def stat_cache(self) -> StatCache: ...

    @property
    def stored_remotes(self) -> StoredRemotes: ...

    @property
    def lineage(self) -> LineageEdges: ...

    @property
    def blob_references(self) -> BlobReferences: ...


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


    # ── deployments ──────────────────────────────────────────────────────────────
    @property
    def deployments(self) -> Deployments: ...

    @property
    def traffic(self) -> Traffic: ...

    @property
    def prediction_segments(self) -> PredictionSegments: ...


    # ── pipelines and automation ─────────────────────────────────────────────────
    @property
    def pipeline_runs(self) -> PipelineRuns: ...

    @property
    def automation(self) -> Automation: ...


    # ── the team server's identities ─────────────────────────────────────────────
    @property
    def api_tokens(self) -> ApiTokens: ...

    @property
    def audit(self) -> Audit: ...


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
    @cached_property
    def datasets(self) -> Datasets:
        from mloop.repositories.datasets import SqlDatasets
        return SqlDatasets(self.project)

    @cached_property
    def stat_cache(self) -> StatCache:
        from mloop.repositories.datasets import SqlStatCache
        return SqlStatCache(self.project)

    @cached_property
    def stored_remotes(self) -> StoredRemotes:
        from mloop.repositories.datasets import SqlStoredRemotes
        return SqlStoredRemotes(self.project)

    @cached_property
    def lineage(self) -> LineageEdges:
        from mloop.repositories.lineage import SqlLineageEdges
        return SqlLineageEdges(self.project)

    @cached_property
    def blob_references(self) -> BlobReferences:
        from mloop.repositories.references import SqlBlobReferences
        return SqlBlobReferences(self.project)


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


    # ── deployments ──────────────────────────────────────────────────────────────
    @cached_property
    def deployments(self) -> Deployments:
        from mloop.repositories.deployments import SqlDeployments

        return SqlDeployments(self.project)

    @cached_property
    def traffic(self) -> Traffic:
        from mloop.repositories.traffic import SqlTraffic

        return SqlTraffic(self.project)

    @cached_property
    def prediction_segments(self) -> PredictionSegments:
        from mloop.repositories.prediction_segments import SqlPredictionSegments

        return SqlPredictionSegments(self.project)


    # ── pipelines and automation ─────────────────────────────────────────────────
    @cached_property
    def pipeline_runs(self) -> PipelineRuns:
        from mloop.repositories.pipelines import SqlPipelineRuns

        return SqlPipelineRuns(self.project)

    @cached_property
    def automation(self) -> Automation:
        from mloop.repositories.automation import SqlAutomation

        return SqlAutomation(self.project)


    # ── the team server's identities ─────────────────────────────────────────────
    @cached_property
    def api_tokens(self) -> ApiTokens:
        from mloop.repositories.api_tokens import SqlApiTokens

        return SqlApiTokens(self.project)

    @cached_property
    def audit(self) -> Audit:
        from mloop.repositories.audit import SqlAudit

        return SqlAudit(self.project)
