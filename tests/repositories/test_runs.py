"""The runs repository's contract, through the Backend protocol, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from mloop import repositories
from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.owner import Owner, this_process
from mloop.errors import InvalidInputError, ParamConflictError, RunNotFoundError
from mloop.project import Project
from mloop.repositories.runs import ArtifactInfo, NewRun, Runs, RunStatus, SearchQuery
from mloop.tracking.filter import parse_filter, parse_order_by


def _runs(project: Project) -> Runs:
    return repositories.backend(project).runs


def _new(project: Project, experiment: str = "exp", **changes: object) -> NewRun:
    exp = repositories.backend(project).experiments.get_or_create(experiment)
    run = NewRun(id=new_id(), experiment_id=exp.id, name="r", start_time=now_ms(),
                 parent_id=None, user="ann", command="train.py", seed=7, git_commit="abc",
                 git_branch="main", git_dirty=False, git_diff_digest=None,
                 environment_id=None)
    return replace(run, **changes)  # type: ignore[arg-type]


def _created(project: Project, **changes: object) -> str:
    run = _new(project, **changes)
    _runs(project).create(run, this_process(), tags={"team": "risk"})
    return run.id


def _dead_owner() -> Owner:
    me = this_process()
    if me.start is None:
        pytest.skip("no /proc here: a dead owner cannot be told apart")
    return Owner(me.host, me.pid, me.start.rpartition(":")[0] + ":1")


def test_newest_id_is_the_run_created_last(project: Project) -> None:
    assert _runs(project).newest_id() is None
    _created(project)
    last = _created(project)
    assert _runs(project).newest_id() == last


def test_create_then_get_round_trips(project: Project) -> None:
    env = {"id": "e1", "python": "3.12", "platform": "linux", "packages": "a==1\nb==2\n",
           "created_at": now_ms()}
    run = _new(project, environment_id="e1")
    _runs(project).create(run, this_process(), tags={"team": "risk"}, environment=env)
    got = _runs(project).get(run.id)
    assert (got.id, got.experiment, got.name, got.status) == (run.id, "exp", "r",
                                                               RunStatus.RUNNING)
    assert (got.user, got.command, got.seed, got.git_commit) == ("ann", "train.py", 7, "abc")
    assert got.tags == {"team": "risk"} and got.params == {} and not got.deleted
    stored = _runs(project).environment("e1")
    assert stored is not None and stored.packages == ("a==1", "b==2")
    assert _runs(project).environment("missing") is None


def test_get_and_resolve_unknown_runs(project: Project) -> None:
    with pytest.raises(RunNotFoundError):
        _runs(project).get("0" * 32)
    with pytest.raises(RunNotFoundError):
        _runs(project).resolve_id("abcdef")
    with pytest.raises(RunNotFoundError, match="hexadecimal"):
        _runs(project).resolve_id("xyz123")
    with pytest.raises(RunNotFoundError, match="at least 6"):
        _runs(project).resolve_id("abc")


def test_resolve_by_full_id_and_suffix(project: Project) -> None:
    run_id = _created(project)
    assert _runs(project).resolve_id(run_id) == run_id
    assert _runs(project).resolve_id(run_id[-12:].upper()) == run_id
    assert _runs(project).resolve_id(run_id[:12]) == run_id


def test_params_are_immutable(project: Project) -> None:
    run_id = _created(project)
    runs = _runs(project)
    runs.log_params(run_id, {"lr": "0.1", "depth": "3"})
    runs.log_params(run_id, {"lr": "0.1"})  # same value again: nothing to do
    with pytest.raises(ParamConflictError, match="lr"):
        runs.log_params(run_id, {"lr": "0.5", "new": "x"})
    assert runs.get(run_id).params == {"lr": "0.1", "depth": "3"}


def test_tags_seed_and_artifacts_are_replaced(project: Project) -> None:
    run_id = _created(project)
    runs = _runs(project)
    runs.set_tags(run_id, {"team": "ops", "stage": "dev"})
    runs.set_seed(run_id, 42)
    runs.record_artifacts(run_id, [ArtifactInfo("a/x.txt", 1, "1" * 64),
                                   ArtifactInfo("a/y.txt", 2, "2" * 64),
                                   ArtifactInfo("ab.txt", 3, "3" * 64)])
    runs.record_artifacts(run_id, [ArtifactInfo("a/x.txt", 5, "5" * 64)])
    got = runs.get(run_id)
    assert got.tags == {"team": "ops", "stage": "dev"} and got.seed == 42
    assert [a.path for a in runs.list_artifacts(run_id, "a")] == ["a/x.txt", "a/y.txt"]
    assert runs.list_artifacts(run_id, "a/x.txt") == [ArtifactInfo("a/x.txt", 5, "5" * 64)]
    assert len(got.artifacts) == 3 and runs.list_artifacts(run_id, "b") == []


def test_points_history_and_latest(project: Project) -> None:
    run_id = _created(project)
    runs = _runs(project)
    runs.write_points([(run_id, "loss", 1, 10, 0.5), (run_id, "loss", 0, 20, 0.9)])
    runs.write_points([(run_id, "loss", 0, 30, 0.8), (run_id, "nan", 0, 10, None)])
    assert runs.metric_history(run_id, "loss") == [(0, 20, 0.9), (0, 30, 0.8), (1, 10, 0.5)]
    latest = runs.get(run_id).metrics
    assert latest["loss"] == 0.5 and math.isnan(latest["nan"])  # the highest step wins


def test_status_transitions(project: Project) -> None:
    run_id = _created(project)
    runs = _runs(project)
    runs.set_status(run_id, RunStatus.FINISHED, end_time=123)
    got = runs.get(run_id)
    assert got.status is RunStatus.FINISHED and got.end_time == 123
    assert runs.fail_if_running(run_id) is False  # an ended run keeps how it ended
    resumed = runs.resume(run_id, this_process())
    assert resumed.last_steps == {} and resumed.params == {}
    assert runs.get(run_id).status is RunStatus.RUNNING and runs.get(run_id).end_time is None
    assert runs.fail_if_running(run_id) is True
    assert runs.get(run_id).status is RunStatus.FAILED


def test_resume_gives_last_steps_and_params(project: Project) -> None:
    run_id = _created(project)
    runs = _runs(project)
    runs.log_params(run_id, {"lr": "0.1"})
    runs.write_points([(run_id, "loss", 4, 10, 0.5)])
    runs.set_status(run_id, RunStatus.KILLED)
    resumed = runs.resume(run_id, this_process())
    assert resumed.last_steps == {"loss": 4} and resumed.params == {"lr": "0.1"}


def test_a_dead_owner_is_reaped_and_a_beat_revives(project: Project) -> None:
    runs = _runs(project)
    dead = _new(project)
    runs.create(dead, _dead_owner(), tags={})
    alive = _created(project)
    assert runs.reap() == [dead.id]
    assert runs.get(dead.id).status is RunStatus.KILLED
    assert runs.get(alive).status is RunStatus.RUNNING and runs.reap() == []
    runs.set_status(alive, RunStatus.KILLED)  # as a reader on another host might
    runs.beat([alive], Owner("elsewhere", 1, None), now_ms())  # not its owner: left alone
    assert runs.get(alive).status is RunStatus.KILLED
    runs.beat([alive], this_process(), now_ms())
    assert runs.get(alive).status is RunStatus.RUNNING


def test_search_filters_orders_and_pages(project: Project) -> None:
    runs = _runs(project)
    ids = [_created(project) for _ in range(3)]
    for i, run_id in enumerate(ids):
        runs.write_points([(run_id, "acc", 0, 1, 0.5 + i / 10)])
        runs.log_params(run_id, {"model": "logreg" if i else "tree"})
    query = SearchQuery(parse_filter("metrics.acc > 0.55 and params.model = 'logreg'"),
                        tuple(parse_order_by(["metrics.acc DESC"])), max_results=1)
    first = runs.search(query)
    assert [r[0] for r in first.rows] == [ids[2]] and first.more
    assert {r[1] for r in first.kv["params"]} == {"model"}
    second = runs.search(replace(query, offset=1))
    assert [r[0] for r in second.rows] == [ids[1]] and not second.more


def test_deleted_runs_leave_searches(project: Project) -> None:
    runs = _runs(project)
    kept, gone = _created(project), _created(project)
    runs.set_deleted([gone], True)
    assert runs.get(gone).deleted
    assert [r[0] for r in runs.search(SearchQuery()).rows] == [kept]
    assert len(runs.search(SearchQuery(include_deleted=True)).rows) == 2
    runs.set_deleted([gone], False)
    assert len(runs.search(SearchQuery()).rows) == 2


def test_search_in_no_experiment_finds_nothing(project: Project) -> None:
    _created(project)
    assert _runs(project).search(SearchQuery(experiment_ids=())).rows == []


def test_unsupported_operator_is_bad_input(project: Project) -> None:
    from mloop.tracking.filter import Comparison

    odd = Comparison("attributes", "status", "~", "x", 0)  # no parser makes this
    with pytest.raises(InvalidInputError, match="operator"):
        _runs(project).search(SearchQuery(odd))


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../b", "a\x00b",
                                  "a/./b", ""])
def test_artifact_paths_outside_the_run_or_unnormalised_are_refused(project, path) -> None:
    from mloop.errors import UnsafePathError

    run_id = _created(project)
    with pytest.raises((InvalidInputError, UnsafePathError)):
        _runs(project).record_artifacts(run_id, [ArtifactInfo(path, 1, "a" * 64)])
    with pytest.raises(InvalidInputError):
        _runs(project).record_artifacts(run_id, [ArtifactInfo("ok.txt", 1, "not-a-digest")])
    assert _runs(project).list_artifacts(run_id) == []


def test_a_run_without_owner_is_never_reaped(project: Project) -> None:
    runs = _runs(project)
    orphan = _new(project)  # an mlflow client's run, created through the server
    runs.create(orphan, None, tags={})
    runs.create(_new(project), _dead_owner(), tags={})
    assert orphan.id not in runs.reap()
    runs.resume(orphan.id, None)
    assert runs.get(orphan.id).status is RunStatus.RUNNING and runs.reap() == []


def test_rename(project: Project) -> None:
    run_id = _created(project)
    _runs(project).rename(run_id, "better name")
    assert _runs(project).get(run_id).name == "better name"
