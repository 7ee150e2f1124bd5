"""The real mlflow client (3.17) against mloop's MLflow routes, on SQLite and PostgreSQL.

A uvicorn server on 127.0.0.1 (a random port, in a thread) serves the router over the
``project`` fixture; the mlflow client runs a normal workflow, then mloop's own API must
see what it logged, and the other way round.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")

# mlflow's own warnings (type-hint inference, pydantic, its deprecations) are not ours
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]

from fastapi import Request  # noqa: E402

import mloop  # noqa: E402
from mloop.core.identity import Identity  # noqa: E402
from mloop.errors import ForbiddenError, TokenError  # noqa: E402
from mloop.project import Project  # noqa: E402
from tests.cli.test_cli import run_cli  # noqa: E402
from tests.server.mlflow_serve import serve  # noqa: E402

REQS = ["scikit-learn"]


@pytest.fixture
def url(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server over the project, and the mlflow client pointed at it (and reset after)."""
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME",
                "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with serve(project) as address:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", address)
        mlflow.set_tracking_uri(address)
        try:
            yield address
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.tracking.fluent._active_experiment_id = None
            mlflow.set_tracking_uri("")


def test_workflow(url: str, project: Project, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    exp_id = mlflow.set_experiment("churn").experiment_id
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("alpha", 0.5)
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.9})
        mlflow.set_tags({"team": "risk"})
        mlflow.log_dict({"a": 1}, "config/settings.json")
        mlflow.log_artifact(str(note), "notes")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_param("depth", 2)
        model = LogisticRegression().fit(X, y)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="churn",
                                        input_example=X[:3])
    client = mlflow.MlflowClient()
    assert str(info.registered_model_version) == "1"
    client.set_registered_model_alias("churn", "champion", "1")
    client.set_model_version_tag("churn", "1", "ticket", "T-1")
    loaded = mlflow.pyfunc.load_model("models:/churn@champion")
    assert list(loaded.predict(X[:5])) == list(model.predict(X[:5]))

    found = mlflow.search_runs([exp_id], filter_string="params.alpha = '0.5'")
    assert list(found["run_id"]) == [parent.info.run_id]
    history = client.get_metric_history(parent.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config", "notes"} <= names
    local = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id,
                                                artifact_path="notes/note.txt",
                                                dst_path=str(tmp_path / "dl"))
    assert Path(local).read_text() == "hello"
    assert [m.name for m in client.search_registered_models()] == ["churn"]
    assert [e.name for e in mlflow.search_experiments(filter_string="name LIKE 'ch%'")] == [
        "churn"]
    versions = client.search_model_versions("name='churn'")
    assert [(v.version, v.aliases, v.tags) for v in versions] == [
        ("1", ["champion"], {"ticket": "T-1"})]

    # what mloop sees
    run = mloop.get_run(parent.info.run_id)
    assert run.params == {"alpha": "0.5"} and run.metrics["acc"] == 0.9
    assert run.tags["team"] == "risk" and run.experiment == "churn"
    assert {"config/settings.json", "notes/note.txt", "model/MLmodel"} <= {
        a.path for a in run.artifacts}
    assert mloop.get_run(child.info.run_id).parent_id == parent.info.run_id
    version = mloop.get_model_version("churn@champion")
    assert version.flavor == "mlflow" and version.tags == {"ticket": "T-1"}
    with pytest.raises(mloop.errors.UnsafeModelError):
        mloop.load_model("models:/churn@champion")
    again = mloop.load_model("models:/churn@champion", allow_pickle=True)
    assert list(again.predict(X[:5])) == list(model.predict(X[:5]))
    # and the CLI (a process of its own, on the project's store)
    monkeypatch.setenv("MLOOP_STORE_URI", project.settings.store_uri)
    shown = json.loads(run_cli("runs", "show", parent.info.run_id, "--json",
                               cwd=project.root).stdout)
    assert shown["params"] == {"alpha": "0.5"} and shown["tags"]["team"] == "risk"
    listed = json.loads(run_cli("models", "versions", "churn", "--json",
                                cwd=project.root).stdout)
    assert [(v["version"], v["flavor"], v["aliases"]) for v in listed] == [
        (1, "mlflow", ["champion"])]


