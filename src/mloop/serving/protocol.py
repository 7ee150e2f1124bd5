"""Request and response formats: the Open Inference Protocol (KServe V2), mloop's simple
form and MLflow's scoring form, all turned into one DataFrame for the model.

Every mistake in a payload raises :class:`PayloadError` with the JSON path of the field
at fault; the server answers it with 400, never 500.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mloop.registry.signature import Signature

V2_DTYPES = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": object,
}


class PayloadError(ValueError):
    """A request the caller got wrong; ``field`` is where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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


def with_binary_inputs(body: Any, tail: bytes) -> Any:
    """Replace inputs sent as raw bytes (``parameters.binary_data_size``) by their values."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise PayloadError("inputs", "must be a non-empty list of tensors")
    offset = 0
    for i, item in enumerate(body["inputs"]):
        size = ((item.get("parameters") or {}).get("binary_data_size")
                if isinstance(item, dict) else None)
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(tail):
            raise PayloadError(f"inputs[{i}].parameters.binary_data_size",
                               "does not fit the binary part of the body")
        chunk, offset = tail[offset:offset + size], offset + size
        dtype = item.get("datatype")
        if dtype == "BYTES":  # each element: a 4-byte little-endian length, then the bytes
            values, pos = [], 0
            while pos + 4 <= len(chunk):
                n = int.from_bytes(chunk[pos:pos + 4], "little")
                values.append(chunk[pos + 4:pos + 4 + n].decode("utf-8", "replace"))
                pos += 4 + n
            item["data"] = values
        elif dtype in V2_DTYPES:
            try:
                item["data"] = np.frombuffer(chunk, dtype=np.dtype(V2_DTYPES[dtype])
                                             .newbyteorder("<"))
            except ValueError as exc:
                raise PayloadError(f"inputs[{i}].data", f"bytes are not {dtype}: {exc}") \
                    from None
        else:
            raise PayloadError(f"inputs[{i}].datatype", f"{dtype!r} is not a V2 datatype")
    return body


def _tensor(item: Any, where: str) -> np.ndarray:
    if not isinstance(item, dict):
        raise PayloadError(where, "each input must be an object with name, shape, datatype "
                                  "and data")
    for key in ("name", "shape", "datatype", "data"):
        if key not in item:
            raise PayloadError(f"{where}.{key}", "is required")
    shape, dtype = item["shape"], item["datatype"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise PayloadError(f"{where}.shape", "must be a list of non-negative integers")
    if dtype not in V2_DTYPES:
        raise PayloadError(f"{where}.datatype", f"{dtype!r} is not one of "
                                                f"{', '.join(V2_DTYPES)}")
    raw = item["data"]
    flat = raw.ravel() if isinstance(raw, np.ndarray) else np.asarray(raw, dtype=object).ravel()
    need = int(np.prod(shape)) if shape else 1
    if flat.size != need:
        raise PayloadError(f"{where}.data", f"shape {shape} needs {need} values, got "
                                            f"{flat.size}")
    try:
        values = flat.astype(V2_DTYPES[dtype]) if dtype != "BYTES" else np.array(
            [v.decode() if isinstance(v, bytes) else str(v) for v in flat], dtype=object)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{where}.data", f"values are not {dtype}: {exc}") from None
    return values.reshape(shape) if shape else values


def v2_frame(body: Any, signature: Signature | None) -> tuple[Any, list[str] | None, Any]:
    """(DataFrame, requested output names or None, request id) from a V2 infer request.

    Inputs are named tensors, one per column ([n] or [n, 1]), or a single 2-D tensor
    [n, k] whose columns follow the model's signature.
    """
    import pandas as pd

    if not isinstance(body, dict):
        raise PayloadError("$", "the body must be a JSON object with 'inputs'")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise PayloadError("inputs", "must be a non-empty list of tensors")
    tensors = [(str(t.get("name")) if isinstance(t, dict) else "", _tensor(t, f"inputs[{i}]"))
               for i, t in enumerate(inputs)]
    names = signature.names if signature is not None and signature.kind == "table" else None
    if len(tensors) == 1 and tensors[0][1].ndim == 2 and (
            names is None or tensors[0][0] not in names):
        matrix = tensors[0][1]
        if names is not None and matrix.shape[1] != len(names):
            raise PayloadError("inputs[0].shape", f"the model takes {len(names)} columns, got "
                                                  f"{matrix.shape[1]}")
        frame = pd.DataFrame(matrix, columns=names)
    else:
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
        frame = pd.DataFrame(columns)
    outputs = body.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and "name" in o
                                                    for o in outputs):
            raise PayloadError("outputs", "must be a list of objects with a name")
        wanted = [str(o["name"]) for o in outputs]
    return frame, wanted, body.get("id")


def records_frame(body: Any) -> Any:
    """mloop's simple form: {"records": [{…}, …]} or {"columns": […], "data": [[…], …]}."""
    import pandas as pd

    if isinstance(body, dict) and "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not records or not all(
                isinstance(r, dict) for r in records):
            raise PayloadError("records", "must be a non-empty list of objects")
        return pd.DataFrame(records)
    if isinstance(body, dict) and "data" in body:
        return _split(body, "")
    raise PayloadError("$", "send {\"records\": [...]} or {\"columns\": [...], \"data\": "
                            "[[...]]}")


