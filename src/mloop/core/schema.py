"""Schemas of the files users write, and the one way their mistakes are reported.

Every configuration file mloop reads (test suites, ``.mloop/monitoring.yaml``,
``.mloop/automation.yaml``, ``mloop.yaml``, data validation schemas, model card specs)
has one schema: a pydantic model deriving from :class:`Schema`, which refuses keys it
does not know at every level and takes types strictly (``min: "0.9"`` or ``min: yes`` is
an error, not a number; an integer is a number). :func:`validate` checks a parsed file
against its schema and turns pydantic's ``ValidationError`` into one
:class:`~mloop.errors.ConfigError`, one line per problem, each naming the file, the path
of the key (``checks[0].mni``), what is wrong and, for an unknown key, the closest known
one (``did you mean 'min'?``) — or the required key that is missing beside it, since
``feature:`` where ``column:`` belongs is the same mistake. :func:`config_error` writes
the checks a schema cannot express (a check kind's name, a cycle) in the same form.

``docs/configuration.md`` is generated from these schemas (:func:`markdown_table`,
``python -m mloop.config_docs``), so the docs list every key and cannot drift.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticUndefined

from mloop.core.redact import redact
from mloop.errors import ConfigError, InvalidInputError

MAX_REPORTED = 10  # problems listed in one error; the rest are counted
M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class Schema(BaseModel):
    """Base of every file schema: unknown keys are errors, types are strict."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class TypeName:
    """Names a field's expected value for people (docs and errors), when the Python type
    says too little (``a duration such as 10m``)."""

    text: str
    plural: str = ""


# -- reusable field types -------------------------------------------------------------------


def _duration_ms(value: Any) -> int:
    from mloop.core.clock import parse_duration

    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10m, not {value!r}")
    try:
        return parse_duration(value)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from None


def one_or_many(value: Any) -> Any:
    """A lone string as a one-item list (``deps: a.csv`` means ``deps: [a.csv]``)."""
    return [value] if isinstance(value, str) else value


def _number_as_text(value: Any) -> Any:
    """Names may look like numbers (a model called 2024): YAML reads those as numbers."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


#: A duration: ``90s``, ``10m``, ``1h``, ``7d``, ``2w`` or a number of seconds; held in ms.
Duration = Annotated[int, BeforeValidator(_duration_ms),
                     TypeName("a duration: 90s, 10m, 1h, 7d, 2w or seconds", "durations")]
#: One string or a list of them (held as a list).
Strings = Annotated[list[str], BeforeValidator(one_or_many),
                    TypeName("a string or a list of strings")]
#: A name (of a model, dataset, column, …); a number is read as its text.
Name = Annotated[str, BeforeValidator(_number_as_text), TypeName("a name", "names")]


# -- validation -------------------------------------------------------------------------------


def validate(model: type[M], data: Any, *, source: str | Path, at: Loc = ()) -> M:
    """``data`` checked against ``model``; a :class:`ConfigError` naming ``source`` and
    each key at fault (below the path ``at`` when ``data`` is part of a file)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # each part quoted from the file is redacted by describe_errors
        raise ConfigError.of_redacted_parts(
            describe_errors(exc, model, source=source, at=at)) from None


