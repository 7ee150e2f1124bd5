"""Request and response formats: the Open Inference Protocol (KServe V2), mloop's simple
form and MLflow's scoring form, all turned into one DataFrame for the model.

Every mistake in a payload raises :class:`PayloadError` with the JSON path of the field
at fault; the server answers it with 400, never 500.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from mloop.errors import MalformedRequestError
from mloop.registry.signature import Signature

V2_DTYPES = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": object,
}


@dataclass(frozen=True)
class Rows:
    """Rows of an all-float64 table as one C-contiguous matrix, columns in the
    signature's order: what a V2 request sending one [n, k] FP64 tensor becomes.

    Why not a DataFrame: building one per request, and scikit-learn's checks of one, cost
    more than the prediction of a single row; a matrix goes to the model as it is (the
    ONNX twin, or a scikit-learn model that the warm-up showed answers a matrix as it
    answers the frame). It quacks like a frame where the server and the prediction log
    need it to (``len``, ``columns``, ``dtypes``, ``to_numpy``)."""

    values: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def columns(self) -> tuple[str, ...]:
        return self.names

    @property
    def dtypes(self) -> list[np.dtype[Any]]:
        return [self.values.dtype] * len(self.names)

    def to_numpy(self) -> np.ndarray:
        return self.values

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.values, columns=list(self.names))


class PayloadError(MalformedRequestError, ValueError):
    """A request the caller got wrong; ``field`` is where.

    ``status`` (its ``http_status``) is 400 when the body is not in the protocol's form,
    422 when it is but a value does not fit (a string in an FP64 tensor, 1000 in an INT8
    one). Still a ``ValueError``, as it was before it joined the error tree.
    """

    code = "invalid_payload"

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        # the caller's own payload quoted back to them, unredacted as it always was (so
        # not MloopError.__init__): redaction would also mask the words after a field
        # named like a secret ("token: …"), and cost more than the rest of a 400
        Exception.__init__(self, f"{field}: {message}")
        self.field = field
        self.message = message  # the body's "error"; str() has the field first
        self.http_status = status

    @property
    def status(self) -> int:
        return self.http_status


def v2_datatype(arr: np.ndarray) -> str:
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind == "i":
        return f"INT{size * 8}"
    if kind == "u":
        return f"UINT{size * 8}"
    if kind == "f":
        return f"FP{size * 8}"
    return "BYTES"


def _datatype(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in V2_DTYPES:  # {} is not even hashable
        raise PayloadError(where, f"must be one of {', '.join(V2_DTYPES)}")
    return value


def _bytes_elements(chunk: bytes, where: str) -> list[str]:
    """BYTES in the binary extension: each a 4-byte little-endian length, then UTF-8."""
    values, pos = [], 0
    while pos < len(chunk):
        n = int.from_bytes(chunk[pos:pos + 4], "little")
        if pos + 4 + n > len(chunk):
            raise PayloadError(where, "an element's length runs past the end of its bytes")
        try:
            values.append(chunk[pos + 4:pos + 4 + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise PayloadError(where, f"element {len(values)} is not UTF-8", 422) from None
        pos += 4 + n
    return values


def with_binary_inputs(body: Any, tail: bytes) -> Any:
    """Replace inputs sent as raw bytes (``parameters.binary_data_size``) by their values."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise PayloadError("inputs", "must be a non-empty list of tensors")
    offset = 0
    for i, item in enumerate(body["inputs"]):
        params = item.get("parameters") if isinstance(item, dict) else None
        if params is not None and not isinstance(params, dict):
            raise PayloadError(f"inputs[{i}].parameters", "must be an object")
        size = (params or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 \
                or offset + size > len(tail):
            raise PayloadError(f"inputs[{i}].parameters.binary_data_size",
                               "does not fit the binary part of the body")
        chunk, offset = tail[offset:offset + size], offset + size
        dtype = _datatype(item.get("datatype"), f"inputs[{i}].datatype")
        if dtype == "BYTES":
            item["data"] = _bytes_elements(chunk, f"inputs[{i}].data")
            continue
        raw = np.dtype(np.uint8 if dtype == "BOOL" else V2_DTYPES[dtype]).newbyteorder("<")
        if len(chunk) % raw.itemsize:
            raise PayloadError(f"inputs[{i}].data", f"{len(chunk)} bytes are not a whole "
                                                    f"number of {dtype} values")
        values = np.frombuffer(chunk, dtype=raw)
        if dtype == "BOOL":
            if (values > 1).any():
                raise PayloadError(f"inputs[{i}].data", "BOOL bytes must be 0 or 1", 422)
            values = values.astype(bool)
        item["data"] = values
    return body


# The JSON types each V2 datatype holds: null is a missing value where one can be held
# (FP: NaN; BYTES: None); booleans are not numbers and numbers are not strings.
_JSON_TYPES: dict[str, set[type]] = {"BOOL": {bool}, "BYTES": {str, type(None)}}
_JSON_TYPES.update({t: {int} for t in V2_DTYPES if t.startswith(("INT", "UINT"))})
_JSON_TYPES.update({t: {int, float, type(None)} for t in ("FP16", "FP32", "FP64")})
_JSON_NAMES = {bool: "true/false", int: "integers", float: "numbers", str: "strings",
               type(None): "null"}


def _flat(raw: Any, where: str) -> tuple[list[Any], set[type]]:
    """The values of a JSON tensor, flattened (V2 allows nested or flat ``data``), and
    the set of their types (one C-level pass: no Python loop over the values)."""
    if not isinstance(raw, list):
        raise PayloadError(where, "must be a list of values")
    types = set(map(type, raw))
    if list not in types:
        return raw, types
    try:
        flat = np.asarray(raw, dtype=object).ravel().tolist()
    except (ValueError, TypeError, RecursionError) as exc:
        raise PayloadError(where, f"nested lists must be even: {exc}") from None
    types = set(map(type, flat))
    if list in types:
        raise PayloadError(where, "nested lists must be even (the same length at each level)")
    return flat, types


def _json_values(flat: list[Any], types: set[type], dtype: str, where: str) -> np.ndarray:
    """A JSON tensor's values as ``dtype``; only the types of ``_JSON_TYPES``, in range."""
    allowed = _JSON_TYPES[dtype]
    if not types <= allowed:
        i, value = next((i, v) for i, v in enumerate(flat) if type(v) not in allowed)
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise PayloadError(where, f"value {i} ({shown}) is not {dtype}: it takes "
                                  f"{' or '.join(_JSON_NAMES[t] for t in allowed)}"
                                  " (values are never converted)", 422)
    target = V2_DTYPES[dtype]
    if dtype == "BYTES":
        return np.array(flat, dtype=object)
    try:
        if dtype.startswith("FP"):
            values = np.array(flat, dtype=np.float64)
            limit = np.finfo(target).max
            if dtype != "FP64" and (np.abs(values[~np.isnan(values)]) > limit).any():
                raise OverflowError(f"a value is beyond {dtype}'s range (±{limit:.4g})")
            return values.astype(target)
        return np.array(flat, dtype=target)  # NumPy refuses integers out of range
    except OverflowError as exc:
        info = np.iinfo(target) if not dtype.startswith("FP") else None
        span = f" ({info.min} to {info.max})" if info is not None else ""
        raise PayloadError(where, f"out of range for {dtype}{span}: {exc}", 422) from None


def _tensor(item: Any, where: str) -> np.ndarray:
    if not isinstance(item, dict):
        raise PayloadError(where, "each input must be an object with name, shape, datatype "
                                  "and data")
    for key in ("name", "shape", "datatype", "data"):
        if key not in item:
            raise PayloadError(f"{where}.{key}", "is required")
    if not isinstance(item["name"], str):
        raise PayloadError(f"{where}.name", "must be a string")
    if not isinstance(item.get("parameters", {}), dict):
        raise PayloadError(f"{where}.parameters", "must be an object")
    shape = item["shape"]
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise PayloadError(f"{where}.shape", "must be a list of non-negative integers")
    dtype = _datatype(item["datatype"], f"{where}.datatype")
    raw = item["data"]
    if isinstance(raw, np.ndarray):  # from the binary extension
        values = raw
        if dtype.startswith("FP") and np.isinf(values).any():
            raise PayloadError(f"{where}.data", "holds an infinite value; send finite "
                                                "numbers (NaN for a missing value)", 422)
    else:
        values = _json_values(*_flat(raw, f"{where}.data"), dtype, f"{where}.data")
    need = math.prod(shape)  # exact: NumPy's product would wrap around
    if values.size != need:
        raise PayloadError(f"{where}.data", f"shape {shape} needs {need} values, got "
                                            f"{values.size}")
    return values.reshape(shape) if shape else values


def _unique_names(inputs: list[Any]) -> list[str]:
    names: dict[str, int] = {}
    for i, item in enumerate(inputs):
        name = item["name"]
        if name in names:
            raise PayloadError(f"inputs[{i}].name", f"{name!r} is also the name of "
                                                    f"inputs[{names[name]}]; each input "
                                                    "names one column")
        names[name] = i
    return list(names)


def v2_frame(body: Any, signature: Signature | None) -> tuple[Any, list[str] | None, Any]:
    """(rows, requested output names or None, request id) from a V2 infer request.

    Inputs are named tensors, one per column ([n] or [n, 1]), or a single 2-D tensor
    [n, k] whose columns follow the model's signature; a model with a tensor signature
    takes one tensor of any shape [n, …], returned as an array.
    """
    import pandas as pd

    if not isinstance(body, dict):
        raise PayloadError("$", "the body must be a JSON object with 'inputs'")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise PayloadError("inputs", "must be a non-empty list of tensors")
    arrays = [_tensor(t, f"inputs[{i}]") for i, t in enumerate(inputs)]
    tensors = list(zip(_unique_names(inputs), arrays, strict=True))
    rid, wanted = body.get("id"), _wanted(body.get("outputs"))
    if rid is not None and not isinstance(rid, str):
        raise PayloadError("id", "must be a string")
    if signature is not None and signature.kind == "tensor":
        if len(arrays) != 1 or arrays[0].ndim == 0:
            raise PayloadError("inputs", "this model takes one tensor [n, …]")
        return arrays[0], wanted, rid
    names = signature.names if signature is not None else None
    if len(tensors) == 1 and tensors[0][1].ndim == 2 and (
            names is None or tensors[0][0] not in names):
        matrix = tensors[0][1]
        if names is not None and matrix.shape[1] != len(names):
            raise PayloadError("inputs[0].shape", f"the model takes {len(names)} columns, got "
                                                  f"{matrix.shape[1]}")
        if signature is not None and matrix.dtype == np.float64 and all(
                d == "float64" for _, d in signature.columns):
            return Rows(np.ascontiguousarray(matrix), tuple(signature.names)), wanted, rid
        return pd.DataFrame(matrix, columns=names), wanted, rid
    columns: dict[str, Any] = {}
    rows = None
    for i, (name, arr) in enumerate(tensors):
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise PayloadError(f"inputs[{i}].shape", "a named input is one column: "
                                                     "shape [n] or [n, 1]")
        if rows is not None and len(arr) != rows:
            raise PayloadError(f"inputs[{i}].shape", f"has {len(arr)} rows, the first "
                                                     f"input {rows}")
        rows = len(arr)
        columns[name] = arr
    return pd.DataFrame(columns), wanted, rid


def _wanted(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise PayloadError("outputs", "must be a list of objects with a name (a string)")
    return [o["name"] for o in outputs]


def _one_form(body: Any, forms: tuple[str, ...]) -> str:
    """The one key of ``forms`` that ``body`` uses; two are ambiguous, none is no request."""
    if not isinstance(body, dict):
        raise PayloadError("$", f"the body must be a JSON object with one of "
                                f"{', '.join(forms)}")
    used = [f for f in forms if f in body]
    if len(used) != 1:
        raise PayloadError("$", f"send exactly one of {', '.join(forms)}"
                                + (f", not {' and '.join(used)}" if used else ""))
    return used[0]


def _records(records: Any, field: str) -> Any:
    """A list of objects as a DataFrame; a key absent from a record is a missing value."""
    import pandas as pd

    if not isinstance(records, list) or not records or not all(
            isinstance(r, dict) for r in records):
        raise PayloadError(field, "must be a non-empty list of objects")
    return pd.DataFrame(records)


def records_frame(body: Any) -> Any:
    """mloop's simple form: {"records": [{…}, …]} or {"columns": […], "data": [[…], …]}."""
    if _one_form(body, ("records", "data")) == "records":
        return _records(body["records"], "records")
    return _split(body, "")


def _rows(data: Any, field: str) -> list[list[Any]]:
    """A non-empty list of rows of one length."""
    if not isinstance(data, list) or not data or not all(isinstance(r, list) for r in data):
        raise PayloadError(field, "must be a non-empty list of rows (lists)")
    if len(set(map(len, data))) != 1:
        raise PayloadError(field, "rows must all have the same number of values")
    return data


def _split(body: dict[str, Any], prefix: str) -> Any:
    import pandas as pd

    data, columns = _rows(body.get("data"), f"{prefix}data"), body.get("columns")
    if columns is None:
        return pd.DataFrame(data)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise PayloadError(f"{prefix}columns", "must be a list of column names (strings)")
    if len(set(columns)) != len(columns):
        twice = next(c for i, c in enumerate(columns) if c in columns[:i])
        raise PayloadError(f"{prefix}columns", f"{twice!r} is listed more than once")
    if len(data[0]) != len(columns):
        raise PayloadError(f"{prefix}columns", "each row needs one value per column")
    return pd.DataFrame(data, columns=columns)


MLFLOW_FORMS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def mlflow_frame(body: Any, signature: Signature | None) -> Any:
    """MLflow's /invocations form: exactly one of dataframe_split, dataframe_records,
    instances, inputs."""
    form = _one_form(body, MLFLOW_FORMS)
    value = body[form]
    if form == "dataframe_split":
        if not isinstance(value, dict):
            raise PayloadError(form, "must be an object with columns and data")
        return _split(value, "dataframe_split.")
    if form == "dataframe_records":
        return _records(value, form)
    return _instances(value, form, signature)


def _instances(value: Any, key: str, signature: Signature | None) -> Any:
    """Columns ({name: [values]}), records, rows of values, or one row of values."""
    import pandas as pd

    if isinstance(value, dict):
        if not value or not all(isinstance(v, list) for v in value.values()) or len(
                set(map(len, value.values()))) != 1:
            raise PayloadError(key, "columns must be lists of values, all of one length")
        return pd.DataFrame(value)
    if not isinstance(value, list) or not value:
        raise PayloadError(key, "must be a non-empty list or an object of columns")
    if isinstance(value[0], dict):
        return _records(value, key)
    rows = _rows(value, key) if isinstance(value[0], list) else [value]
    if set(map(type, chain.from_iterable(rows))) & {list, dict}:  # one C-level pass
        raise PayloadError(key, "rows must be flat lists of values")
    names = signature.names if signature is not None and signature.kind == "table" else None
    if names is not None and len(rows[0]) != len(names):
        raise PayloadError(key, f"rows have {len(rows[0])} values; the model takes "
                                f"{len(names)}")
    return pd.DataFrame(rows, columns=names)


def v2_outputs(pred: np.ndarray, proba: np.ndarray | None, wanted: list[str] | None,
               declared: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """V2 output tensors; ``declared`` (name: datatype, what the model's metadata says)
    fixes each tensor's datatype so that responses always match the metadata."""
    available: dict[str, np.ndarray] = {"predict": np.asarray(pred)}
    if proba is not None:
        available["predict_proba"] = np.asarray(proba)
    names = wanted or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise PayloadError("outputs", f"unknown output(s) {', '.join(unknown)}; this model "
                                      f"has {', '.join(available)}")
    out = []
    for name in names:
        arr = available[name]
        dtype = (declared or {}).get(name) or v2_datatype(arr)
        try:
            arr = arr.astype(str if dtype == "BYTES" else V2_DTYPES[dtype], copy=False)
        except (TypeError, ValueError):  # a model whose outputs change type: say what it is
            dtype = v2_datatype(arr)
            arr = arr.astype(str) if dtype == "BYTES" else arr
        data = arr.ravel().tolist()
        out.append({"name": name, "shape": list(arr.shape), "datatype": dtype, "data": data})
    return out
