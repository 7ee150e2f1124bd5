"""Model signatures: what a model takes, inferred from an input example and enforced.

A *table* signature lists columns with their dtypes (from a DataFrame example); a
*tensor* signature gives the dtype and the shape after the first (batch) axis (from an
array example). ``enforce`` turns what a caller passes into what the model was trained
on, or raises :class:`~mloop.errors.InvalidInputError` naming the column at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError


@dataclass(frozen=True)
class Signature:
    kind: str  # "table" | "tensor"
    columns: tuple[tuple[str, str], ...] = ()  # table: (name, numpy dtype name)
    dtype: str | None = None  # tensor
    shape: tuple[int, ...] = ()  # tensor: shape without the batch axis

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "table":
            return {"kind": "table", "columns": [{"name": n, "dtype": d} for n, d in self.columns]}
        return {"kind": "tensor", "dtype": self.dtype, "shape": list(self.shape)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Signature:
        if data["kind"] == "table":
            return Signature("table", tuple((c["name"], c["dtype"]) for c in data["columns"]))
        return Signature("tensor", dtype=data["dtype"], shape=tuple(data["shape"]))

    def __str__(self) -> str:
        if self.kind == "table":
            shown = ", ".join(f"{n}: {d}" for n, d in self.columns[:8])
            more = len(self.columns) - 8
            return shown + (f" … and {more} more" if more > 0 else "")
        return f"tensor {self.dtype}[batch, {', '.join(map(str, self.shape))}]"


def _dtype_name(dtype: Any) -> str:
    kind = getattr(dtype, "kind", None) or np.dtype(dtype).kind  # pandas dtypes have .kind
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "int64"
    if kind == "f":
        return "float64"
    if kind == "M":
        return "datetime64[ns]"
    return "str"


def as_table(example: Any) -> Any:
    """Records (a list of dicts) or a dict of columns as a DataFrame; anything else as is."""
    import pandas as pd

    if isinstance(example, Mapping) or (isinstance(example, Sequence) and example
                                        and isinstance(example[0], Mapping)):
        return pd.DataFrame(example)
    return example


def infer(example: Any) -> Signature | None:
    """The signature of an input example (a DataFrame, array, list of records or dict)."""
    import pandas as pd

    if example is None:
        return None
    example = as_table(example)
    if isinstance(example, pd.DataFrame):
        return Signature("table", tuple((str(c), _dtype_name(example[c].dtype))
                                        for c in example.columns))
    arr = np.asarray(example)
    if arr.ndim == 0:
        raise InvalidInputError("An input example must be a batch (a table or an array of "
                                "rows), not a single value.")
    return Signature("tensor", dtype=_dtype_name(arr.dtype), shape=tuple(arr.shape[1:]))


def as_frame(data: Any, signature: Signature | None) -> Any:
    """What a caller passed, as a DataFrame (records, dicts, arrays and frames all work)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping) or (isinstance(data, Sequence) and data
                                     and isinstance(data[0], Mapping)):
        return pd.DataFrame(data)
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    names = signature.names if signature is not None and signature.kind == "table" else None
    if names is not None and arr.ndim == 2 and arr.shape[1] != len(names):
        raise InvalidInputError(f"Input rows have {arr.shape[1]} values; the model takes "
                                f"{len(names)} columns ({', '.join(names)}).")
    return pd.DataFrame(arr, columns=names)


def _cast(values: Any, dtype: str, name: str) -> Any:
    import pandas as pd

    try:
        if dtype == "str":
            return values.astype(object)
        if dtype == "datetime64[ns]":
            return pd.to_datetime(values)
        if dtype == "bool":
            if values.dtype.kind == "b":
                return values
            if values.dtype.kind in "iuf" and set(pd.unique(values)) <= {0, 1}:
                return values.astype(bool)
            raise ValueError("expected true/false")
        numbers = pd.to_numeric(values, errors="raise")
        if dtype == "int64":
            if numbers.isna().any() or not np.all(np.mod(numbers, 1) == 0):
                raise ValueError("expected whole numbers without gaps")
            return numbers.astype("int64")
        return numbers.astype("float64")
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"Column {name!r} cannot be read as {dtype}: {exc}") from None


def enforce(signature: Signature | None, data: Any) -> Any:
    """``data`` shaped and typed as the signature says (a DataFrame or an array)."""
    if signature is None:
        return data
    if signature.kind == "tensor":
        try:
            arr = np.asarray(data, dtype=signature.dtype if signature.dtype != "str" else object)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"Input cannot be read as {signature.dtype}: {exc}") from None
        if arr.ndim == len(signature.shape):
            arr = arr[None, ...]
        if tuple(arr.shape[1:]) != signature.shape:
            raise InvalidInputError(f"Input rows have shape {tuple(arr.shape[1:])}; the model "
                                    f"takes {signature.shape}.")
        return arr
    frame = as_frame(data, signature)
    have = [str(c) for c in frame.columns]
    if have == signature.names and all(
            _dtype_name(t) == d for t, (_, d) in zip(frame.dtypes, signature.columns, strict=True)):
        return frame  # already right: no copy (the common case, and the fast one)
    missing = [n for n in signature.names if n not in have]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InvalidInputError(f"Input is missing column(s) {shown}; the model takes: "
                                f"{signature}.")
    extra = [c for c in have if c not in signature.names]
    if extra:
        raise InvalidInputError(f"Input has column(s) the model does not take: "
                                f"{', '.join(map(repr, extra))}; it takes: {signature}.")
    out = frame[signature.names].copy()
    out.columns = signature.names
    for name, dtype in signature.columns:
        if _dtype_name(out[name].dtype) != dtype:
            out[name] = _cast(out[name], dtype, name)
    return out
