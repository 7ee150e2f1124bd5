"""Nonsensical but well-typed arguments are the caller's error on every Backend (SQLite,
PostgreSQL, over HTTP): the classes of 500 the server's OpenAPI fuzz test found."""

from __future__ import annotations

import pytest

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.owner import this_process
from mloop.errors import (
    ConflictError,
    ExperimentNotFoundError,
    InvalidInputError,
    RunNotFoundError,
)
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.automation import Decision, DecisionOutcome
from mloop.repositories.runs import ArtifactInfo, NewRun, SearchQuery
from mloop.tracking.filter import BoolOp, Comparison, OrderKey, parse_filter


def _new_run(project: Project, **changes: object) -> NewRun:
    exp = backend(project).experiments.get_or_create("exp")
    values: dict[str, object] = {
        "id": new_id(), "experiment_id": exp.id, "name": "r", "start_time": now_ms(),
        "parent_id": None, "user": "ann", "command": "train.py", "seed": 7,
        "git_commit": None, "git_branch": None, "git_dirty": False,
        "git_diff_digest": None, "environment_id": None, **changes}
    return NewRun(**values)  # type: ignore[arg-type]


# ── a reference to something that does not exist, a duplicate id ─────────────────────

def test_writes_about_a_missing_run_say_so(project: Project) -> None:
    runs = backend(project).runs
    with pytest.raises(RunNotFoundError, match="nope"):
        runs.log_params("nope", {"lr": "0.1"})
    with pytest.raises(RunNotFoundError, match="nope"):
        runs.set_tags("nope", {"team": "risk"})
    with pytest.raises(RunNotFoundError, match="nope"):
        runs.record_artifacts("nope", [ArtifactInfo("model.pkl", 3, "ab" * 32)])
    with pytest.raises(RunNotFoundError, match="nope"):
        runs.write_points([("nope", "loss", 0, now_ms(), 0.5)])


def test_a_run_of_a_missing_experiment_or_parent_is_not_found(project: Project) -> None:
    runs = backend(project).runs
    with pytest.raises(ExperimentNotFoundError, match="no-such-exp"):
        runs.create(_new_run(project, experiment_id="no-such-exp"), this_process(), tags={})
    with pytest.raises(RunNotFoundError, match="no-such-parent"):
        runs.create(_new_run(project, parent_id="no-such-parent"), this_process(), tags={})


def test_a_duplicate_run_id_is_a_conflict(project: Project) -> None:
    runs = backend(project).runs
    run = _new_run(project)
    runs.create(run, this_process(), tags={"a": "1"})
    with pytest.raises(ConflictError, match=run.id):
        runs.create(run, this_process(), tags={})
    assert runs.get(run.id).tags == {"a": "1"}  # the first one is intact


def test_duplicate_pipeline_run_and_decision_ids_are_conflicts(project: Project) -> None:
    repos = backend(project)
    start = {"executor": "local", "params": {}, "inputs": {}, "trigger": None,
             "started_at": 1, "owner": this_process()}
    repos.pipeline_runs.start("pr1", "train", **start)  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match="pr1"):
        repos.pipeline_runs.start("pr1", "train", **start)  # type: ignore[arg-type]
    decision = Decision("d1", "train", "manual", DecisionOutcome.FAILED, [], 1)
    repos.automation.record(decision)
    with pytest.raises(ConflictError, match="d1"):
        repos.automation.record(decision)


# ── search trees that did not come from the parser ──────────────────────────────────

@pytest.mark.parametrize(("tree", "order"), [
    (Comparison("nonsense", "acc", "=", 1.0, 0), ()),
    (Comparison("attributes", "no_such_column", "=", "x", 0), ()),
    (Comparison("metrics", "acc", "~", 1.0, 0), ()),
    (Comparison("metrics", "acc", "=", (1.0, 2.0), 0), ()),
    (Comparison("metrics", "acc", "in", (), 0), ()),
    (Comparison("metrics", "acc", ">", "high", 0), ()),
    (Comparison("params", "model", "<", None, 0), ()),
    (Comparison("metrics", "acc", "like", "a%", 0), ()),
    (BoolOp("xor", (Comparison("params", "a", "=", "1", 0),)), ()),
    (BoolOp("and", ()), ()),
    (None, (OrderKey("", "x", False),)),
    (None, (OrderKey("attributes", "secret", True),)),
], ids=["entity", "attribute", "operator", "list-for-=", "empty-in", "text-for-metric",
        "null-order", "like-metric", "xor", "empty-and", "order-entity", "order-attribute"])
