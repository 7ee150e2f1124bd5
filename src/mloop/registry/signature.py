"""Model signatures: what a model takes, inferred from an input example and enforced.

A *table* signature lists columns with their dtypes (from a DataFrame example); a
*tensor* signature gives the dtype and the shape after the first (batch) axis (from an
array example). ``enforce`` turns what a caller passes into what the model was trained
on, or raises :class:`ColumnError` (an :class:`~mloop.errors.InvalidInputError`) naming
the column at fault. It converts nothing that changes meaning: integers are floats, a
whole float is an integer, and that is all (``true`` is not 1, ``"17.5"`` is not a number).
Missing values (None, NaN) never go into an int64 or bool column, and into the others
only where the caller says the model takes them (``nullable``; the server finds out by
trying the model at load).
"""

from __future__ import annotations

import math
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
    if arr.ndim != 2:
        raise InvalidInputError(f"Input must be a table (rows of values), not an array of "
                                f"{arr.ndim} dimensions.")
    if names is not None and arr.shape[1] != len(names):
        raise InvalidInputError(f"Input rows have {arr.shape[1]} values; the model takes "
                                f"{len(names)} columns ({', '.join(names)}).")
    return pd.DataFrame(arr, columns=names)


# What each signature dtype takes, as pandas' ``infer_dtype`` names what it found in an
# object column (missing values skipped). Integers widen to floats; a whole float is an
# integer; nothing else converts: ``true`` is not 1 and ``"17.5"`` is not a number.
_TAKES = {
    "float64": {"integer", "floating", "mixed-integer-float", "empty"},
    "int64": {"integer", "floating", "mixed-integer-float", "empty"},
    "bool": {"boolean", "empty"},
    "str": {"string", "empty"},
    "datetime64[ns]": {"string", "datetime", "datetime64", "date", "empty"},
}
_KIND_FOUND = {"b": "boolean", "i": "integer", "u": "integer", "f": "floating",
               "M": "datetime64", "m": "timedelta64", "c": "complex", "U": "string"}
_WANTED = {"float64": "numbers", "int64": "whole numbers", "bool": "true/false",
           "str": "strings", "datetime64[ns]": "ISO 8601 date-time strings"}
_KINDS = {"float64": "f", "int64": "i", "bool": "b", "datetime64[ns]": "M"}
_INT64_MAX = float(2 ** 63)
# dtypes in which a missing value can be held; int64 and bool columns never take one
MISSABLE = ("float64", "str", "datetime64[ns]")


class ColumnError(InvalidInputError):
    """A column (or the tensor, named ``input``) that does not fit the signature."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _found(values: np.ndarray) -> str:
    """What ``values`` hold, in ``infer_dtype``'s words (one C pass for object arrays)."""
    from pandas.api.types import infer_dtype

    kind = values.dtype.kind
    return infer_dtype(values, skipna=True) if kind in "OS" else _KIND_FOUND.get(kind, "mixed")


def _fits(value: Any, dtype: str) -> bool:
    """Whether one value fits ``dtype`` (only used to name the first value that does not)."""
    import pandas as pd

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if isinstance(value, bool | np.bool_):
        return dtype == "bool"
    if isinstance(value, int | np.integer):
        return dtype in ("float64", "int64")
    if isinstance(value, float | np.floating):
        return dtype == "float64" or (dtype == "int64" and float(value).is_integer())
    if isinstance(value, str):
        return dtype in ("str", "datetime64[ns]")
    return dtype == "datetime64[ns]" and isinstance(value, pd.Timestamp | np.datetime64)


def _wrong_type(values: np.ndarray, dtype: str, name: str, found: str,
                width: int) -> ColumnError:
    """The error for a column holding what ``dtype`` does not take, naming the first row."""
    where = next(((i, v) for i, v in enumerate(values.tolist()) if not _fits(v, dtype)),
                 None)
    shown = f"it holds {found.replace('-', ' ')} values"
    if where is not None:
        value = repr(where[1])
        shown = f"row {where[0] // width} has {value if len(value) <= 40 else value[:37] + '...'}"
    return ColumnError(name, f"Column {name!r} cannot be read as {dtype}: it takes "
                             f"{_WANTED[dtype]}, and {shown} (values are never converted "
                             "from one type to another).")


