"""The experiments repository's contract, through the Backend protocol, on both databases."""

from __future__ import annotations

import pytest

from mloop import repositories
from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.owner import this_process
from mloop.errors import ExperimentNotFoundError
from mloop.project import Project
from mloop.repositories.experiments import Experiments
from mloop.repositories.runs import NewRun


def _experiments(project: Project) -> Experiments:
    return repositories.backend(project).experiments


def _run_in(project: Project, experiment_id: str) -> str:
    run = NewRun(id=new_id(), experiment_id=experiment_id, name="r", start_time=now_ms(),
                 parent_id=None, user=None, command=None, seed=None, git_commit=None,
                 git_branch=None, git_dirty=None, git_diff_digest=None, environment_id=None)
    repositories.backend(project).runs.create(run, this_process(), tags={})
    return run.id


def test_get_or_create_is_idempotent(project: Project) -> None:
    first = _experiments(project).get_or_create("churn")
    again = _experiments(project).get_or_create("churn")
    assert first == again and first.name == "churn" and first.run_count == 0


def test_get_by_name_or_id(project: Project) -> None:
    made = _experiments(project).get_or_create("churn")
    assert _experiments(project).get("churn").id == made.id
    assert _experiments(project).get(made.id).name == "churn"


def test_an_unknown_experiment_is_not_found(project: Project) -> None:
    with pytest.raises(ExperimentNotFoundError, match="nope"):
        _experiments(project).get("nope")


def test_all_counts_runs_that_are_not_deleted(project: Project) -> None:
    a = _experiments(project).get_or_create("a")
    b = _experiments(project).get_or_create("b")
    kept, gone = _run_in(project, a.id), _run_in(project, a.id)
    repositories.backend(project).runs.set_deleted([gone], True)
    listed = {e.name: e.run_count for e in _experiments(project).all()}
    assert listed == {"a": 1, "b": 0} and kept
    assert [e.name for e in _experiments(project).all()] == ["a", "b"]  # oldest first
    assert b.to_dict()["runs"] == 0