def test_a_malformed_search_tree_is_invalid_input(project: Project, tree: object,
                                                  order: tuple[OrderKey, ...]) -> None:
    with pytest.raises(InvalidInputError, match="Invalid search filter"):
        backend(project).runs.search(SearchQuery(filter=tree, order=order))  # type: ignore[arg-type]


def test_a_deep_search_tree_is_refused_and_parsed_ones_pass(project: Project) -> None:
    runs = backend(project).runs
    node = Comparison("params", "a", "=", "1", 0)
    for _ in range(40):
        node = BoolOp("or", (node, Comparison("params", "b", "=", "2", 0)))
    with pytest.raises(InvalidInputError, match="nested"):
        runs.search(SearchQuery(filter=node))
    parsed = parse_filter("metrics.acc > 0.5 and attributes.run_name = 'x' or "
                          "tags.t IN ('a', 'b') and params.p NOT LIKE 'q%'")
    assert runs.search(SearchQuery(filter=parsed)).rows == []


@pytest.mark.parametrize("page", [{"offset": -1}, {"max_results": -5}])
def test_a_negative_search_page_is_invalid_input(project: Project, page: dict[str, int]) -> None:
    with pytest.raises(InvalidInputError, match=">= 0"):
        backend(project).runs.search(SearchQuery(**page))  # type: ignore[arg-type]


# ── values the databases refuse or read differently ─────────────────────────────────

def test_a_negative_limit_is_invalid_input_on_every_store(project: Project) -> None:
    repos = backend(project)
    calls = [lambda: repos.alerts.list(limit=-1),
             lambda: repos.evaluations.of_models(["models:/m/1"], limit=-1),
             lambda: repos.deployments.events("d", limit=-1),
             lambda: repos.pipeline_runs.recent(limit=-1),
             lambda: repos.automation.history(limit=-1)]
    for call in calls:
        with pytest.raises(InvalidInputError, match="-1"):
            call()
    assert repos.alerts.list(limit=0) == []


def test_an_integer_beyond_a_column_is_never_a_server_error(project: Project) -> None:
    """PostgreSQL refuses 2**40 for an INTEGER column (InvalidInputError); SQLite has no
    such column width and finds nothing."""
    traffic = backend(project).traffic
    if project.settings.store_uri.startswith("postgresql"):
        with pytest.raises(InvalidInputError, match="refused a value"):
            traffic.counts("d", 2**40)
    else:
        assert traffic.counts("d", 2**40) == {}


@pytest.mark.parametrize("environment", [
    {},
    {"id": "e1", "python": "3.12", "platform": "linux", "packages": ""},
    {"id": "e1", "python": "3.12", "platform": "linux", "packages": "", "created_at": 1,
     "extra": "x"},
    {"id": "e1", "python": ["3.12"], "platform": "linux", "packages": "", "created_at": 1},
    {"id": "e1", "python": "3.12", "platform": "linux", "packages": "", "created_at": True},
], ids=["empty", "missing", "unknown-field", "wrong-type", "bool-time"])
def test_a_malformed_environment_row_is_invalid_input(project: Project,
                                                      environment: dict[str, object]) -> None:
    run = _new_run(project, environment_id="e1")
    with pytest.raises(InvalidInputError, match="environment"):
        backend(project).runs.create(run, this_process(), tags={}, environment=environment)


@pytest.mark.parametrize("name", ["", " churn", "a/b", "x" * 201])
def test_a_model_version_is_never_stored_under_a_name_it_cannot_be_found_by(
        project: Project, name: str) -> None:
    models = backend(project).models
    with pytest.raises(InvalidInputError, match="model name"):
        models.register(name, run_id="0", artifact_path="model", manifest="{}",
                        flavor="sklearn", description=None, message=None)
    assert models.latest() == []
