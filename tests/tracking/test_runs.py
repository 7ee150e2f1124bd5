"""Runs through the Python API, on SQLite and PostgreSQL."""

import math

import numpy as np
import pytest

import mloop
from mloop.errors import (
    InvalidInputError,
    InvalidMetricError,
    ParamConflictError,
    RunNotFoundError,
    RunStateError,
)
from mloop.tracking.model import RunStatus


def test_issue_example(project, tmp_path):
    png = tmp_path / "confusion.png"
    png.write_bytes(b"\x89PNG fake")
    with mloop.start_run(experiment="churn", name="baseline", tags={"team": "risk"}) as run:
        mloop.log_params({"C": 1.0, "model": "logreg"})
        for step in range(10_000):
            mloop.log_metric("loss", 1 / (step + 1), step=step)
        mloop.log_metrics({"acc": 0.91, "f1": 0.88})
        mloop.log_artifact(png)
    df = mloop.search_runs(experiment="churn",
                           filter="metrics.acc > 0.9 and params.model = 'logreg'",
                           order_by=["metrics.acc DESC"])
    assert df["run_id"].tolist() == [run.id]
    r = mloop.get_run(run.id)
    assert r.status is RunStatus.FINISHED and r.end_time is not None
    assert r.params == {"C": "1.0", "model": "logreg"}
    assert r.metrics["acc"] == 0.91 and r.metrics["loss"] == 1 / 10_000
    hist = r.metric_history("loss")
    assert len(hist) == 10_000 and hist["step"].tolist() == list(range(10_000))
    assert r.tags == {"team": "risk"}
    assert [a.path for a in r.artifacts] == ["confusion.png"]
    assert r.experiment == "churn" and r.name == "baseline"


def test_explicit_start_and_end(project):
    run = mloop.start_run(experiment="e")
    mloop.log_metric("x", 1)
    mloop.end_run()
    assert mloop.active_run() is None
    assert mloop.get_run(run.id).status is RunStatus.FINISHED


def test_exception_marks_failed_keyboard_interrupt_killed(project):
    with pytest.raises(ValueError), mloop.start_run() as failed:
        mloop.log_metric("m", 1.0)
        raise ValueError("bad")
    with pytest.raises(KeyboardInterrupt), mloop.start_run() as killed:
        raise KeyboardInterrupt
    assert mloop.get_run(failed.id).status is RunStatus.FAILED
    assert mloop.get_run(failed.id).metrics == {"m": 1.0}
    assert mloop.get_run(killed.id).status is RunStatus.KILLED


def test_nested_runs_inherit_experiment(project):
    with mloop.start_run(experiment="outer") as parent:
        with mloop.start_run(name="child", nested=True) as child:
            assert mloop.active_run() is child
        assert mloop.active_run() is parent
    c = mloop.get_run(child.id)
    assert c.parent_id == parent.id and c.experiment == "outer"


def test_second_top_level_run_needs_nested(project):
    with mloop.start_run(), pytest.raises(RunStateError, match="nested=True"):
        mloop.start_run()


def test_params_are_immutable(project):
    with mloop.start_run() as run:
        mloop.log_param("C", 1.0)
        mloop.log_param("C", 1.0)  # same value: fine
        with pytest.raises(ParamConflictError, match="immutable"):
            mloop.log_param("C", 2.0)
    # also across processes/handles: the store is the judge, not a local cache
    with mloop.start_run(run_id=run.id), pytest.raises(ParamConflictError):
        mloop.log_params({"C": "3"})


def test_non_numeric_metrics_rejected(project):
    with mloop.start_run():
        for bad in ["0.9", None, [1], True]:
            with pytest.raises(InvalidMetricError, match="real number"):
                mloop.log_metric("acc", bad)
        with pytest.raises(InvalidMetricError, match="integer"):
            mloop.log_metric("acc", 1.0, step=1.5)
        with pytest.raises(InvalidInputError):
            mloop.log_metric("", 1.0)


def test_nan_and_inf_stored_faithfully(project):
    with mloop.start_run() as run:
        mloop.log_metrics({"nan": float("nan"), "pinf": math.inf, "ninf": -math.inf,
                           "np": np.float32(0.5), "tiny": 5e-324})
    m = mloop.get_run(run.id).metrics
    assert math.isnan(m["nan"]) and m["pinf"] == math.inf and m["ninf"] == -math.inf
    assert m["np"] == 0.5 and m["tiny"] == 5e-324
    hist = mloop.get_run(run.id).metric_history("nan")
    assert math.isnan(hist["value"].iloc[0])


