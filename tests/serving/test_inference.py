"""What a served model takes and gives: strict checks per request, one bad request never
failing another, and V2 metadata that matches the responses (``serving/inference.py``).

One ``mloop serve`` process on 127.0.0.1 serves a zoo of models for the whole module: an
integer classifier, a string-label classifier, a regressor, a model with a tensor
signature, and two mixed-type pipelines (float, int, bool and string columns; one float
column takes missing values), the second failing on categories it has not seen.
"""

import asyncio
import json
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import mloop
from mloop.project import Project
from tests.serving.test_server import _call, _start

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
FEW = list(X.columns[:4])


def _mixed_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"f": rng.normal(size=n), "g": rng.normal(size=n),
                          "i": rng.integers(0, 10, n), "b": rng.random(n) < 0.5,
                          "s": rng.choice(["a", "b", "c"], n)})
    frame.loc[::7, "g"] = np.nan
    target = ((frame.f + frame.g.fillna(0) + (frame.s == "a")) > 0).astype(int)
    return frame, target


def _pipeline(unknown):
    return make_pipeline(ColumnTransformer([
        ("imputed", SimpleImputer(), ["g"]),  # gaps are filled: g takes missing values
        ("plain", "passthrough", ["f", "i", "b"]),  # f does not
        ("onehot", OneHotEncoder(handle_unknown=unknown), ["s"])]), LogisticRegression())


def _zoo():
    """(name, fitted model, input example, ONNX twin wanted)."""
    mixed, target = _mixed_data()
    labels = np.where(Y == 1, "benign", "malignant")
    return [
        ("clf", make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y), X[:5], True),
        ("labels", LogisticRegression(max_iter=5000).fit(X[FEW], labels), X[FEW][:5], False),
        ("reg", LinearRegression().fit(X[FEW], X["mean area"]), X[FEW][:5], True),
        ("tensor", Ridge().fit(X[FEW].to_numpy(), Y), X[FEW].to_numpy()[:5], False),
        ("mixed", _pipeline("ignore").fit(mixed, target), mixed[:5], False),
        # the same, failing on a category it has not seen: a request that fits the
        # signature and that the model itself cannot take
        ("strict", _pipeline("error").fit(mixed, target), mixed[:5], False),
    ]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """(port, {name: fitted model}, project, server log) of one server for the module."""
    root = tmp_path_factory.mktemp("zoo")
    with pytest.MonkeyPatch.context() as env:  # what conftest's _isolate does per test
        for key in [k for k in os.environ if k.startswith("MLOOP_")]:
            env.delenv(key)
        env.setenv("XDG_CONFIG_HOME", str(root / "user-config"))
        env.setenv("MLOOP_QUIET", "1")
        env.setenv("MLOOP_CAPTURE_PACKAGES", "0")
        project = Project.init(root / "proj")
        models = {}
        for name, model, example, onnx in _zoo():
            with mloop.start_run(project=project):
                mloop.log_model(model, input_example=example, registered_name=name,
                                onnx=onnx or False)
            models[name] = model
        port, proc, log = _start(project, root, *(f"models:/{n}/1" for n in models),
                                 "--max-batch-delay-ms", "5", "--monitor-every", "0")
    yield port, models, project, root / "monitored.log"
    proc.kill()
    proc.wait()
    log.close()
    project.close()


def _mixed_rows(n, seed):
    """JSON records (a gap is null)."""
    return json.loads(_mixed_data(n, seed)[0].to_json(orient="records"))


# -- GET /v2/models/{name} declares what /infer returns -------------------------------------

def _infer_body(name, models):
    if name in ("mixed", "strict"):
        rows = _mixed_rows(3, 1)
        kinds = {"f": "FP64", "g": "FP64", "i": "INT64", "b": "BOOL", "s": "BYTES"}
        return {"inputs": [{"name": c, "shape": [3], "datatype": kind,
                            "data": [r[c] for r in rows]} for c, kind in kinds.items()]}
    width = 30 if name == "clf" else 4
    return {"inputs": [{"name": "x", "shape": [3, width], "datatype": "FP64",
                        "data": X.iloc[:3, :width].to_numpy().ravel().tolist()}]}


def _metadata_matches_responses(port, names, models):
    for name in names:
        status, meta, _ = _call(port, f"/v2/models/{name}")
        assert status == 200
        status, body, _ = _call(port, f"/v2/models/{name}/infer", _infer_body(name, models))
        assert status == 200, body
        declared = {o["name"]: (o["datatype"], o["shape"][1:]) for o in meta["outputs"]}
        answered = {o["name"]: (o["datatype"], o["shape"][1:]) for o in body["outputs"]}
        assert declared == answered, name
        assert all(o["shape"][0] == -1 for o in meta["outputs"])
    return {n: _call(port, f"/v2/models/{n}")[1] for n in names}