def config_error(source: str | Path, at: Loc, problem: str) -> ConfigError:
    """A :class:`ConfigError` in the form :func:`validate` reports: ``file: path: problem``."""
    where = path_text(at)
    return ConfigError(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


def closest(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` is most likely a typo of, if any is close enough."""
    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, choices: Sequence[str], *, known: bool = True) -> str:
    """``; did you mean 'x'?`` — or the list of choices when none is close."""
    match = closest(word, choices)
    if match is not None:
        return f"; did you mean {match!r}?"
    if known and choices:
        return f"; known: {', '.join(sorted(map(str, choices)))}"
    return ""


def path_text(loc: Loc) -> str:
    """``('checks', 0, 'min')`` → ``checks[0].min``; keys that are not plain words are
    quoted (``columns['mean radius']``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][\w-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def describe_errors(exc: ValidationError, model: type[BaseModel], *, source: str | Path,
                    at: Loc = ()) -> str:
    """The lines of a :class:`ConfigError` for every problem pydantic found, in the
    order of the file; one line per key."""
    # pydantic adds '[key]' after a mapping key it refuses: the key itself is the place
    located = [(_walk(model, tuple(p for p in e["loc"] if p != "[key]")), e)
               for e in exc.errors(include_url=False)]
    missing = {(w.parent, w.key) for w, e in located if e["type"] == "missing"}
    problems: dict[Loc, list[str]] = {}
    expected: dict[Loc, tuple[list[str], str]] = {}  # wrong types: what would do, what came
    suggested: set[tuple[Loc, str | int | None]] = set()
    # unknown keys first: one may be the missing key mistyped, which is then not repeated
    for walk, error in sorted(located, key=lambda we: we[1]["type"] != "extra_forbidden"):
        kind = error["type"]
        if kind == "extra_forbidden":
            text, match = _unknown_key(walk, missing)
            suggested.add((walk.parent, match))
            problems.setdefault(at + walk.path, []).append(text)
        elif kind == "missing":
            if (walk.parent, walk.key) not in suggested:
                problems.setdefault(at + walk.parent, []).append(
                    f"the key {walk.key!r} is required ({walk.type_text or 'a value'}); add it")
        elif kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
            # a union reports each member: 'a string or a list of strings'
            wanted, _ = expected.setdefault(at + walk.path,
                                            ([], redact(_shown(error.get("input")))))
            name = walk.type_text or _pydantic_noun(error["msg"])
            if name not in wanted:
                wanted.append(name)
            problems.setdefault(at + walk.path, [])
        else:
            texts = problems.setdefault(at + walk.path, [])
            if (text := redact(_problem(walk, error))) not in texts:
                texts.append(text)
    source = redact(str(source))
    lines = []
    for loc, texts in problems.items():
        if loc in expected:
            wanted, got = expected[loc]
            texts = [f"expected {' or '.join(wanted)}, got {got}", *texts]
        where = redact(path_text(loc))  # a key the user wrote, alone: masked if it is a secret
        lines.append(f"{source}: {where}: {'; '.join(texts)}" if where
                     else f"{source}: {'; '.join(texts)}")
    if len(lines) > MAX_REPORTED:
        lines = [*lines[:MAX_REPORTED], f"{source}: … and {len(lines) - MAX_REPORTED} more "
                 "problems"]
    return "\n".join(lines)


def _unknown_key(walk: _Walk, missing: set[tuple[Loc, str | int | None]]
                 ) -> tuple[str, str | None]:
    """The text for an unknown key, and the key suggested instead (if any)."""
    known = list(walk.siblings)
    match = closest(str(walk.key), known)
    if match is None:
        required = [str(k) for p, k in missing if p == walk.parent and k is not None]
        match = required[0] if len(required) == 1 else None
    if match is not None:
        return f"unknown key; did you mean {match!r}?", match
    if known:
        return f"unknown key; known keys: {', '.join(known)}", None
    return "unknown key; this takes no keys", None


def _problem(walk: _Walk, error: Mapping[str, Any]) -> str:
    """A problem that is neither an unknown key nor a wrong type: a choice, a length, a
    range, or a validator's own words."""
    kind, got = error["type"], _shown(error.get("input"))
    if kind == "literal_error":
        choices = [str(c) for c in get_args(walk.bare)] if walk.bare is not None else []
        hint = did_you_mean(str(error.get("input")), choices, known=False)
        expected = error.get("ctx", {}).get("expected", ", ".join(map(repr, choices)))
        return f"expected one of {expected}, got {got}{hint}"
    if kind in ("too_short", "too_long"):
        ctx = error.get("ctx", {})
        least = "at least" if kind == "too_short" else "at most"
        count = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"needs {least} {count} item{'' if count == 1 else 's'}, got {got}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should be "):
        message = f"must be {message.removeprefix('Input should be ')}, got {got}"
    return message


def _pydantic_noun(msg: str) -> str:
    return msg.removeprefix("Input should be ").removeprefix("a valid ")


def _shown(value: Any, width: int = 60) -> str:
    text = repr(value)
    if isinstance(value, Mapping | list | tuple):
        text = f"a {'mapping' if isinstance(value, Mapping) else 'list'} {text}"
    return text if len(text) <= width else text[:width - 1] + "…"


# -- walking a schema along an error's location --------------------------------------------


@dataclass
class _Walk:
    """Where an error's location leads in the schema: the path to show (union tags
    dropped), the parent mapping's path and known keys, and the expected type."""

    path: Loc
    parent: Loc
    key: str | int | None
    siblings: tuple[str, ...]
    tp: Any  # the annotation at the location, or None when unknown
    bare: Any = None  # the annotation without Annotated / Optional
    union: str = ""  # the name of the union the location is a member of, if it has one

    @property
    def type_text(self) -> str:
        if self.union:
            return self.union
        return type_text(self.tp) if self.tp is not None else ""


def _walk(model: type[BaseModel], loc: Loc) -> _Walk:
    tp: Any = model
    path: list[str | int] = []
    parent: Loc = ()
    siblings: tuple[str, ...] = ()
    key: str | int | None = None
    union = ""
    for part in loc:
        bare, meta = unwrap(tp) if tp is not None else (None, ())
        if _is_union(bare) and isinstance(part, str):
            names = [m.text for m in meta if isinstance(m, TypeName)]
            union = names[-1] if names else ""
            tp = _union_member(bare, part)  # a union's tag, not a key of the file
            continue
        union = ""
        parent, key = tuple(path), part
        path.append(part)
        if isinstance(bare, type) and issubclass(bare, BaseModel):
            fields = keys_of(bare)
            siblings = tuple(fields)
            tp = fields.get(str(part))
        elif get_origin(bare) in (list, tuple, set, frozenset) or get_origin(bare) is Sequence:
            args = get_args(bare)
            tp = args[0] if args and isinstance(part, int) else None
        elif get_origin(bare) in (dict, Mapping):
            args = get_args(bare)
            tp = args[1] if len(args) == 2 else None
        else:
            tp = None
    bare = unwrap(tp)[0] if tp is not None else None
    return _Walk(tuple(path), parent, key, siblings, tp, bare, union)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType)


def _union_member(union: Any, tag: str) -> Any:
    for member in get_args(union):
        bare = unwrap(member)[0]
        name = getattr(bare, "__name__", None) or str(bare)
        if tag in (name, str(bare)) or tag == _type_repr(bare):
            return member
    return None


def _type_repr(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", str(tp))
    return f"{origin.__name__}[{','.join(_type_repr(a) for a in get_args(tp))}]"


def keys_of(model: type[BaseModel]) -> dict[str, Any]:
    """The keys a schema takes (aliases where set), each with its full annotation."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        out[info.alias or name] = annotation
    return out


def unwrap(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """``tp`` without ``Annotated`` and ``Optional``, and the metadata found on the way."""
    meta: tuple[Any, ...] = ()
    while True:
        if get_origin(tp) is Annotated:
            args = get_args(tp)
            for extra in args[1:]:  # Field(ge=0) inside Annotated holds its bounds
                meta += (extra, *getattr(extra, "metadata", ()))
            tp = args[0]
            continue
        if _is_union(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) == 1:
                tp = rest[0]
                continue
        return tp, meta


# -- names of types, for errors and docs ------------------------------------------------------

_NOUNS: dict[Any, tuple[str, str]] = {
    float: ("a number", "numbers"), int: ("an integer", "integers"),
    str: ("a string", "strings"), bool: ("true or false", "true/false values"),
    Any: ("any value", "values"), date: ("a date", "dates"),
    datetime: ("a date and time", "dates and times"),
}


def type_text(tp: Any, *, plural: bool = False) -> str:
    """``a number``, ``one of 'a', 'b'``, ``a list of strings``, ``a mapping`` …"""
    bare, meta = unwrap(tp)
    names = [m for m in meta if isinstance(m, TypeName)]
    if names:
        if not plural:
            return names[-1].text
        return names[-1].plural or f"items, each {names[-1].text}"
    text = _bare_text(bare, plural)
    bounds = _bounds(meta)
    return f"{text} {bounds}" if bounds else text


def _bare_text(bare: Any, plural: bool) -> str:
    origin = get_origin(bare)
    if bare in _NOUNS:
        return _NOUNS[bare][1 if plural else 0]
    if origin is Literal:
        return ("values among " if plural else "one of ") + ", ".join(
            repr(a) for a in get_args(bare))
    if origin in (list, tuple, set, frozenset, Sequence):
        args = get_args(bare)
        inner = type_text(args[0], plural=True) if args else "values"
        return ("lists" if plural else "a list") + f" of {inner}"
    if origin in (dict, Mapping):
        args = get_args(bare)
        inner = type_text(args[1]) if len(args) == 2 else "any value"
        return ("mappings" if plural else "a mapping") + f" of names to {inner}"
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "mappings" if plural else "a mapping"
    if _is_union(bare):
        return " or ".join(type_text(a, plural=plural) for a in get_args(bare))
    return getattr(bare, "__name__", str(bare))


def _bounds(meta: tuple[Any, ...]) -> str:
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "length >="}
    parts = []
    for m in meta:
        for attr, sign in words.items():
            value = getattr(m, attr, None)
            if value is not None and not callable(value):
                parts.append(f"{sign} {value}")
    return f"({', '.join(parts)})" if parts else ""


# -- docs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyDoc:
    """One key of a schema, as the docs list it."""

    key: str
    type_name: str
    default: str
    description: str


def key_docs(model: type[BaseModel]) -> list[KeyDoc]:
    """Every key of ``model`` with its type, default and description."""
    out = []
    for name, info in model.model_fields.items():
        annotation = keys_of(model)[info.alias or name]
        if info.is_required():
            default = "required"
        else:
            value = info.get_default(call_default_factory=True)
            default = "not set" if value is None or value is PydanticUndefined else \
                f"`{_yaml_text(value)}`"
        out.append(KeyDoc(info.alias or name, type_text(annotation), default,
                          (info.description or "").strip()))
    return out


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def nested_models(model: type[BaseModel], prefix: str = ""
                  ) -> Iterator[tuple[str, type[BaseModel]]]:
    """Every schema below ``model``, each with the path of its keys in the file:
    ``rules[]`` for a list item, ``stages.<name>`` for a mapping's value."""
    for key, annotation in keys_of(model).items():
        for path, inner in _paths_to_models(annotation, f"{prefix}{key}"):
            yield path, inner
            yield from nested_models(inner, f"{path}.")


def _paths_to_models(tp: Any, path: str) -> Iterator[tuple[str, type[BaseModel]]]:
    bare, _ = unwrap(tp)
    origin = get_origin(bare)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        yield path, bare
    elif origin in (list, tuple, set, frozenset, Sequence):
        for arg in get_args(bare)[:1]:
            yield from _paths_to_models(arg, f"{path}[]")
    elif origin in (dict, Mapping):
        for arg in get_args(bare)[1:]:
            yield from _paths_to_models(arg, f"{path}.<name>")
    elif _is_union(bare):
        for arg in get_args(bare):
            yield from _paths_to_models(arg, path)


def markdown_text(text: str) -> str:
    """``text`` safe in a Markdown table cell: ``|`` escaped, ``<name>`` not read as HTML."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return re.sub(r"<(?=[A-Za-z/!])", "&lt;", text)


def markdown_table(model: type[BaseModel], *, prefix: str = "",
                   skip: Callable[[KeyDoc], bool] | None = None) -> str:
    """A Markdown table of ``model``'s keys (``prefix`` is put before each key)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for doc in key_docs(model):
        if skip is not None and skip(doc):
            continue
        cells = (f"`{prefix}{doc.key}`", markdown_text(doc.type_name), doc.default,
                 markdown_text(doc.description))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


__all__ = [
    "Duration",
    "KeyDoc",
    "Name",
    "Schema",
    "Strings",
    "TypeName",
    "closest",
    "config_error",
    "describe_errors",
    "did_you_mean",
    "key_docs",
    "keys_of",
    "markdown_table",
    "markdown_text",
    "nested_models",
    "one_or_many",
    "path_text",
    "type_text",
    "unwrap",
    "validate",
]
