"""JSON for the repositories' typed records, directed by their type hints.

The team server and its HTTP client speak the Backend protocol's own types: frozen
dataclasses, ``StrEnum`` statuses, tuples, optionals. :func:`encode` turns any of them into
JSON-ready values (dataclasses as objects of their public fields, enums as their values,
tuples and sets as arrays); :func:`decode` rebuilds a value of a given type from JSON,
checking it on the way: a wrong type, an unknown or missing field, an integer outside
64 bits, a string with NUL or an unpaired surrogate raise :class:`DecodeError` naming the
place (``new.name``, ``points[3][4]``), which the server answers with a 400. The same hints
give the JSON Schema of each request (:func:`schema_of`), published in the OpenAPI document.

Floats stay floats: NaN and ±infinity travel as the non-standard JSON tokens Python's
``json`` reads and writes (``NaN``, ``Infinity``), so a metric's NaN comes back NaN.
This module imports no web framework: the client pays only for ``httpx``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Union

from mloop.errors import MalformedRequestError

INT64 = 2**63 - 1


class DecodeError(MalformedRequestError):
    """A JSON value does not fit the type it should hold (400, ``malformed_request``)."""


def dumps(value: Any) -> bytes:
    """Compact JSON of an encoded value (NaN and infinities as ``NaN``/``Infinity``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=True).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON text; :class:`DecodeError` when it is not JSON."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"The request body is not valid JSON: {exc}.") from None


# ── encoding ────────────────────────────────────────────────────────────────────────

def encode(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (records, enums, tuples, sets, paths, numpy scalars)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return value.value
        return value
    if isinstance(value, enum.Enum):
        return encode(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in _fields(type(value))}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)) or _is_iterator(value):
        return [encode(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return encode(item())
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def _is_iterator(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, bytearray))


# ── type hints ──────────────────────────────────────────────────────────────────────

@cache
def _namespace() -> dict[str, Any]:
    """Names the repository modules import only for type checking, for resolving hints."""
    from mloop.core.owner import Owner
    from mloop.tracking.filter import BoolOp, Comparison, Node, OrderKey

    return {"Owner": Owner, "Node": Node, "Comparison": Comparison, "BoolOp": BoolOp,
            "OrderKey": OrderKey, "Project": Any}


def hints(obj: Any) -> dict[str, Any]:
    """The resolved type hints of a function or class (forward references included)."""
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    globalns = dict(vars(module)) if module is not None else {}
    for name, value in _namespace().items():
        globalns.setdefault(name, value)
    return typing.get_type_hints(obj, globalns=globalns)


@cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(cls) if not f.name.startswith("_"))


@cache
def _field_types(cls: type) -> dict[str, Any]:
    resolved = hints(cls)
    return {f.name: resolved[f.name] for f in _fields(cls)}


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


# ── decoding ────────────────────────────────────────────────────────────────────────

def decode(tp: Any, data: Any, where: str = "value") -> Any:
    """``data`` (parsed JSON) as a value of type ``tp``; :class:`DecodeError` otherwise."""
    return _decoder(tp)(data, where)


Decoder = Callable[[Any, str], Any]


@cache
def _decoder(tp: Any) -> Decoder:
    if tp is Any or tp is object:
        return _any
    if tp is None or tp is type(None):
        return _none
    if tp is bool:
        return _bool
    if tp is int:
        return _int
    if tp is float:
        return _float
    if tp is str:
        return _str
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _union(args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp)
    if _is_namedtuple(tp):
        types_ = hints(tp)
        fixed = _fixed_tuple(tuple(_decoder(types_[f]) for f in tp._fields))
        return lambda data, where: tp(*fixed(data, where))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(_decoder(args[0]), tuple)
        return _fixed_tuple(tuple(_decoder(a) for a in args))
    if origin in (list, Sequence, Iterable, typing.Iterable) or tp in (list, Sequence):
        return _sequence(_decoder(args[0] if args else Any), list)
    if origin in (set, frozenset):
        return _sequence(_decoder(args[0] if args else Any), origin)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        key, value = args if args else (str, Any)
        return _mapping(_decoder(key), _decoder(value))
    raise TypeError(f"no JSON decoder for {tp!r}")


