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
    V2_DTYPES,
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


# -- every caller's mistake is a PayloadError naming the field (4xx), never a crash ----------

def _t(name="a", shape=(1,), datatype="FP64", data=(1.0,), **extra):
    return {"name": name, "shape": list(shape) if isinstance(shape, tuple) else shape,
            "datatype": datatype, "data": list(data) if isinstance(data, tuple) else data,
            **extra}


@pytest.mark.parametrize(("inputs", "field", "status"), [
    ([_t(datatype={})], "inputs[0].datatype", 400),  # unhashable: it was a TypeError
    ([_t(datatype=["FP64"])], "inputs[0].datatype", 400),
    ([_t(datatype=None)], "inputs[0].datatype", 400),
    ([_t(name=None)], "inputs[0].name", 400),
    ([_t(name={"a": 1})], "inputs[0].name", 400),
    ([_t(shape=[True])], "inputs[0].shape", 400),
    ([_t(shape=[10 ** 30, 10 ** 30], data=[1.0])], "inputs[0].data", 400),  # no wrap-around
    ([_t(), _t()], "inputs[1].name", 400),  # the same column twice
    ([_t(datatype="INT8", data=[1000])], "inputs[0].data", 422),  # overflow, not -24
    ([_t(datatype="UINT8", data=[-1])], "inputs[0].data", 422),  # overflow, not 255
    ([_t(datatype="INT64", data=[2 ** 64])], "inputs[0].data", 422),
    ([_t(datatype="FP16", data=[1e6])], "inputs[0].data", 422),  # not inf
    ([_t(datatype="FP32", data=[1e300])], "inputs[0].data", 422),
    ([_t(datatype="FP64", data=[10 ** 400])], "inputs[0].data", 422),
    ([_t(data=[True])], "inputs[0].data", 422),  # true is not 1.0
    ([_t(data=["17.5"])], "inputs[0].data", 422),  # a string is not a number
    ([_t(datatype="INT64", data=[1.5])], "inputs[0].data", 422),  # not truncated to 1
    ([_t(datatype="INT64", data=[None])], "inputs[0].data", 422),
    ([_t(datatype="BOOL", data=[1])], "inputs[0].data", 422),
    ([_t(datatype="BOOL", data=[None])], "inputs[0].data", 422),
    ([_t(datatype="BYTES", data=[5])], "inputs[0].data", 422),  # not "5"
    ([_t(data=[{"x": 1}])], "inputs[0].data", 422),
    ([_t(shape=[2, 1], data=[[1.0], [2.0, 3.0]])], "inputs[0].data", 400),  # uneven nesting
    ([_t(data=None)], "inputs[0].data", 400),
    ([_t(data=1.0)], "inputs[0].data", 400),
    ([_t(parameters=[1])], "inputs[0].parameters", 400),
])
def test_v2_values_that_do_not_fit_are_refused(inputs, field, status):
    with pytest.raises(PayloadError) as err:
        v2_frame({"inputs": inputs}, SIG)
    assert (err.value.field, err.value.status) == (field, status)


def test_v2_nulls_are_missing_values_only_where_a_tensor_can_hold_them():
    import pandas as pd

    frame, _, _ = v2_frame({"inputs": [_t(shape=[2], data=[1.5, None]),
                                       _t("b", [2], "INT64", [1, 2])]}, SIG)
    assert frame["a"].isna().tolist() == [False, True]
    frame, _, _ = v2_frame({"inputs": [_t("s", [2], "BYTES", ["x", None])]}, None)
    assert frame["s"].iloc[0] == "x" and pd.isna(frame["s"].iloc[1])


@pytest.mark.parametrize(("tail", "params", "dtype", "field"), [
    (b"\x05\x00\x00\x00ab", {"binary_data_size": 6}, "BYTES", "inputs[0].data"),  # short
    (b"\x01\x00\x00\x00\xff", {"binary_data_size": 5}, "BYTES", "inputs[0].data"),  # not UTF-8
    (b"\x02", {"binary_data_size": 1}, "BOOL", "inputs[0].data"),
    (np.array([np.inf]).tobytes(), {"binary_data_size": 8}, "FP64", "inputs[0].data"),
    (b"\x00" * 7, {"binary_data_size": 7}, "FP64", "inputs[0].data"),
    (b"\x00" * 8, {"binary_data_size": True}, "FP64", "inputs[0].parameters.binary_data_size"),
    (b"\x00" * 8, {"binary_data_size": 8}, {}, "inputs[0].datatype"),
])
def test_binary_tensors_that_do_not_fit_are_refused(tail, params, dtype, field):
    body = {"inputs": [{"name": "a", "shape": [1], "datatype": dtype, "parameters": params}]}
    with pytest.raises(PayloadError) as err:
        v2_frame(with_binary_inputs(body, tail), SIG)
    assert err.value.field == field


