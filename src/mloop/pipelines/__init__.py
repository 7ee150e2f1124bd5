"""Pipelines: steps wired by their signatures, cached by content, run locally or on Dask.

>>> @mloop.step(outputs="features")
... def prepare(raw: mloop.Dataset) -> pd.DataFrame:                # doctest: +SKIP
...     return raw.load().dropna()
>>> pipe = mloop.Pipeline("churn-training", steps=[prepare, train])  # doctest: +SKIP
>>> pipe.run(raw="train@latest", params={"C": 0.5})                 # doctest: +SKIP

See :mod:`mloop.pipelines.engine` for what the cache key covers and how runs are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.pipelines.dag import Pipeline
from mloop.pipelines.step import Dataset, Model, Report, Step, step

if TYPE_CHECKING:
    from mloop.pipelines.engine import PipelineRun
    from mloop.project import Project

__all__ = ["Dataset", "Model", "Pipeline", "Report", "Step", "get_run", "list_runs", "run",
           "step"]


def _p(project: Project | None) -> Project:
    from mloop.project import current_project

    return project if project is not None else current_project()


def run(name: str | None = None, *, params: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None, executor: str = "local",
        scheduler: str | None = None, force: bool = False, from_step: str | None = None,
        project: Project | None = None) -> PipelineRun:
    """Run the project's pipeline ``name`` (None: the stages of mloop.yaml)."""
    from mloop.pipelines.engine import run_pipeline
    from mloop.pipelines.registry import find_pipeline

    p = _p(project)
    return run_pipeline(p, find_pipeline(p, name), inputs=inputs, params=params,
                        executor=executor, scheduler=scheduler, force=force,
                        from_step=from_step)


def list_runs(pipeline: str | None = None, *, limit: int = 20,
              project: Project | None = None) -> list[dict[str, Any]]:
    """Recent pipeline runs, newest first (each with its steps' statuses)."""
    from mloop.pipelines.history import list_runs as listing

    return listing(_p(project), pipeline, limit=limit)


def get_run(run_id: str, *, project: Project | None = None) -> dict[str, Any]:
    """One pipeline run: its steps, their statuses, errors, outputs and logs."""
    from mloop.pipelines.history import get_run as one

    return one(_p(project), run_id)