def _is_namedtuple(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def _fail(where: str, wanted: str, data: Any) -> DecodeError:
    got = "null" if data is None else type(data).__name__
    return DecodeError(f"{where}: expected {wanted}, got {got}.")


def _any(data: Any, where: str) -> Any:
    return data


def _none(data: Any, where: str) -> None:
    if data is not None:
        raise _fail(where, "null", data)


def _bool(data: Any, where: str) -> bool:
    if not isinstance(data, bool):
        raise _fail(where, "a boolean", data)
    return data


def _int(data: Any, where: str) -> int:
    if not isinstance(data, int) or isinstance(data, bool):
        raise _fail(where, "an integer", data)
    if not -INT64 - 1 <= data <= INT64:
        raise DecodeError(f"{where}: {data} does not fit in 64 bits.")
    return data


def _float(data: Any, where: str) -> float:
    if not isinstance(data, (int, float)) or isinstance(data, bool):
        raise _fail(where, "a number", data)
    return float(data)


def _str(data: Any, where: str) -> str:
    if not isinstance(data, str):
        raise _fail(where, "a string", data)
    if "\x00" in data:
        raise DecodeError(f"{where}: text may not contain NUL characters.")
    try:
        data.encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError(f"{where}: text is not valid Unicode (an unpaired "
                          "surrogate).") from None
    return data


def _union(args: tuple[Any, ...]) -> Decoder:
    optional = type(None) in args
    choices = [_decoder(a) for a in args if a is not type(None)]

    def decode_union(data: Any, where: str) -> Any:
        if data is None and optional:
            return None
        problems = []
        for choice in choices:
            try:
                return choice(data, where)
            except DecodeError as exc:
                problems.append(exc.message)
        if len(problems) == 1:
            raise DecodeError(problems[0])
        raise DecodeError(f"{where}: matches none of the allowed forms ({'; '.join(problems)})")
    return decode_union


def _enum(cls: type[enum.Enum]) -> Decoder:
    values = {m.value: m for m in cls}

    def decode_enum(data: Any, where: str) -> enum.Enum:
        try:
            return values[data]
        except (KeyError, TypeError):
            allowed = ", ".join(str(v) for v in values)
            raise DecodeError(f"{where}: {data!r} is not one of {allowed}.") from None
    return decode_enum


def _dataclass(cls: type) -> Decoder:
    fields = _fields(cls)
    required = frozenset(f.name for f in fields if _required(f))
    known = frozenset(f.name for f in fields)
    decoders: dict[str, Decoder] = {}

    def decode_record(data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise _fail(where, f"an object ({cls.__name__})", data)
        unknown = data.keys() - known
        if unknown:
            raise DecodeError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
                              f"of {cls.__name__}.")
        missing = required - data.keys()
        if missing:
            raise DecodeError(f"{where}: missing field(s) {', '.join(sorted(missing))} "
                              f"of {cls.__name__}.")
        if not decoders:  # resolved on first use: records may refer to each other
            types_ = _field_types(cls)
            decoders.update({name: _decoder(tp) for name, tp in types_.items()})
        values = {k: decoders[k](v, f"{where}.{k}") for k, v in data.items()}
        return cls(**values)
    return decode_record


def _sequence(item: Decoder, make: Callable[[Any], Any]) -> Decoder:
    def decode_sequence(data: Any, where: str) -> Any:
        if not isinstance(data, list):
            raise _fail(where, "an array", data)
        try:
            return make(item(v, f"{where}[{i}]") for i, v in enumerate(data))
        except TypeError:  # an unhashable member of a set
            raise DecodeError(f"{where}: the members must be plain values.") from None
    return decode_sequence


def _fixed_tuple(items: tuple[Decoder, ...]) -> Decoder:
    def decode_tuple(data: Any, where: str) -> tuple[Any, ...]:
        if not isinstance(data, list) or len(data) != len(items):
            raise _fail(where, f"an array of {len(items)}", data)
        return tuple(d(v, f"{where}[{i}]") for i, (d, v) in enumerate(zip(items, data,
                                                                          strict=True)))
    return decode_tuple


def _mapping(key: Decoder, value: Decoder) -> Decoder:
    def decode_mapping(data: Any, where: str) -> dict[Any, Any]:
        if not isinstance(data, dict):
            raise _fail(where, "an object", data)
        return {key(k, f"{where} key"): value(v, f"{where}[{k!r}]") for k, v in data.items()}
    return decode_mapping


# ── JSON Schema (for the OpenAPI document) ──────────────────────────────────────────

def schema_of(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of values of ``tp``; records go into ``defs`` by name and are
    referred to as ``#/components/schemas/<Name>``."""
    if tp is Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer", "format": "int64"}  # bounds: 64 bits, checked on decode
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema_of(a, defs) for a in args]}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # a placeholder first: records may refer to themselves
            types_ = _field_types(tp)
            defs[name] = {
                "title": name, "type": "object", "additionalProperties": False,
                "properties": {n: schema_of(t, defs) for n, t in types_.items()},
                "required": [f.name for f in _fields(tp) if _required(f)]}
        return {"$ref": f"#/components/schemas/{name}"}
    if _is_namedtuple(tp):
        types_ = hints(tp)
        return {"type": "array", "prefixItems": [schema_of(types_[f], defs)
                                                 for f in tp._fields],
                "minItems": len(tp._fields), "maxItems": len(tp._fields)}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_of(args[0], defs)}
        return {"type": "array", "prefixItems": [schema_of(a, defs) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin in (list, set, frozenset, Sequence, Iterable, typing.Iterable) or tp in (
            list, Sequence):
        return {"type": "array", "items": schema_of(args[0] if args else Any, defs)}
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        value = args[1] if args else Any
        return {"type": "object", "additionalProperties": schema_of(value, defs)}
    raise TypeError(f"no JSON schema for {tp!r}")
