"""The fast request path: a V2 FP64 matrix goes to the model as a matrix (``Rows``) when the
warm-up showed it answers one as it answers the frame; `mloop serve` defaults to the
verified ONNX twin."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from mloop.project import Project
from mloop.registry.signature import ColumnError
from mloop.serving.batcher import MicroBatcher
from mloop.serving.inference import learn, predict_fn
from mloop.serving.protocol import Rows, v2_frame
from tests.serving.test_server import _call, _start

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
X = X.iloc[:, :6]  # six float64 columns are enough


def _v2(rows: pd.DataFrame) -> dict:
    data = [None if v != v else v for v in rows.to_numpy().ravel().tolist()]  # NaN: null
    return {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP64",
                        "data": data}]}


@pytest.fixture
def models(sqlite_project: Project) -> dict[str, object]:
    """A scaler pipeline (takes a matrix), one selecting columns by name (does not), each
    logged with its ONNX twin where one converts."""
    plain = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    by_name = make_pipeline(ColumnTransformer([("s", StandardScaler(), list(X.columns[:3]))]),
                            LogisticRegression()).fit(X, Y)
    with mloop.start_run():
        mloop.log_model(plain, input_example=X[:5], registered_name="plain")
        mloop.log_model(by_name, name="m2", input_example=X[:5], registered_name="byname",
                        onnx=False)
    return {"plain": plain, "byname": by_name}


@pytest.mark.parametrize(("name", "engine", "matrix"), [
    ("plain", "native", True), ("plain", "onnx", True), ("byname", "native", False)])
def test_the_warm_up_decides_whether_a_matrix_is_answered_as_the_frame(
        models: dict[str, object], name: str, engine: str, matrix: bool) -> None:
    loaded = mloop.load_model(f"models:/{name}/1", engine=engine)
    traits = learn(loaded, X[:5])
    assert traits.takes_matrix is matrix
    predict = predict_fn(loaded, traits.has_proba, traits.takes_matrix)
    frame, _, _ = v2_frame(_v2(X[10:40]), loaded.signature)
    assert isinstance(frame, Rows) and frame.names == tuple(X.columns)
    pred, proba = predict(frame, True)
    model = models[name]
    np.testing.assert_array_equal(pred, model.predict(X[10:40]))  # type: ignore[attr-defined]
    np.testing.assert_allclose(proba, model.predict_proba(X[10:40]),  # type: ignore[attr-defined]
                               rtol=0, atol=1e-5 if engine == "onnx" else 1e-12)


def test_a_matrix_and_its_frame_get_the_same_answers(models: dict[str, object]) -> None:
    loaded = mloop.load_model("models:/plain/1", engine="native")
    traits = learn(loaded, X[:5])
    assert traits.takes_matrix
    predict = predict_fn(loaded, True, traits.takes_matrix)

    @settings(max_examples=25, deadline=None)
    @given(values=hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(6)),
                             elements=st.floats(-1e3, 1e3)))
    def same(values: np.ndarray) -> None:
        rows = Rows(values, tuple(X.columns))
        matrix = predict(rows, True)
        frame = predict(rows.to_frame(), True)
        np.testing.assert_array_equal(matrix[0], frame[0])
        np.testing.assert_allclose(matrix[1], frame[1], rtol=1e-9, atol=1e-12)

    same()


def test_a_v2_matrix_of_other_types_stays_a_frame(models: dict[str, object]) -> None:
    loaded = mloop.load_model("models:/plain/1", engine="native")
    ints = {"inputs": [{"name": "input", "shape": [1, 6], "datatype": "INT64",
                        "data": [1, 2, 3, 4, 5, 6]}]}
    assert isinstance(v2_frame(ints, loaded.signature)[0], pd.DataFrame)


def test_the_batcher_merges_matrices_and_frames() -> None:
    seen: list[object] = []

    def predict(rows: object, want: bool) -> tuple[np.ndarray, None]:
        seen.append(rows)
        return np.arange(len(rows)), None  # type: ignore[arg-type]

    async def go() -> list[tuple[np.ndarray, None]]:
        batcher = MicroBatcher(predict)
        batcher.start()
        rows = Rows(X[:2].to_numpy(), tuple(X.columns))
        out = await asyncio.gather(batcher.submit(rows), batcher.submit(X[2:5]),
                                   batcher.submit(rows))
        await batcher.stop()
        return out  # type: ignore[return-value]

    out = asyncio.run(go())
    assert [len(o[0]) for o in out] == [2, 3, 2]
    merged = [r for r in seen if len(r) == 7]  # type: ignore[arg-type]
    if merged:  # concurrent requests were merged: into one frame, in order
        assert isinstance(merged[0], pd.DataFrame)
        np.testing.assert_array_equal(merged[0].to_numpy()[:5], X[:5].to_numpy())


def test_serve_defaults_to_the_twin_and_answers_matrices(models: dict[str, object],
                                                         sqlite_project: Project,
                                                         tmp_path) -> None:
    """Through the real server: the default engine is the twin (native without one),
    `--engine native` is native, both answer a V2 matrix as the model does, and a NaN
    where the model takes none is a 422 naming the column."""
    model = models["plain"]
    for flags, engines in (((), {"plain": "onnx", "byname": "native"}),
                           (("--engine", "native"), {"plain": "native", "byname": "native"})):
        port, proc, log = _start(sqlite_project, tmp_path, "plain", "byname", *flags)
        try:
            status, meta, _ = _call(port, "/v2")
            assert status == 200
            assert {m["name"]: m["engine"] for m in meta["models"]} == engines
            status, body, _ = _call(port, "/v2/models/plain/infer", _v2(X[:4]))
            assert status == 200, body
            out = {o["name"]: o["data"] for o in body["outputs"]}
            assert out["predict"] == model.predict(X[:4]).tolist()  # type: ignore[attr-defined]
            np.testing.assert_allclose(np.reshape(out["predict_proba"], (4, 2)),
                                       model.predict_proba(X[:4]), atol=1e-5)  # type: ignore[attr-defined]
            holed = X[:2].copy()
            holed.iloc[1, 3] = np.nan
            status, body, _ = _call(port, "/v2/models/plain/infer", _v2(holed))
            assert status == 422 and body["field"] == X.columns[3], body
        finally:
            proc.kill()
            proc.wait()
            log.close()


def test_refuse_missing_values_names_the_column() -> None:
    from mloop.registry.signature import Signature, refuse_missing_values

    signature = Signature("table", (("a", "float64"), ("b", "float64")))
    values = np.array([[1.0, 2.0], [3.0, np.nan]])
    refuse_missing_values(values, signature, None)  # not known: the model decides
    refuse_missing_values(values, signature, frozenset({"b"}))
    with pytest.raises(ColumnError, match=r"'b'.*row 1"):
        refuse_missing_values(values, signature, frozenset({"a"}))
