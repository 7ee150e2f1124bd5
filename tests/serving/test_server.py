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