@pytest.mark.parametrize(("body", "field"), [
    ({"records": [{"a": 1}], "data": [[1]]}, "$"),  # two forms: which one?
    ({"columns": ["a", "a"], "data": [[1, 2]]}, "columns"),  # a column twice
    ({"columns": ["a", {}], "data": [[1, 2]]}, "columns"),
    ({"columns": ["a", "b"], "data": [[1, 2], [1]]}, "data"),
    ({"data": [[1, 2], [1]]}, "data"),  # ragged rows are not padded with nulls
    ({"records": [{"a": 1}, 2]}, "records"),
])
def test_simple_form_mistakes(body, field):
    with pytest.raises(PayloadError) as err:
        records_frame(body)
    assert err.value.field == field


@pytest.mark.parametrize(("body", "field"), [
    ({"instances": [[1, 2]], "inputs": {"a": [1], "b": [2]}}, "$"),  # MLflow: one form
    ({"dataframe_split": {"columns": ["a"], "data": [[1]]},
      "dataframe_records": [{"a": 1}]}, "$"),
    ({"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}, "dataframe_split.columns"),
    ({"inputs": {"a": {"x": 1}, "b": [1]}}, "inputs"),  # a column must be a list
    ({"inputs": {"a": [1], "b": [1, 2]}}, "inputs"),
    ({"instances": [[1, 2], [1]]}, "instances"),
    ({"instances": [[1, [2]]]}, "instances"),
    ({"instances": [1, [2]]}, "instances"),
    ({"params": {}}, "$"),
])
def test_mlflow_form_mistakes(body, field):
    with pytest.raises(PayloadError) as err:
        mlflow_frame(body, SIG)
    assert err.value.field == field


def test_outputs_are_cast_to_the_declared_datatypes():
    out = v2_outputs(np.array([1, 0], dtype=np.int32), np.array([[0.1, 0.9], [0.8, 0.2]]),
                     None, {"predict": "INT64", "predict_proba": "FP64"})
    assert [o["datatype"] for o in out] == ["INT64", "FP64"] and out[0]["data"] == [1, 0]
    out = v2_outputs(np.array(["yes"], dtype=object), None, None, {"predict": "BYTES"})
    assert out[0]["data"] == ["yes"]


# -- property: any JSON in a V2 / simple / MLflow body is read, or refused as a caller error ---

SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 66), 2 ** 66),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3))
ANY = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3)
                   | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)
DATATYPE = st.one_of(st.sampled_from(list(V2_DTYPES)), ANY)


@st.composite
def _v2_tensor(draw, names):
    rows = draw(st.integers(0, 3))
    if draw(st.booleans()):  # a plausible tensor: one column of some datatype
        return {"name": draw(st.sampled_from([*names, "x"])), "shape": [rows],
                "datatype": draw(DATATYPE), "data": draw(st.lists(SCALAR, min_size=rows,
                                                                   max_size=rows))}
    keys = {"name": st.one_of(st.sampled_from(names), ANY),
            "shape": st.one_of(st.lists(st.integers(-1, 3), max_size=3), ANY),
            "datatype": DATATYPE, "data": st.one_of(st.lists(SCALAR, max_size=4),
                                                     st.lists(st.lists(SCALAR, max_size=2),
                                                              max_size=2), ANY),
            "parameters": ANY}
    return draw(st.fixed_dictionaries({}, optional=keys))


