"""``mloop serve`` as a real process on 127.0.0.1, driven by HTTP clients and tritonclient."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(port, path, body=None, raw=None, headers=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, (json.loads(text) if r.headers.get_content_type()
                              == "application/json" else text.decode()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


@pytest.fixture
def server(sqlite_project, tmp_path):
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    with mloop.start_run():
        mloop.log_model(model, input_example=X[:5], registered_name="churn")
    mloop.set_alias("churn", "champion", 1)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mloop", "serve", "models:/churn@champion", "--port", str(port),
         "--max-body-mb", "1"], cwd=sqlite_project.root, env=env,
        stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _call(port, "/v2/health/ready")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        proc.wait()
        log.close()
        pytest.fail(f"server did not become ready: {(tmp_path / 'server.log').read_text()}")
    yield port, model, sqlite_project, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_v2_with_tritonclient_and_the_simple_and_mlflow_forms(server):
    import tritonclient.http as http

    port, model, _, _ = server
    client = http.InferenceServerClient(f"127.0.0.1:{port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("churn")
    meta = client.get_model_metadata("churn")
    assert meta["versions"] == ["1"] and len(meta["inputs"]) == 30
    tensor = http.InferInput("X", [5, 30], "FP64")
    tensor.set_data_from_numpy(X[:5].to_numpy())  # binary tensor extension
    result = client.infer("churn", [tensor], request_id="r1")
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(X[:5]))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(X[:5]))
    assert result.get_response()["id"] == "r1"
    status, body, headers = _call(port, "/predict",
                                  {"records": X[:3].to_dict(orient="records")})
    assert status == 200 and body["predictions"] == model.predict(X[:3]).tolist()
    assert headers["x-request-id"] == body["request_id"]
    status, body, _ = _call(port, "/invocations", {"dataframe_split": {
        "columns": list(X.columns), "data": X[:2].to_numpy().tolist()}})
    assert status == 200 and body == {"predictions": model.predict(X[:2]).tolist()}


def test_caller_mistakes_are_4xx_with_the_field(server):
    port, *_ = server
    assert _call(port, "/predict", raw=b"{not json")[0] == 400
    status, body, _ = _call(port, "/v2/models/churn/infer", {"inputs": [
        {"name": "X", "shape": [1, 29], "datatype": "FP64", "data": [0.0] * 29}]})
    assert status == 400 and body["field"] == "inputs[0].shape"
    status, body, _ = _call(port, "/predict", {"records": [{"mean radius": "big"}]})
    assert status == 422 and "missing column" in body["error"]
    row = X[:1].to_dict(orient="records")[0] | {"mean area": "huge"}
    status, body, _ = _call(port, "/predict", {"records": [row]})
    assert status == 422 and "'mean area'" in body["error"]
    assert _call(port, "/v2/models/fraud/infer", {"inputs": []})[0] == 404
    assert _call(port, "/v2/models/churn/versions/9/ready")[0] == 404
    assert _call(port, "/predict", raw=b" " * (2 << 20))[0] == 413


def test_concurrency_batches_metrics_log_and_graceful_stop(server):
    port, model, project, proc = server
    rows = X[:1].to_dict(orient="records")
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: _call(port, "/predict", {"records": rows})[0],
                                 range(200)))
    assert statuses == [200] * 200
    _, text, _ = _call(port, "/metrics")
    count = float(next(line.split()[-1] for line in text.splitlines()
                       if line.startswith("mloop_batch_rows_count")))
    total = float(next(line.split()[-1] for line in text.splitlines()
                       if line.startswith("mloop_batch_rows_sum")))
    assert total >= 200 and count <= total  # concurrent requests shared model calls
    assert 'mloop_requests_total{model="churn",route="predict",status="200",version="1"} 200.0' \
        in text
    proc.send_signal(signal.SIGTERM)
    # uvicorn drains, runs the shutdown (the log is flushed), then re-raises SIGTERM so a
    # supervisor sees why the process ended
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    from mloop.serving.predlog import read_predictions

    logged = read_predictions(project.root / ".mloop" / "predictions", "churn")
    assert len(logged) == 200 and logged.request_id.is_unique
    assert (logged.prediction == model.predict(X[:1])[0]).all()
    assert logged["in.mean radius"].iloc[0] == X["mean radius"].iloc[0]
    np.testing.assert_allclose(logged["proba.1"].iloc[0], model.predict_proba(X[:1])[0, 1])


def test_schemathesis_finds_no_server_error(server):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    port, *_ = server
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    seen: dict[str, set[int]] = {}
    errors = []
    def fuzz(operation):
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(operation.as_strategy())
        def run(case):
            response = case.call()
            seen.setdefault(f"{operation.method} {operation.path}", set()).add(
                response.status_code)
            if response.status_code >= 500:
                errors.append((operation.path, response.status_code, case.body))

        run()

    for found in schema.get_all_operations():
        fuzz(found.ok())
    assert errors == []
    assert seen["post /predict"] & {400, 422}  # bodies really were generated and refused
    assert len(seen) >= 12


# -- monitoring: feedback, gauges on /metrics, failed requests counted ----------------------

def _start(project, tmp_path, uri, *extra):
    """``mloop serve URI`` in ``project``; (port, process, log file) once ready."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    log = (tmp_path / "monitored.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mloop", "serve", uri, "--port", str(port), *extra],
        cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _call(port, "/v2/health/ready")[0] == 200:
                return port, proc, log
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    log.close()
    pytest.fail(f"server did not become ready: {(tmp_path / 'monitored.log').read_text()}")