def test_default_step_increments_per_key(project):
    with mloop.start_run() as run:
        for v in (3.0, 2.0, 1.0):
            mloop.log_metric("loss", v)
        mloop.log_metric("acc", 0.5)
    assert mloop.get_run(run.id).metric_history("loss")["step"].tolist() == [0, 1, 2]
    assert mloop.get_run(run.id).metrics["loss"] == 1.0


def test_latest_metric_is_highest_step_not_last_logged(project):
    with mloop.start_run() as run:
        mloop.log_metric("m", 5.0, step=10)
        mloop.flush()
        mloop.log_metric("m", 1.0, step=3)  # a late, older point
    assert mloop.get_run(run.id).metrics["m"] == 5.0


def test_tags_are_mutable(project):
    with mloop.start_run() as run:
        mloop.set_tag("stage", "dev")
        mloop.set_tags({"stage": "prod", "owner": "ana"})
    assert mloop.get_run(run.id).tags == {"stage": "prod", "owner": "ana"}


def test_logging_after_end_is_an_error(project):
    run = mloop.start_run()
    run.end()
    with pytest.raises(RunStateError, match="has ended"):
        run.log_metric("x", 1)


def test_resume_continues_steps(project):
    with mloop.start_run() as run:
        mloop.log_metric("loss", 1.0)
    with mloop.start_run(run_id=run.id):
        mloop.log_metric("loss", 0.5)
    assert mloop.get_run(run.id).metric_history("loss")["step"].tolist() == [0, 1]


def test_unknown_ids_and_experiments(project):
    with pytest.raises(RunNotFoundError, match="mloop runs list"):
        mloop.get_run("f" * 32)
    with pytest.raises(mloop.MloopError, match="mloop experiments list"):
        mloop.search_runs(experiment="nope")


def test_run_id_prefix_or_suffix(project):
    with mloop.start_run() as run:
        pass
    assert mloop.get_run(run.id[:10]).id == run.id
    assert mloop.get_run(run.id[-8:]).id == run.id


def test_delete_and_restore(project):
    with mloop.start_run(experiment="d") as run:
        pass
    mloop.delete_runs([run.id])
    assert mloop.search_runs(experiment="d").empty
    assert len(mloop.search_runs(experiment="d", include_deleted=True)) == 1
    mloop.restore_runs([run.id])
    assert len(mloop.search_runs(experiment="d")) == 1


def test_reproducibility_record(project, monkeypatch):
    monkeypatch.setenv("MLOOP_CAPTURE_PACKAGES", "1")
    from mloop.project import Project

    fresh = Project(project.root, store_uri=project.settings.store_uri)
    mloop.seed_everything(7)
    with mloop.start_run(project=fresh) as run:
        pass
    r = mloop.get_run(run.id, project=fresh)
    assert r.seed == 7
    assert r.command and ("python" in r.command.lower() or "pytest" in r.command)
    env = r.environment
    assert env is not None and env.python.split()[-1].count(".") == 2
    assert any(p.lower().startswith("sqlalchemy==") for p in env.packages)
    fresh.close()


def test_seed_recorded_on_active_run(project):
    with mloop.start_run() as run:
        mloop.seed_everything(123)
        a = np.random.rand()
        mloop.seed_everything(123)
        assert np.random.rand() == a
    assert mloop.get_run(run.id).seed == 123


def test_logging_without_run_starts_one(project):
    mloop.log_metric("auto", 1.0)
    run = mloop.active_run()
    assert run is not None
    mloop.end_run()
    assert mloop.get_run(run.id).metrics == {"auto": 1.0}


def test_list_experiments(project):
    for name in ("a", "b"):
        with mloop.start_run(experiment=name):
            pass
    with mloop.start_run(experiment="a"):
        pass
    counts = {e.name: e.run_count for e in mloop.list_experiments()}
    assert counts == {"a": 2, "b": 1}


def test_set_experiment(project):
    mloop.set_experiment("chosen")
    with mloop.start_run() as run:
        pass
    assert mloop.get_run(run.id).experiment == "chosen"


def test_param_written_by_another_process_is_still_checked(project):
    from mloop.tracking import records

    store = project.store
    with mloop.start_run() as run:
        # As if another process had resumed this run and logged params meanwhile.
        with store.write() as conn:
            records.insert_params(store, conn, run.id, {"lr": "0.1", "depth": "3"})
        mloop.log_param("depth", 3)  # same value: accepted after the store is consulted
        with pytest.raises(ParamConflictError, match="lr"):
            mloop.log_param("lr", 0.5)
    assert mloop.get_run(run.id).params == {"lr": "0.1", "depth": "3"}


def test_bad_tag_key_starts_no_run(project):
    with pytest.raises(InvalidInputError, match="tag name"):
        mloop.start_run(experiment="t", tags={"": "x"})
    assert mloop.active_run() is None