def _split(body: dict[str, Any], prefix: str) -> Any:
    import pandas as pd

    data, columns = body.get("data"), body.get("columns")
    if not isinstance(data, list) or not data or not all(isinstance(r, list) for r in data):
        raise PayloadError(f"{prefix}data", "must be a non-empty list of rows")
    if columns is not None and (not isinstance(columns, list)
                                or any(len(r) != len(columns) for r in data)):
        raise PayloadError(f"{prefix}columns", "each row needs one value per column")
    return pd.DataFrame(data, columns=columns)


def mlflow_frame(body: Any, signature: Signature | None) -> Any:
    """MLflow's /invocations form: dataframe_split, dataframe_records, instances, inputs."""
    import pandas as pd

    if not isinstance(body, dict):
        raise PayloadError("$", "the body must be a JSON object")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict):
            raise PayloadError("dataframe_split", "must be an object with columns and data")
        return _split(split, "dataframe_split.")
    if "dataframe_records" in body:
        recs = body["dataframe_records"]
        if not isinstance(recs, list) or not recs or not all(isinstance(r, dict) for r in recs):
            raise PayloadError("dataframe_records", "must be a non-empty list of objects")
        return pd.DataFrame(recs)
    for key in ("instances", "inputs"):
        if key in body:
            try:
                return _instances(body[key], key, signature)
            except (ValueError, TypeError) as exc:  # ragged rows, columns of unequal length
                raise PayloadError(key, f"cannot form a table: {exc}") from None
    raise PayloadError("$", "send one of dataframe_split, dataframe_records, instances, "
                            "inputs")


def _instances(value: Any, key: str, signature: Signature | None) -> Any:
    import pandas as pd

    if isinstance(value, dict):
        return pd.DataFrame(value)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        if not all(isinstance(v, dict) for v in value):
            raise PayloadError(key, "mixes objects with other values; send one kind")
        return pd.DataFrame(value)
    if isinstance(value, list) and value:
        names = signature.names if signature is not None and \
            signature.kind == "table" else None
        arr = np.asarray(value, dtype=object)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise PayloadError(key, "rows must be flat lists of values")
        if names is not None and arr.shape[1] != len(names):
            raise PayloadError(key, f"rows have {arr.shape[1]} values; the model "
                                    f"takes {len(names)}")
        return pd.DataFrame(arr.tolist(), columns=names)
    raise PayloadError(key, "must be a non-empty list or an object of columns")


def v2_outputs(pred: np.ndarray, proba: np.ndarray | None, wanted: list[str] | None
               ) -> list[dict[str, Any]]:
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
        dtype = v2_datatype(arr)
        data = arr.astype(str).ravel().tolist() if dtype == "BYTES" else arr.ravel().tolist()
        out.append({"name": name, "shape": list(arr.shape), "datatype": dtype, "data": data})
    return out
