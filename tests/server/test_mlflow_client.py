"""The real mlflow client (3.17) against mloop's MLflow routes, on SQLite and PostgreSQL.

A uvicorn server on 127.0.0.1 (a random port, in a thread) serves the router over the
``project`` fixture; the mlflow client runs a normal workflow, then mloop's own API must
see what it logged, and the other way round.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")

# mlflow's own warnings (type-hint inference, pydantic, its deprecations) are not ours
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

import mloop  # noqa: E402
from mloop.project import Project  # noqa: E402
from mloop.server.app import no_auth  # noqa: E402
from mloop.server.mlflow import make_router  # noqa: E402


def serve(project: Project) -> Iterator[str]:
    app = FastAPI()
    app.include_router(make_router(project, no_auth))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def url(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server over the project, and the mlflow client pointed at it (and reset after)."""
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME",
                "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for address in serve(project):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", address)
        mlflow.set_tracking_uri(address)
        try:
            yield address
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.tracking.fluent._active_experiment_id = None
            mlflow.set_tracking_uri("")


def test_workflow(url: str, project: Project, tmp_path: Path) -> None:
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
