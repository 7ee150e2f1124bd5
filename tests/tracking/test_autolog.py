import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop


@pytest.fixture
def autologged(sqlite_project):
    mloop.autolog(experiment="auto")
    yield sqlite_project
    mloop.autolog(disable=True)


def test_fit_logs_params_score_time_and_model(autologged):
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=300)).fit(X, y)
    df = mloop.search_runs(experiment="auto")
    assert len(df) == 1  # the pipeline's inner fits are not separate runs
    run = mloop.get_run(df["run_id"].iloc[0])
    assert run.params["logisticregression__C"] == "0.5"
    assert run.metrics["training_score"] == pytest.approx(model.score(X, y))
    assert run.metrics["training_fit_time_s"] > 0
    assert run.tags["estimator_class"] == "sklearn.pipeline.Pipeline"
    # logged as a model (skops, no pickle): it loads without allow_pickle
    assert {a.path for a in run.artifacts} >= {"model/model.skops", "model/mloop-model.json"}
    assert (mloop.load_model(f"runs:/{run.id}/model").predict(X) == model.predict(X)).all()


def test_fit_inside_active_run_logs_there(autologged):
    X, y = load_iris(return_X_y=True)
    with mloop.start_run(experiment="mine") as run:
        LogisticRegression(max_iter=300).fit(X, y)
    assert "training_score" in mloop.get_run(run.id).metrics
    assert not _exists("auto")  # no extra run was started


def _exists(name):
    return any(e.name == name for e in mloop.list_experiments())


def test_failed_fit_marks_run_failed_and_reraises(autologged):
    with pytest.raises(ValueError):
        LogisticRegression().fit([[1.0], [2.0]], [0, 0])  # one class only
    df = mloop.search_runs(experiment="auto")
    assert df["status"].tolist() == ["FAILED"]


def test_disable_restores_original_fit(autologged):
    mloop.autolog(disable=True)
    X, y = load_iris(return_X_y=True)
    LogisticRegression(max_iter=300).fit(X, y)
    assert not _exists("auto")
    assert not getattr(LogisticRegression.fit, "__mloop_autolog__", False)