def bodies(names=("a", "b")):
    """(V2, simple, MLflow) body strategies whose columns are mostly ``names``: any JSON
    where the protocols put values, and plausible shapes often enough to reach the model."""
    v2 = st.fixed_dictionaries({}, optional={
        "inputs": st.one_of(st.lists(_v2_tensor(list(names)), min_size=1, max_size=len(names)
                                     + 1), ANY),
        "outputs": st.one_of(st.lists(st.fixed_dictionaries({"name": st.one_of(
            st.sampled_from(["predict", "predict_proba"]), ANY)}), max_size=2), ANY),
        "id": ANY})
    width = len(names)
    rows = st.lists(st.lists(SCALAR, min_size=width, max_size=width), min_size=1, max_size=3)
    records = st.lists(st.dictionaries(st.sampled_from([*names, "c"]), ANY,
                                       max_size=width + 1), min_size=1, max_size=3)
    split = st.fixed_dictionaries({"columns": st.just(list(names)), "data": rows})
    columns = st.fixed_dictionaries({n: st.lists(SCALAR, max_size=2) for n in names})
    mlflow = st.dictionaries(st.sampled_from(
        ["dataframe_split", "dataframe_records", "instances", "inputs", "params"]),
        st.one_of(ANY, records, rows, split, columns), max_size=2)
    simple = st.one_of(ANY, st.fixed_dictionaries({}, optional={
        "records": st.one_of(records, ANY), "columns": st.one_of(st.just(list(names)), ANY),
        "data": st.one_of(rows, ANY)}))
    return v2, simple, mlflow


V2_BODY, SIMPLE_BODY, MLFLOW_BODY = bodies()


def _read_or_refuse(parse):
    """Parse and enforce: refused as a caller's error, or read without converting a value
    from one type to another (``true`` is not 1, ``"17.5"`` is not 17.5)."""
    from mloop.errors import InvalidInputError
    from mloop.registry.signature import enforce

    try:
        rows = parse()
        out = enforce(SIG, rows, nullable=frozenset({"a"}))
    except (PayloadError, InvalidInputError):
        return
    assert out["a"].dtype == np.float64 and out["b"].dtype == np.int64
    raw = rows.set_axis([str(c) for c in rows.columns], axis=1)
    for column in ("a", "b"):
        for sent, got in zip(raw[column].tolist(), out[column].tolist(), strict=True):
            if sent is None or (isinstance(sent, float) and np.isnan(sent)):
                assert column == "a" and np.isnan(got)  # a gap only where taken
                continue
            assert not isinstance(sent, bool | str) and got == sent, (column, sent, got)


@settings(max_examples=600, deadline=None)
@given(V2_BODY, st.sampled_from([SIG, None, Signature("tensor", dtype="float64", shape=(2,))]))
def test_any_v2_body_is_read_or_refused_as_a_caller_error(body, signature):
    from mloop.errors import InvalidInputError
    from mloop.registry.signature import enforce

    try:
        rows, _, _ = v2_frame(body, signature)
        enforce(signature, rows, nullable=frozenset())
    except (PayloadError, InvalidInputError):
        return


@settings(max_examples=400, deadline=None)
@given(SIMPLE_BODY, MLFLOW_BODY)
def test_any_simple_or_mlflow_body_is_read_or_refused_as_a_caller_error(simple, mlflow):
    _read_or_refuse(lambda: records_frame(simple))
    _read_or_refuse(lambda: mlflow_frame(mlflow, SIG))


# -- micro-batching: a request the model cannot take fails alone --------------------------

def test_a_failing_request_does_not_fail_its_batch():
    import pandas as pd

    from mloop.serving.batcher import ModelFailed

    calls = []

    def predict(frame, with_proba):
        calls.append(len(frame))
        time.sleep(0.01)
        if (np.asarray(frame)[:, 0] < 0).any():
            raise ValueError("negative input")
        return np.asarray(frame)[:, 0] * 2, None

    async def scenario(make):
        batcher = MicroBatcher(predict, max_batch_size=64, max_delay=0.02)
        batcher.start()
        values = [1, 2, -1, 3, 4, -2, 5]
        out = await asyncio.wait_for(asyncio.gather(  # a dead batch loop would hang: fail
            *(batcher.submit(make(v)) for v in values), return_exceptions=True), 30)
        await batcher.stop()
        return values, out

    # tables, and arrays (a tensor model's rows: merging them once killed the batch loop)
    for make in (lambda v: pd.DataFrame({"a": [v]}), lambda v: np.array([[v, 0.0]])):
        calls.clear()
        values, out = asyncio.run(scenario(make))
        for v, result in zip(values, out, strict=True):
            if v < 0:
                assert isinstance(result, ModelFailed) and "negative input" in str(result)
            else:
                assert result[0].tolist() == [2 * v]
        assert calls[0] == 7 and 1 in calls  # merged, then split down to the culprits