def test_metadata_declares_the_outputs_infer_returns(zoo, tmp_path):
    port, models, project, _ = zoo
    meta = _metadata_matches_responses(port, list(models), models)
    datatypes = {n: [o["datatype"] for o in m["outputs"]] for n, m in meta.items()}
    assert datatypes == {"clf": ["INT64", "FP64"], "labels": ["BYTES", "FP64"],
                         "reg": ["FP64"], "tensor": ["FP64"], "mixed": ["INT64", "FP64"],
                         "strict": ["INT64", "FP64"]}
    _, body, _ = _call(port, "/v2/models/labels/infer", _infer_body("labels", models))
    assert body["outputs"][0]["data"] == models["labels"].predict(X[FEW][:3]).tolist()
    assert meta["tensor"]["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    # the ONNX twins answer in their own types: declared from their own warm-up
    port, proc, log = _start(project, tmp_path, "models:/clf/1", "models:/reg/1",
                             "--engine", "onnx", "--monitor-every", "0")
    try:
        _metadata_matches_responses(port, ["clf", "reg"], models)
    finally:
        proc.kill()
        proc.wait()
        log.close()


# -- every caller's mistake: a 4xx with a JSON error naming the field ------------------------

def _v2(*tensors):
    return {"inputs": [dict(zip(("name", "shape", "datatype", "data"), t, strict=True))
                       for t in tensors]}


GOOD_ROW = {"f": 0.5, "g": 1.5, "i": 3, "b": True, "s": "a"}
MISTAKES = [
    # (path, body, status, field)
    ("/v2/models/mixed/infer", _v2(("f", [1], {}, [1.0])), 400, "inputs[0].datatype"),
    ("/v2/models/mixed/infer", _v2(("f", [1], "FP64", [1.0]), ("f", [1], "FP64", [2.0])),
     400, "inputs[1].name"),
    ("/v2/models/mixed/infer", _v2(("i", [1], "INT8", [1000])), 422, "inputs[0].data"),
    ("/v2/models/mixed/infer", _v2(("i", [1], "UINT8", [-1])), 422, "inputs[0].data"),
    ("/v2/models/mixed/infer", _v2(("f", [1], "FP64", [True])), 422, "inputs[0].data"),
    ("/v2/models/mixed/infer", _v2(("f", [1], "FP64", ["17.5"])), 422, "inputs[0].data"),
    ("/v2/models/mixed/infer", _v2(("f", [1], "FP64", [None]), ("g", [1], "FP64", [1.0]),
                                   ("i", [1], "INT64", [1]), ("b", [1], "BOOL", [True]),
                                   ("s", [1], "BYTES", ["a"])), 422, "f"),
    ("/v2/models/mixed/infer", _v2(("f", [1], "FP64", [1.0]), ("g", [1], "FP64", [1.0]),
                                   ("i", [1], "FP64", [1.5]), ("b", [1], "BOOL", [True]),
                                   ("s", [1], "BYTES", ["a"])), 422, "i"),
    ("/v2/models/mixed/infer", _v2(("f", [0], "FP64", [])), 422, "$"),
    ("/v2/models/clf/infer", {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64",
                                          "data": [0.0] * 30}], "outputs": [{"name": "p"}]},
     400, "outputs"),
    ("/predict?model=mixed", {"records": [GOOD_ROW | {"f": None}]}, 422, "f"),
    ("/predict?model=mixed", {"records": [GOOD_ROW | {"f": True}]}, 422, "f"),  # not 1.0
    ("/predict?model=mixed", {"records": [GOOD_ROW | {"f": "17.5"}]}, 422, "f"),  # not 17.5
    ("/predict?model=mixed", {"records": [GOOD_ROW | {"i": None}]}, 422, "i"),
    ("/predict?model=mixed", {"records": [GOOD_ROW | {"b": 1}]}, 422, "b"),
    ("/predict?model=mixed", {"records": [GOOD_ROW | {"s": 7}]}, 422, "s"),
    ("/predict?model=strict", {"records": [GOOD_ROW | {"s": None}]}, 422, "s"),
    ("/predict?model=mixed", {"records": [GOOD_ROW], "data": [[1]]}, 400, "$"),
    ("/predict?model=mixed", {"columns": ["f", "f", "i", "b", "s"],
                              "data": [[1.0, 1.0, 1, True, "a"]]}, 400, "columns"),
    ("/predict?model=mixed", {"records": [GOOD_ROW | {"extra": 1}]}, 422, "extra"),
    ("/invocations?model=mixed", {"instances": [GOOD_ROW], "inputs": {"f": [1.0]}}, 400, "$"),
    ("/invocations?model=mixed", {"dataframe_records": [GOOD_ROW | {"f": None}]}, 422, "f"),
    ("/invocations?model=mixed", {"dataframe_split": {"columns": ["f", "f"],
                                                      "data": [[1, 2]]}},
     400, "dataframe_split.columns"),
    ("/invocations?model=tensor", {"instances": [[1.0, 2.0, True, 4.0]]}, 422, "input"),
    ("/invocations?model=tensor", {"instances": [[1.0, 2.0, None, 4.0]]}, 422, "input"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), MISTAKES)
