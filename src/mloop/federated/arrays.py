"""Weights as one flat vector, and weights on the wire as an uncompressed ``.npz``.

Aggregation is vectorised over a matrix of flattened updates (clients × parameters),
never a Python loop over layers per client. On the wire a message is a plain ``.npz``
(``numpy.savez``, no compression: weights hardly compress and zlib would cost more
than the bytes it saves on a LAN) holding arrays ``w0 … wN`` and, optionally, a
``meta`` array of UTF-8 JSON bytes. It is read with ``allow_pickle=False``: an object
array cannot run code here, and a message that holds one is refused.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from mloop.errors import InvalidInputError
from mloop.federated.types import Weights

_META = "meta"
#: The dtypes a message may carry (no objects, no strings: numbers only).
NUMERIC_KINDS = frozenset("biuf")


def shapes(weights: Sequence[np.ndarray]) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for w in weights]


def flatten(weights: Sequence[np.ndarray], dtype: Any = np.float64) -> np.ndarray:
    """All arrays as one 1-D vector of ``dtype`` (a copy), in order."""
    if not weights:
        return np.zeros(0, dtype=dtype)
    return np.concatenate([np.asarray(w, dtype=dtype).ravel() for w in weights])


def unflatten(vector: np.ndarray, like: Sequence[np.ndarray]) -> Weights:
    """``vector`` cut back into arrays of ``like``'s shapes and dtypes."""
    out: Weights = []
    at = 0
    for w in like:
        n = int(np.prod(w.shape, dtype=np.int64))
        out.append(vector[at:at + n].reshape(w.shape).astype(w.dtype, copy=False))
        at += n
    if at != vector.size:
        raise ValueError(f"a vector of {vector.size} values does not fit shapes totalling {at}")
    return out


def stack(updates: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """A (clients × parameters) float64 matrix of flattened updates."""
    if not updates:
        raise ValueError("no updates to stack")
    return np.stack([flatten(u) for u in updates])


def check_like(weights: Sequence[np.ndarray], like: Sequence[np.ndarray],
               what: str = "update") -> None:
    """Raise :class:`InvalidInputError` unless ``weights`` has ``like``'s shapes, numeric
    dtypes and only finite values."""
    if len(weights) != len(like):
        raise InvalidInputError(f"the {what} has {len(weights)} arrays; the model has "
                                f"{len(like)}")
    for i, (w, ref) in enumerate(zip(weights, like, strict=True)):
        if w.shape != ref.shape:
            raise InvalidInputError(f"array {i} of the {what} has shape {tuple(w.shape)}; "
                                    f"the model's is {tuple(ref.shape)}")
        if w.dtype.kind not in NUMERIC_KINDS:
            raise InvalidInputError(f"array {i} of the {what} is not numeric ({w.dtype})")
        if w.dtype.kind == "f" and not np.isfinite(w).all():
            raise InvalidInputError(f"array {i} of the {what} holds NaN or infinite values")


def encode(weights: Sequence[np.ndarray], meta: dict[str, Any] | None = None, *,
           float32: bool = False) -> bytes:
    """One message: ``weights`` (dtype kept, or floats as float32) and ``meta`` as JSON."""
    arrays: dict[str, np.ndarray] = {}
    for i, w in enumerate(weights):
        a = np.asarray(w)
        if float32 and a.dtype.kind == "f":
            a = a.astype(np.float32)
        arrays[f"w{i}"] = a
    if meta is not None:
        arrays[_META] = np.frombuffer(json.dumps(meta, separators=(",", ":")).encode(),
                                      dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


#: arrays in one message at most (a model's layers; a zip of a million members is an attack)
MAX_ARRAYS = 100_000


def _check_stored(source: Any) -> None:
    """Refuse compressed members: a few KB of deflate can inflate to gigabytes, so only
    stored (uncompressed) members are read, whose size the upload limit already bounds."""
    with zipfile.ZipFile(source) as archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise ValueError(f"{len(members)} arrays; at most {MAX_ARRAYS}")
        for info in members:
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{info.filename[:40]!r} is compressed: send an uncompressed "
                                 ".npz (numpy.savez, not savez_compressed)")
            with archive.open(info) as member:  # the header's shape must fit the bytes
                version = npformat.read_magic(member)
                if version == (1, 0):
                    shape, _order, dtype = npformat.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _order, dtype = npformat.read_array_header_2_0(member)
                else:
                    raise ValueError(f".npy format {version} is not read here")
                if math.prod(shape) * dtype.itemsize > info.file_size:  # exact: no overflow
                    raise ValueError(f"{info.filename[:40]!r} declares more data than it holds")
    source.seek(0)


def decode(data: bytes | io.BufferedIOBase | Any) -> tuple[Weights, dict[str, Any]]:
    """The weights and meta of a message made by :func:`encode`; anything else (a
    pickle, a truncated upload, names out of order) raises :class:`InvalidInputError`."""
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        _check_stored(source)
        with np.load(source, allow_pickle=False) as npz:
            names = list(npz.files)
            meta: dict[str, Any] = {}
            if _META in names:
                names.remove(_META)
                meta = json.loads(npz[_META].tobytes().decode())
                if not isinstance(meta, dict):
                    raise ValueError("meta is not a JSON object")
            expected = [f"w{i}" for i in range(len(names))]
            if sorted(names) != sorted(expected):
                raise ValueError(f"unexpected array names {sorted(names)[:5]}")
            weights = [npz[name] for name in expected]
    except InvalidInputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError,
            UnicodeDecodeError, NotImplementedError, RecursionError, OverflowError,
            TypeError) as exc:
        raise InvalidInputError(f"not a weights message (.npz of numeric arrays): {exc}. "
                                "Send what mloop.federated.arrays.encode writes.") from exc
    for i, w in enumerate(weights):
        if w.dtype.kind not in NUMERIC_KINDS:
            raise InvalidInputError(f"array w{i} is not numeric ({w.dtype}); weights are "
                                    "numbers only")
    return weights, meta


__all__ = ["check_like", "decode", "encode", "flatten", "shapes", "stack", "unflatten"]