def test_inputs_and_autolog(url: str, project: Project) -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0]})
    mlflow.set_experiment("auto")
    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_pandas(frame, name="train"), context="training")
    got = mlflow.get_run(run.info.run_id)
    assert [d.dataset.name for d in got.inputs.dataset_inputs] == ["train"]
    assert not any(k.startswith("mlflow.datasetInput.") for k in got.data.tags)
    mlflow.MlflowClient().update_run(run.info.run_id, name="renamed")
    assert mloop.get_run(run.info.run_id).name == "renamed"
    assert mlflow.get_run(run.info.run_id).info.run_name == "renamed"

    mlflow.sklearn.autolog(log_models=True, log_datasets=False)
    try:
        with mlflow.start_run() as fitted:
            LinearRegression().fit(frame[["x"]], frame["y"])
    finally:
        mlflow.sklearn.autolog(disable=True)
    seen = mloop.get_run(fitted.info.run_id)
    assert seen.params["fit_intercept"] == "True"
    assert "training_score" in seen.metrics
    assert any(a.path.endswith("MLmodel") for a in seen.artifacts)


def test_mloop_runs_and_models_seen_by_mlflow(url: str, project: Project) -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(1).normal(size=(40, 2))
    y = (X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with mloop.start_run(experiment="native", name="mine") as run:
        mloop.log_param("C", 1.0)
        mloop.log_metric("acc", 0.75)
        mloop.log_model(model, name="model", registered_name="native", onnx=False)
    exp = mlflow.get_experiment_by_name("native")
    assert exp is not None
    found = mlflow.search_runs([exp.experiment_id], filter_string="metrics.acc > 0.5",
                               output_format="list")
    assert [r.info.run_id for r in found] == [run.id]
    assert found[0].data.params == {"C": "1.0"} and found[0].info.run_name == "mine"
    got = mlflow.get_run(run.id)
    assert got.data.metrics == {"acc": 0.75} and got.info.status == "FINISHED"

    # an mloop version: a generated MLmodel naming skops, and a loader that runs no pickle
    mlmodel = mlflow.artifacts.load_text(
        mlflow.MlflowClient().get_model_version_download_uri("native", "1") + "/MLmodel")
    assert "serialization: skops" in mlmodel and "runs_code_when_loaded: false" in mlmodel
    loaded = mlflow.pyfunc.load_model("models:/native/1")
    assert list(loaded.predict(X[:4])) == list(model.predict(X[:4]))


class Doubler:
    """A plain python model: mloop saves it with joblib, a pickle."""

    def predict(self, rows: object) -> object:
        return np.asarray(rows) * 2


def test_pickled_mloop_model_is_not_offered_to_pyfunc(url: str, project: Project) -> None:
    with mloop.start_run(experiment="native"):
        mloop.log_model(Doubler(), name="model", registered_name="doubler")
    uri = mlflow.MlflowClient().get_model_version_download_uri("doubler", "1")
    mlmodel = mlflow.artifacts.load_text(uri + "/MLmodel")
    assert "serialization: joblib" in mlmodel and "runs_code_when_loaded: true" in mlmodel
    assert "python_function" not in mlmodel
    with pytest.raises(mlflow.exceptions.MlflowException, match="python_function"):
        mlflow.pyfunc.load_model("models:/doubler/1")


def test_error_codes(url: str, project: Project) -> None:
    import httpx

    client = mlflow.MlflowClient()
    exp_id = client.create_experiment("errs")
    with pytest.raises(mlflow.exceptions.MlflowException) as exists:
        client.create_experiment("errs")
    assert exists.value.error_code == "RESOURCE_ALREADY_EXISTS"
    run = client.create_run(exp_id)
    client.log_param(run.info.run_id, "k", "1")
    client.log_param(run.info.run_id, "k", "1")  # the same value again is fine
    with pytest.raises(mlflow.exceptions.MlflowException) as clash:
        client.log_param(run.info.run_id, "k", "2")
    assert clash.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_experiment_by_name("missing") is None
    with httpx.Client(base_url=url) as http:
        missing = http.get("/api/2.0/mlflow/experiments/get-by-name",
                           params={"experiment_name": "missing"})
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        no_run = http.get("/api/2.0/mlflow/runs/get", params={"run_id": "0" * 32})
        assert (no_run.status_code, no_run.json()["error_code"]) == (
            404, "RESOURCE_DOES_NOT_EXIST")
        root = f"/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run.info.run_id}/artifacts"
        for bad in ("%2E%2E/%2E%2E/x", "a/%2E%2E/%2E%2E/x", "a%00b"):
            put = http.put(f"{root}/{bad}", content=b"x")
            assert (put.status_code, put.json()["error_code"]) == (
                400, "INVALID_PARAMETER_VALUE"), bad
        listed = http.get("/api/2.0/mlflow-artifacts/artifacts",
                          params={"path": f"{exp_id}/{run.info.run_id}/artifacts/../../x"})
        assert listed.status_code == 400
        assert http.put(f"{root}/ok.txt", content=b"fine").status_code == 200
        assert http.get(f"{root}/ok.txt").content == b"fine"
    assert mloop.get_run(run.info.run_id).artifacts[0].path == "ok.txt"
    client.delete_run(run.info.run_id)
    assert client.search_runs([exp_id]) == []
    gone = client.search_runs([exp_id], run_view_type=mlflow.entities.ViewType.DELETED_ONLY)
    assert [r.info.lifecycle_stage for r in gone] == ["deleted"]
    assert mloop.get_run(run.info.run_id).deleted
    client.restore_run(run.info.run_id)
    everything = client.search_runs([exp_id], run_view_type=mlflow.entities.ViewType.ALL)
    assert [r.info.lifecycle_stage for r in everything] == ["active"]


TOKENS = {"tok-r": Identity("rita", "reader", "t1"), "tok-w": Identity("wendy", "writer", "t2"),
          "tok-a": Identity("abe", "approver", "t3")}


def by_token(request: Request, need: str) -> Identity:
    """Tokens as the mlflow client sends them (Bearer MLFLOW_TRACKING_TOKEN)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    identity = TOKENS.get(token) if scheme == "Bearer" else None
    if identity is None:
        raise TokenError("No valid token.")
    if not identity.allows(need):
        raise ForbiddenError(f"{identity.name} is a {identity.role}; this needs {need}.")
    return identity


def test_roles_and_identity(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    X = np.random.default_rng(2).normal(size=(30, 2))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    with serve(project, by_token) as address:
        client = mlflow.MlflowClient(address)
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        with pytest.raises(mlflow.exceptions.MlflowException) as anonymous:
            client.search_experiments()
        assert anonymous.value.error_code == "UNAUTHENTICATED"
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-r")
        with pytest.raises(mlflow.exceptions.MlflowException) as reader:
            client.create_experiment("team")
        assert reader.value.error_code == "PERMISSION_DENIED"
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-w")
        exp_id = client.create_experiment("team")
        run = client.create_run(exp_id, tags={"mlflow.user": "someone-else"})
        mlflow.set_tracking_uri(address)
        try:
            with mlflow.start_run(run_id=run.info.run_id):
                mlflow.sklearn.log_model(model, name="model", registered_model_name="team",
                                         pip_requirements=REQS)
            with pytest.raises(mlflow.exceptions.MlflowException) as writer:
                client.set_registered_model_alias("team", "champion", "1")
            assert writer.value.error_code == "PERMISSION_DENIED"
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-a")
            client.set_registered_model_alias("team", "champion", "1")
            client.delete_registered_model_alias("team", "champion")
        finally:
            mlflow.set_tracking_uri("")
    logged = mloop.get_run(run.info.run_id)
    assert logged.user == "wendy" and logged.tags["mlflow.user"] == "wendy"
    events = mloop.model_events("team")
    assert [(e.action, e.user) for e in events] == [
        ("registered", "wendy"), ("alias", "abe"), ("alias", "abe")]


def test_logged_models_outside_runs_and_by_run_uri(url: str, project: Project) -> None:
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(3).normal(size=(30, 2))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    exp_id = mlflow.set_experiment("lm").experiment_id
    # pip_requirements given: mlflow would infer them in a subprocess (seconds each)
    free = mlflow.sklearn.log_model(model, name="free", pip_requirements=REQS)  # no run
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", pip_requirements=REQS)
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "byrun")
    assert version.version == "1"
    assert list(mlflow.pyfunc.load_model("models:/byrun/1").predict(X[:3])) == list(
        model.predict(X[:3]))
    assert list(mlflow.pyfunc.load_model(free.model_uri).predict(X[:3])) == list(
        model.predict(X[:3]))
    logged = mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list")
    assert {m.name for m in logged} == {"free", "model"}
    assert all(m.status == "READY" for m in logged)
    mloop_version = mloop.get_model_version("byrun/1")
    assert mloop_version.run_id == run.info.run_id and mloop_version.artifact_path == "model"