def test_caller_mistakes_get_a_4xx_naming_the_field(zoo, path, body, status, field):
    port, *_ = zoo
    got, answer, headers = _call(port, path, body)
    assert (got, answer.get("field")) == (status, field), answer
    assert headers.get_content_type() == "application/json" and answer["error"]


def test_gaps_pass_where_the_model_takes_them_and_values_keep_their_meaning(zoo):
    port, models, _, _ = zoo
    rows = [GOOD_ROW | {"g": None}, GOOD_ROW | {"f": 2, "i": 4.0}]  # int→float, 4.0→4
    status, body, _ = _call(port, "/predict?model=mixed", {"records": rows})
    assert status == 200, body
    frame = pd.DataFrame(rows).astype({"g": float, "i": int})
    assert body["predictions"] == models["mixed"].predict(frame).tolist()


# -- poisoned and good clients at once, micro-batching on -----------------------------------

POISONS = [
    ("/predict?model=strict", {"records": [GOOD_ROW | {"f": None}]}),
    ("/predict?model=strict", {"records": [GOOD_ROW | {"f": "17.5"}]}),
    ("/invocations?model=strict", {"dataframe_records": [GOOD_ROW | {"b": 0}]}),
    ("/v2/models/strict/infer", _v2(("i", [1], "INT8", [1000]))),
    ("/v2/models/strict/infer", _v2(("f", [1], {}, [1.0]))),
    ("/invocations?model=tensor", {"instances": [[1.0, None, 3.0, 4.0]]}),
]


def _plans(kinds, models, count=8):
    """Per client, its requests: (path, body, expected predictions or None), made before
    the run (the expected ones in one call per model)."""
    rng = np.random.default_rng(0)
    records = _mixed_rows(400, 1)
    pool = pd.DataFrame(records).astype({"f": float, "g": float})  # as the server reads them
    plans, want = [], {"strict": [], "tensor": []}
    for seed, kind in enumerate(kinds):
        plan = []
        for n in range(count):
            if kind == "poisoned":
                plan.append([*POISONS[(seed + n) % len(POISONS)], None])
            elif kind == "model-failed":
                plan.append(["/predict?model=strict",
                             {"records": [GOOD_ROW | {"s": "zzz"}]}, None])
            elif seed % 4 == 0:
                rows = rng.integers(0, len(X), 2)
                plan.append(["/predict?model=tensor",
                             {"data": X[FEW].iloc[rows].to_numpy().tolist()}, None])
                want["tensor"].append((plan[-1], rows))
            else:
                rows = rng.integers(0, len(pool), int(rng.integers(1, 4)))
                plan.append(["/predict?model=strict",
                             {"records": [records[r] for r in rows]}, None])
                want["strict"].append((plan[-1], rows))
        plans.append((kind, plan))
    for name, table in (("strict", pool), ("tensor", X[FEW].to_numpy())):
        at = np.concatenate([rows for _, rows in want[name]])
        pred = models[name].predict(table.iloc[at] if name == "strict" else table[at])
        start = 0
        for request, rows in want[name]:
            request[2] = pred[start:start + len(rows)].tolist()
            start += len(rows)
    return plans


def test_poisoned_clients_never_fail_good_ones(zoo):
    """36 connections, micro-batching on: 28 good clients (1-3 rows per request, gaps
    where the model takes them, table and tensor models), 6 sending what the signature
    refuses (4xx), 2 sending an unseen category the model itself fails on (500 for them
    alone, though their requests joined batches with good ones)."""
    import aiohttp

    port, models, _, log = zoo
    kinds = ["good"] * 28 + ["poisoned"] * 6 + ["model-failed"] * 2
    plans = _plans(kinds, models)
    outcomes = {kind: [] for kind in kinds}

    async def client(session, kind, plan):
        for path, body, expected in plan:
            async with session.post(path, json=body) as response:
                outcomes[kind].append((response.status, await response.json(), expected))

    async def scenario():
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            await asyncio.gather(*(client(session, kind, plan) for kind, plan in plans))

    asyncio.run(scenario())
    good = outcomes["good"]
    assert len(good) == 28 * 8
    wrong = [(s, a, e) for s, a, e in good
             if s != 200 or not np.allclose(a["predictions"], e, rtol=1e-12)]
    assert wrong == []
    assert all(400 <= s < 500 and a["error"] and "field" in a
               for s, a, _ in outcomes["poisoned"])
    assert {s for s, _, _ in outcomes["model-failed"]} == {500}
    assert all("unknown categor" in a["error"] for _, a, _ in outcomes["model-failed"])
    assert "the model failed on a request" in log.read_text()  # with its traceback
    _, text, _ = _call(port, "/metrics")
    calls = next(float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith('mloop_batch_rows_count{model="strict"}'))
    assert calls < sum(p.endswith("strict") for kind, plan in plans
                       for p, _, _ in plan if kind != "poisoned")  # requests shared calls