@pytest.fixture
def monitored(sqlite_project, tmp_path):
    """A model whose run read train@1 (the drift reference), served with a check every
    half second."""
    path = sqlite_project.root / "train.csv"
    X.assign(target=Y).to_csv(path, index=False)
    mloop.data.add(path, name="train")
    with mloop.start_run():
        rows = mloop.data.load("train@1")
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
            rows.drop(columns="target"), rows.target)
        mloop.log_model(model, input_example=X[:5], registered_name="churn", onnx=False)
    port, proc, log = _start(sqlite_project, tmp_path, "models:/churn/1",
                             "--monitor-every", "0.5s")
    yield port, model, sqlite_project
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_feedback_endpoint_and_failed_requests_counted(server):
    from mloop.monitoring import feedback

    port, _, project, _ = server
    status, body, _ = _call(port, "/predict", {"records": X[:3].to_dict(orient="records")})
    assert status == 200
    rid = body["request_id"]
    for _ in range(2):  # sending again replaces
        status, body, _ = _call(port, "/api/v1/feedback", {"request_id": rid,
                                                           "label": [1, 0, 1]})
        assert (status, body) == (200, {"stored": 3, "unmatched": 0})
    status, body, _ = _call(port, "/api/v1/feedback", {"items": [
        {"request_id": rid, "row": 1, "label": 1},
        {"request_id": "other-1", "label": "yes"},
        {"request_id": "other-2", "label": [0.5, 1.5]}]})
    assert (status, body) == (200, {"stored": 4, "unmatched": 3})  # no such predictions
    stored = feedback.read(project, 0)
    assert len(stored) == 6
    assert stored[stored.request_id == rid].sort_values("row").label.tolist() == [1, 1, 1]
    # against the rules: 422 with the reason; malformed: 400 with the field
    status, body, _ = _call(port, "/api/v1/feedback", {"request_id": "no spaces",
                                                       "label": 1})
    assert status == 422 and "request_id" in body["error"]
    assert _call(port, "/api/v1/feedback", {"request_id": "r", "label": {"a": 1}})[0] == 422
    assert _call(port, "/api/v1/feedback", {"request_id": "r", "label": 1, "row": -1})[0] \
        == 422
    assert _call(port, "/api/v1/feedback", raw=b"{not json")[0] == 400
    status, body, _ = _call(port, "/api/v1/feedback", {"request_id": "r"})
    assert status == 400 and body["field"] == "$"
    status, body, _ = _call(port, "/api/v1/feedback", {"items": [{"label": 1}]})
    assert status == 400 and body["field"] == "items[0]"
    assert _call(port, "/api/v1/feedback", {"items": []})[0] == 400
    assert _call(port, "/api/v1/feedback", {"items": "r1"})[0] == 400
    for raw in (b"1", b"null", b'"r1"', b"[]"):  # not an object
        status, body, _ = _call(port, "/api/v1/feedback", raw=raw)
        assert status == 400 and body["field"] == "$"
    assert len(feedback.read(project, 0)) == 6  # nothing refused was stored
    # a refused prediction is counted with its status
    assert _call(port, "/predict", {"records": [{"mean radius": "big"}]})[0] == 422
    assert _call(port, "/predict", {"records": [{"mean radius": "big"}]})[0] == 422
    _, text, _ = _call(port, "/metrics")
    counted = [line for line in text.splitlines()
               if line.startswith("mloop_requests_total{") and 'status="422"' in line]
    assert len(counted) == 1 and 'route="predict"' in counted[0]
    assert counted[0].endswith(" 2.0")


def test_failed_requests_are_labelled_with_the_served_model(server):
    port, *_ = server
    assert _call(port, "/predict", {"records": [{"mean radius": "big"}]})[0] == 422
    assert _call(port, "/v2/models/made-up-name/infer", {"inputs": []})[0] == 404
    _, text, _ = _call(port, "/metrics")
    assert 'model="churn",route="predict",status="422",version="1"' in text
    assert "made-up-name" not in text


def test_monitoring_gauges_on_metrics(monitored):
    port, _, _ = monitored
    for start in range(0, 60, 10):
        rows = X[start:start + 10]
        status, body, _ = _call(port, "/predict", {"records": rows.to_dict(orient="records")})
        assert status == 200
        labels = [int(1 - p) for p in body["predictions"]]  # every label wrong
        assert _call(port, "/api/v1/feedback", {"request_id": body["request_id"],
                                                "label": labels})[0] == 200
    wanted = ('mloop_drift_share{model="churn"}', 'mloop_live_metric{metric="accuracy",'
              'model="churn"} 0.0', 'mloop_open_alerts{severity="critical"}',
              'mloop_feedback_rows{model="churn"} 60.0')
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = _call(port, "/metrics")[1]
        if all(w in text for w in wanted):
            break
        time.sleep(0.2)
    missing = [w for w in wanted if w not in text]
    assert not missing, text
    assert 'mloop_drift_statistic{column="mean radius"' in text
    assert "mloop_dataset_drift{" in text and "mloop_drift_last_check_timestamp_seconds{" \
        in text


@pytest.mark.parametrize("body", [{"instances": {"a": 1}},
                                  {"inputs": {"a": [1], "b": [1, 2]}},
                                  {"instances": [{"a": 1}, None]},
                                  {"instances": [{"a": 1}, True]}])
def test_invocations_bodies_pandas_refuses_are_payload_errors(body):
    from mloop.serving.protocol import PayloadError, mlflow_frame

    with pytest.raises(PayloadError):
        mlflow_frame(body, None)