def _as_int64(numbers: np.ndarray, name: str, width: int) -> np.ndarray:
    """Whole numbers in int64's range as int64; anything else names its row."""
    if numbers.dtype.kind == "f":
        good = np.isfinite(numbers)
        good[good] = (np.mod(numbers[good], 1) == 0) & (np.abs(numbers[good]) < _INT64_MAX)
    elif numbers.dtype.kind == "u":
        good = numbers <= np.iinfo(np.int64).max
    else:
        try:  # Python integers: numpy refuses those out of range
            return numbers.astype(np.int64)
        except OverflowError:
            good = np.array([-(2 ** 63) <= v < 2 ** 63 for v in numbers.tolist()])
    if not good.all():
        row = int(np.flatnonzero(~good)[0])
        value = numbers.tolist()[row]
        raise ColumnError(name, f"Column {name!r} cannot be read as int64: row {row // width} "
                                f"has {value!r}, not a whole number from -2**63 to 2**63 - 1.")
    return numbers.astype(np.int64)


def _refuse_inexact(values: np.ndarray, floats: np.ndarray, name: str, width: int) -> None:
    """A :class:`ColumnError` for a whole number a float64 cannot hold exactly (beyond
    2**53 it would reach the model as another number)."""
    for i in np.flatnonzero(np.abs(floats) >= 2.0 ** 53).tolist():  # rare: a Python loop
        value = values[i]
        if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_) \
                and int(value) != int(floats[i]):
            raise ColumnError(name, f"Column {name!r} cannot be read as float64 exactly: row "
                                    f"{i // width} has {int(value)}, a whole number beyond "
                                    "2**53 that would reach the model as "
                                    f"{floats[i]:.17g}; send it as a float.")