# -- fuzz: every route that takes a body, valid and invalid bodies alike, never a 5xx -------

def test_schemathesis_positive_and_negative_bodies_never_get_a_5xx(zoo):
    """Bodies that follow the OpenAPI schema and bodies that break it (schemathesis's
    negative mode: wrong types, unhashable datatypes, missing keys) for every route that
    takes one, against the mixed-type model (the in-process properties in test_protocol
    go deeper; this goes through the real server)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    port, *_ = zoo
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    errors, seen = [], {}

    def fuzz(path, strategy):
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def run(case):
            response = case.call()
            seen.setdefault(path, set()).add(response.status_code)
            if response.status_code >= 500:
                errors.append((path, response.status_code, case.body, response.text[:300]))

        run()

    for found in schema.get_all_operations():
        operation = found.ok()
        if operation.method.upper() != "POST" or "{version}" in operation.path:
            continue  # the versioned infer route is the same handler
        for mode in GenerationMode:
            fuzz(operation.path, operation.as_strategy(
                mode, path_parameters={"name": "mixed"} if "{name}" in operation.path
                else None, query={"model": "mixed"} if operation.get_parameter(
                    "model", "query") else None))
    assert errors == []
    assert set(seen) == {"/predict", "/invocations", "/api/v1/feedback",
                         "/v2/models/{name}/infer"}
    assert all(codes & {400, 422} for codes in seen.values())  # bodies really were refused


def test_hypothesis_bodies_over_http_never_get_a_5xx(zoo):
    """The in-process properties of test_protocol, through the real server: any JSON
    where the protocols put values, for the mixed-type and the tensor model."""
    import requests
    from hypothesis import HealthCheck, given, settings

    from tests.serving.test_protocol import SCALAR, bodies

    port, *_ = zoo
    session = requests.Session()
    errors, statuses = [], set()
    v2, simple, mlflow = bodies(("f", "g", "i", "b", "s"))
    near = st.lists(st.fixed_dictionaries({k: st.one_of(st.just(v), SCALAR)  # a few wrong
                                           for k, v in GOOD_ROW.items()}), min_size=1,
                    max_size=3)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(v2, simple, mlflow, near, st.sampled_from(["mixed", "tensor"]))
    def run(v2_body, simple_body, mlflow_body, records, model):
        for path, body in ((f"/v2/models/{model}/infer", v2_body),
                           (f"/predict?model={model}", simple_body),
                           (f"/invocations?model={model}", mlflow_body),
                           ("/predict?model=mixed", {"records": records})):
            response = session.post(f"http://127.0.0.1:{port}{path}", data=json.dumps(body),
                                    headers={"content-type": "application/json"}, timeout=30)
            statuses.add(response.status_code)
            if response.status_code >= 500 or response.headers["content-type"] != \
                    "application/json":
                errors.append((path, body, response.status_code, response.text[:300]))

    run()
    session.close()
    assert errors == []
    assert {200, 400, 422} <= statuses


def test_the_warm_up_finds_the_columns_that_take_gaps_and_the_outputs(zoo):
    from mloop.serving.inference import Output, learn

    _, _, project, _ = zoo
    example, _ = _mixed_data(5, 3)
    found = {}
    for name in ("mixed", "strict", "tensor"):
        loaded = mloop.load_model(f"models:/{name}/1", project=project)
        found[name] = learn(loaded, example if name != "tensor" else X[FEW].to_numpy()[:5])
    # g is imputed; f goes straight to the regression; s is one-hot encoded, and only the
    # lenient encoder takes None; int and bool columns never take a gap
    assert found["mixed"].nullable == {"g", "s"}
    assert found["strict"].nullable == {"g"}
    assert found["tensor"].nullable == frozenset()
    assert found["strict"].outputs == (Output("predict", "INT64", ()),
                                       Output("predict_proba", "FP64", (2,)))
    assert learn(loaded, None).nullable is None  # no example: nothing is known
