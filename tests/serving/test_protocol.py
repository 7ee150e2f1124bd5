"""Payload parsing: V2 tensors (JSON and binary), the simple form, MLflow's form."""

import asyncio
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.registry.signature import Signature
from mloop.serving.batcher import MicroBatcher, Overloaded
from mloop.serving.protocol import (
    PayloadError,
    mlflow_frame,
    records_frame,
    v2_frame,
    v2_outputs,
    with_binary_inputs,
)

SIG = Signature("table", (("a", "float64"), ("b", "int64")))


def test_v2_matrix_named_columns_outputs_and_id():
    frame, wanted, rid = v2_frame({"id": "7", "inputs": [
        {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}],
        "outputs": [{"name": "predict"}]}, SIG)
    assert list(frame.columns) == ["a", "b"] and frame.shape == (2, 2)
    assert wanted == ["predict"] and rid == "7"
    frame, _, _ = v2_frame({"inputs": [
        {"name": "a", "shape": [2], "datatype": "FP32", "data": [1.5, 2.5]},
        {"name": "b", "shape": [2, 1], "datatype": "INT64", "data": [[1], [2]]}]}, SIG)
    assert frame["b"].tolist() == [1, 2]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "inputs"),
    ({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3]}]},
     "inputs[0].data"),
    ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP99", "data": [1, 2]}]},
     "inputs[0].datatype"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
     "inputs[0].shape"),
    ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT64", "data": ["a", "b"]}]},
     "inputs[0].data"),
    ({"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                 {"name": "b", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}]},
     "inputs[1].shape"),
    ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}, "inputs[0].name"),
])
def test_v2_mistakes_name_the_field(body, field):
    with pytest.raises(PayloadError) as err:
        v2_frame(body, SIG)
    assert err.value.field == field


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["FP64", "FP32", "INT64", "INT32", "UINT8", "BOOL"]),
       st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_binary_inputs_equal_json_inputs(dtype, rows, seed):
    from mloop.serving.protocol import V2_DTYPES

    arr = (np.random.default_rng(seed).random((rows, 2)) * 100).astype(V2_DTYPES[dtype])
    as_json = v2_frame({"inputs": [{"name": "x", "shape": [rows, 2], "datatype": dtype,
                                    "data": arr.ravel().tolist()}]}, SIG)[0]
    raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    body = with_binary_inputs({"inputs": [{"name": "x", "shape": [rows, 2], "datatype": dtype,
                                           "parameters": {"binary_data_size": len(raw)}}]}, raw)
    as_binary = v2_frame(body, SIG)[0]
    assert as_binary.equals(as_json)


def test_simple_and_mlflow_forms():
    assert records_frame({"records": [{"a": 1, "b": 2}]}).shape == (1, 2)
    assert records_frame({"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}).shape == (2, 2)
    assert mlflow_frame({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}},
                        SIG).shape == (1, 2)
    assert mlflow_frame({"dataframe_records": [{"a": 1, "b": 2}]}, SIG).shape == (1, 2)
    assert list(mlflow_frame({"instances": [[1, 2]]}, SIG).columns) == ["a", "b"]
    assert mlflow_frame({"inputs": {"a": [1, 2], "b": [3, 4]}}, SIG).shape == (2, 2)
    with pytest.raises(PayloadError, match="rows have 3 values"):
        mlflow_frame({"instances": [[1, 2, 3]]}, SIG)
    with pytest.raises(PayloadError):
        records_frame({"records": []})


def test_outputs_selection():
    out = v2_outputs(np.array(["yes", "no"]), np.array([[0.1, 0.9], [0.8, 0.2]]), None)
    assert [o["name"] for o in out] == ["predict", "predict_proba"]
    assert out[0]["datatype"] == "BYTES" and out[1]["shape"] == [2, 2]
    with pytest.raises(PayloadError, match="unknown output"):
        v2_outputs(np.array([1]), None, ["predict_proba"])


def test_micro_batcher_merges_concurrent_requests_and_bounds_its_queue():
    import pandas as pd

    sizes = []

    def predict(frame, with_proba):
        time.sleep(0.05)
        return frame["a"].to_numpy() * 2, None

    async def scenario():
        batcher = MicroBatcher(predict, max_batch_size=64, max_queue=8,
                               on_batch=sizes.append)
        batcher.start()
        frames = [pd.DataFrame({"a": [i]}) for i in range(8)]
        results = await asyncio.gather(*(batcher.submit(f) for f in frames))
        assert [r[0].tolist() for r in results] == [[2 * i] for i in range(8)]
        waiting = [asyncio.ensure_future(batcher.submit(pd.DataFrame({"a": [1]})))
                   for _ in range(9)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await batcher.submit(pd.DataFrame({"a": [1]}))
        await asyncio.gather(*waiting, return_exceptions=True)
        await batcher.stop()

    asyncio.run(scenario())
    assert max(sizes) > 1 and sum(sizes[:2]) >= 8
