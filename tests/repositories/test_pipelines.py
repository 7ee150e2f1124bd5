"""The pipeline runs repository's contract, through the Backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from mloop.core.owner import Owner, this_process
from mloop.errors import NotFoundError
from mloop.repositories import backend as repositories
from mloop.repositories.pipelines import (
    PipelineRuns,
    PipelineStatus,
    StepRecord,
    StepStatus,
    count_steps,
    describe_counts,
)

T0 = 1_700_000_000_000


def _runs(project) -> PipelineRuns:
    return repositories(project).pipeline_runs


def _start(runs: PipelineRuns, run_id: str, *, pipeline: str = "train", t: int = T0,
           owner: Owner | None = None) -> None:
    runs.start(run_id, pipeline, executor="local", params={"C": 0.5},
               inputs={"raw": {"kind": "dataset"}}, trigger="manual", started_at=t,
               owner=owner or this_process())


def test_a_run_round_trips_with_its_steps(project):
    runs = _runs(project)
    _start(runs, "run000000000001")
    runs.save_step(StepRecord("run000000000001", "prep", StepStatus.RAN, "k1", 1, "r1", 0.5,
                              outputs={"x": {"kind": "frame"}}, finished_at=T0 + 1))
    runs.save_step(StepRecord("run000000000001", "fit", StepStatus.FAILED, "k2", 3,
                              error="boom", finished_at=T0 + 2))
    got = runs.get("run000000000001")
    assert got.status == PipelineStatus.RUNNING and got.params == {"C": 0.5}
    assert got.inputs == {"raw": {"kind": "dataset"}} and got.trigger == "manual"
    assert got.uri == "pipelines:/train/run000000000001"
    assert [(s.step, s.status, s.attempts) for s in got.steps] == [
        ("prep", StepStatus.RAN, 1), ("fit", StepStatus.FAILED, 3)]
    assert got.steps[0].outputs == {"x": {"kind": "frame"}} and got.steps[1].error == "boom"
    assert got.step_counts == {"ran": 1, "failed": 1}


def test_saving_a_step_again_replaces_it(project):
    runs = _runs(project)
    _start(runs, "run000000000002")
    runs.save_step(StepRecord("run000000000002", "fit", StepStatus.FAILED, "k", 1))
    runs.save_step(StepRecord("run000000000002", "fit", StepStatus.RAN, "k", 2, "r"))
    (step,) = runs.get("run000000000002").steps
    assert step.status == StepStatus.RAN and step.attempts == 2 and step.run_id == "r"


def test_finish_records_the_outcome(project):
    runs = _runs(project)
    _start(runs, "run000000000003")
    runs.finish("run000000000003", PipelineStatus.FAILED, tracking_run="t1",
                error="step fit failed", finished_at=T0 + 5)
    got = runs.get("run000000000003")
    assert (got.status, got.run_id, got.error, got.finished_at) == (
        PipelineStatus.FAILED, "t1", "step fit failed", T0 + 5)


def test_get_by_suffix_and_not_found(project):
    runs = _runs(project)
    _start(runs, "aaaa000000011abcdef")
    _start(runs, "bbbb000000022abcdef", t=T0 + 1)
    assert runs.get("1abcdef").id == "aaaa000000011abcdef"
    assert runs.get("bbbb000000022abcdef").pipeline == "train"
    with pytest.raises(NotFoundError, match="ambiguous"):
        runs.get("abcdef")
    with pytest.raises(NotFoundError, match="No pipeline run"):
        runs.get("nope")
    with pytest.raises(NotFoundError):
        runs.get("9abcdef")


def test_recent_runs_newest_first_with_step_counts(project):
    runs = _runs(project)
    for i in range(3):
        _start(runs, f"run00000000001{i}", pipeline="a" if i < 2 else "b", t=T0 + i)
        runs.save_step(StepRecord(f"run00000000001{i}", "s", StepStatus.CACHED))
    runs.save_step(StepRecord("run000000000010", "t", StepStatus.RAN))
    listed = runs.recent()
    assert [r.id for r in listed] == ["run000000000012", "run000000000011", "run000000000010"]
    assert listed[2].step_counts == {"cached": 1, "ran": 1}
    assert [r.id for r in runs.recent("a", limit=1)] == ["run000000000011"]
    assert runs.recent("nothing") == []


def test_the_cache_round_trips_and_is_replaced(project):
    runs = _runs(project)
    _start(runs, "run000000000020")
    assert runs.cached("key1") is None
    runs.save_step(StepRecord("run000000000020", "fit", StepStatus.RAN, "key1", 1, "r1",
                              outputs={"m": {"kind": "model"}}), pipeline="train")
    entry = runs.cached("key1")
    assert entry is not None and entry.outputs == {"m": {"kind": "model"}}
    assert entry.run_id == "r1"
    runs.save_step(StepRecord("run000000000020", "fit", StepStatus.RAN, "key1", 1, "r2",
                              outputs={"m": {"kind": "model", "v": 2}}), pipeline="train")
    entry = runs.cached("key1")
    assert entry is not None and entry.run_id == "r2" and entry.outputs["m"]["v"] == 2
    runs.save_step(StepRecord("run000000000020", "other", StepStatus.RAN, "key2"))
    assert runs.cached("key2") is None  # no pipeline given: not cached


def test_a_dead_engine_run_is_killed_and_a_beat_revives_it(project):
    runs = _runs(project)
    ghost = Owner("elsewhere", 999_999, None)
    _start(runs, "run000000000030", owner=ghost)
    (found,) = [r for r in runs.running() if r.id == "run000000000030"]
    assert found.owner == ghost and found.heartbeat_at == T0
    assert runs.mark_killed(found, finished_at=T0 + 1, error="its engine died")
    got = runs.get("run000000000030")
    assert got.status == PipelineStatus.KILLED and got.error == "its engine died"
    assert not [r for r in runs.running() if r.id == "run000000000030"]
    runs.beat("run000000000030", ghost, T0 + 2)  # the engine was alive after all
    assert runs.get("run000000000030").status == PipelineStatus.RUNNING


def test_a_beat_since_the_read_keeps_the_run(project):
    runs = _runs(project)
    me = Owner("here", 4242, None)
    _start(runs, "run000000000040", owner=me)
    (seen,) = [r for r in runs.running() if r.id == "run000000000040"]
    runs.beat("run000000000040", me, T0 + 10)
    assert not runs.mark_killed(seen, finished_at=T0 + 1, error="x")
    assert runs.get("run000000000040").status == PipelineStatus.RUNNING
    runs.beat("run000000000040", Owner("other", 1, None), T0 + 20)  # not its owner
    assert [r.heartbeat_at for r in runs.running() if r.id == "run000000000040"] == [T0 + 10]


def test_step_statuses_and_counts():
    assert StepStatus.RAN.done and StepStatus.CACHED.done and not StepStatus.FAILED.done
    assert StepStatus.FAILED.blocks and StepStatus.NOT_RUN.blocks and not StepStatus.RAN.blocks
    counts = count_steps([StepStatus.RAN, "cached", StepStatus.CACHED])
    assert counts == {"ran": 1, "cached": 2}
    assert describe_counts(counts) == "2 cached, 1 ran" and describe_counts({}) == ""


def test_the_no_op_run_is_written_over_sqlite3(sqlite_project):
    from mloop.repositories.pipelines import record_cached_run
    from mloop.store.revisions import HEAD

    db = sqlite_project.root / ".mloop" / "mloop.db"
    steps = [{"step": "a", "key": "k", "run_id": "r", "outputs": '{"o": {"kind": "file"}}'}]
    assert not record_cached_run(db, "run000000000050", "p", steps, head="0ld", now=T0)
    assert record_cached_run(db, "run000000000050", "p", steps, head=HEAD, now=T0)
    got = _runs(sqlite_project).get("run000000000050")
    assert got.status == PipelineStatus.SUCCEEDED and got.executor == "local"
    (step,) = got.steps
    assert (step.status, step.cache_key, step.run_id, step.outputs) == (
        StepStatus.CACHED, "k", "r", {"o": {"kind": "file"}})
    assert not record_cached_run(db, "run000000000050", "p", steps, head=HEAD, now=T0)