def _cast(values: np.ndarray, dtype: str, name: str, width: int = 1) -> Any:
    """``values`` (one column, or a tensor's values ``width`` to a row) as ``dtype`` under
    the rules of ``_TAKES``, or a :class:`ColumnError`."""
    import pandas as pd

    found = _found(values)
    if found not in _TAKES[dtype]:
        raise _wrong_type(values, dtype, name, found, width)
    missing = pd.isna(values)
    if dtype not in MISSABLE and missing.any():
        raise _missing(name, dtype, int(np.flatnonzero(missing)[0]) // width)
    try:
        if dtype == "str":
            return values.astype(object)
        if dtype == "bool":
            return values.astype(bool)
        if dtype == "datetime64[ns]":
            return pd.to_datetime(values, format="ISO8601")
        if dtype == "float64" or found != "integer":
            floats = values.astype(np.float64)
            if dtype == "float64" and found in ("integer", "mixed-integer-float"):
                _refuse_inexact(values, floats, name, width)
            values = floats
        return values if dtype == "float64" else _as_int64(values, name, width)
    except (ValueError, TypeError, OverflowError) as exc:
        # pandas' date errors go on with advice about its own arguments: keep the first part
        reason = str(exc).split(". You might")[0].splitlines()[0] if str(exc) else \
            type(exc).__name__
        raise ColumnError(name, f"Column {name!r} cannot be read as {dtype}: "
                                f"{reason}") from None


def _missing(name: str, dtype: str, row: int) -> ColumnError:
    reason = (f"{'an' if dtype[0] in 'aeiou' else 'a'} {dtype} column cannot hold one"
              if dtype not in MISSABLE
              else "the model does not take missing values in it (it failed on them when "
                   "the server loaded it)")
    return ColumnError(name, f"Column {name!r} has a missing value (null or NaN) in row "
                             f"{row}: {reason}.")


def _refuse_missing(frame: Any, signature: Signature, nullable: frozenset[str] | None) -> None:
    """A :class:`ColumnError` for the first column with a missing value it cannot take.

    int64 and bool columns never take one; float, string and date-time columns take one
    when ``nullable`` names them, or always when ``nullable`` is None (not known: the
    model decides).
    """
    check = [i for i, (n, d) in enumerate(signature.columns)
             if d not in MISSABLE or (nullable is not None and n not in nullable)]
    if not check:
        return
    holes = frame.isna().to_numpy()[:, check]  # one vectorised pass over the whole frame
    bad = np.flatnonzero(holes.any(axis=0))
    if bad.size:
        name, dtype = signature.columns[check[bad[0]]]
        raise _missing(name, dtype, int(np.flatnonzero(holes[:, bad[0]])[0]))


def refuse_missing_values(values: np.ndarray, signature: Signature,
                          nullable: frozenset[str] | None) -> None:
    """:func:`enforce`'s missing-value check for a float64 matrix whose columns are the
    signature's (all float64), without building a frame: a :class:`ColumnError` for the
    first column outside ``nullable`` (when given) holding a NaN."""
    if nullable is None:
        return
    check = [i for i, (n, _) in enumerate(signature.columns) if n not in nullable]
    if not check:
        return
    holes = np.isnan(values[:, check])
    bad = np.flatnonzero(holes.any(axis=0))
    if bad.size:
        name, dtype = signature.columns[check[bad[0]]]
        raise _missing(name, dtype, int(np.flatnonzero(holes[:, bad[0]])[0]))


def _shown(names: list[str]) -> str:
    return ", ".join(map(repr, names[:5])) + (
        f" and {len(names) - 5} more" if len(names) > 5 else "")


def _enforce_tensor(signature: Signature, data: Any, nullable: frozenset[str] | None) -> Any:
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise ColumnError("input", f"Input cannot be read as a {signature.dtype} array: "
                                   f"{exc}") from None
    if arr.ndim == len(signature.shape):
        arr = arr[None, ...]
    if tuple(arr.shape[1:]) != signature.shape:
        raise ColumnError("input", f"Input rows have shape {tuple(arr.shape[1:])}; the model "
                                   f"takes {signature.shape}.")
    dtype = signature.dtype or "float64"
    if not _typed(arr.dtype, dtype):
        width = int(np.prod(signature.shape)) if signature.shape else 1
        arr = np.asarray(_cast(arr.ravel(), dtype, "input", width)).reshape(arr.shape)
    if dtype not in MISSABLE or (nullable is not None and "input" not in nullable):
        import pandas as pd

        holes = pd.isna(arr)
        if holes.any():
            raise _missing("input", dtype, int(np.argwhere(holes)[0][0]))
    return arr


def enforce(signature: Signature | None, data: Any, *,
            nullable: frozenset[str] | None = None) -> Any:
    """``data`` shaped and typed as the signature says (a DataFrame or an array).

    Values convert only where no meaning changes (integers to floats, whole floats to
    integers; see ``_TAKES``); anything else, a missing value in an int64 or bool
    column, or in a column outside ``nullable`` (when given), is a :class:`ColumnError`
    naming the column. ``nullable`` names the columns (``input`` for a tensor) where the
    model takes missing values; None leaves float, string and date-time gaps to the model.
    """
    if signature is None:
        return data
    if signature.kind == "tensor":
        return _enforce_tensor(signature, data, nullable)
    frame = as_frame(data, signature)
    have = list(map(str, frame.columns.tolist()))
    if have != signature.names:
        _check_names(have, signature)
        frame = frame.set_axis(have, axis=1)[signature.names]
    casts = {}
    for (name, dtype), actual in zip(signature.columns, frame.dtypes, strict=True):
        if _typed(actual, dtype):
            continue  # already right: no copy (the common case, and the fast one)
        casts[name] = _cast(frame[name].to_numpy(), dtype, name)
    if casts:
        frame = frame.assign(**casts)
    _refuse_missing(frame, signature, nullable)
    return frame


def _typed(actual: Any, dtype: str) -> bool:
    """Whether a column of dtype ``actual`` holds only what ``dtype`` takes, by its dtype
    alone (object columns may hold anything; uint64 may be over int64's range)."""
    if dtype == "str":
        import pandas as pd

        return isinstance(actual, pd.StringDtype)
    return bool(actual.kind == _KINDS[dtype])


def _check_names(have: list[str], signature: Signature) -> None:
    """A :class:`ColumnError` for a repeated, missing or unknown column."""
    seen: set[str] = set()
    for column in have:
        if column in seen:
            raise ColumnError(column, f"Input has column {column!r} more than once.")
        seen.add(column)
    missing = [n for n in signature.names if n not in seen]
    if missing:
        raise ColumnError(missing[0], f"Input is missing column(s) {_shown(missing)}; the "
                                      f"model takes: {signature}.")
    wanted = set(signature.names)
    extra = [c for c in have if c not in wanted]
    if extra:
        raise ColumnError(extra[0], f"Input has column(s) the model does not take: "
                                    f"{_shown(extra)}; it takes: {signature}.")
