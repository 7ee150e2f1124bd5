"""Helpers of :mod:`mloop.pipelines.fingerprint`: reading source, walking code objects,
encoding values (kept apart so the walk itself reads in one place)."""

from __future__ import annotations

import ast
import enum
import functools
import importlib.util
import inspect
import linecache
import sys
import textwrap
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

_MAX_UNWRAP = 32  # wrapper layers followed; a guard against self-referencing proxies
_MAX_ITEMS = 100_000  # elements of one constant hashed by value; larger ones are not "simple"
_MAX_DEPTH = 16


@dataclass(frozen=True)
class _File:
    """A parsed source file: its module-level assignments (source) and from-imports."""

    lines: list[str]
    tree: ast.Module | None
    assigns: dict[str, list[str]]
    imports: dict[str, tuple[int, str | None, str]]  # name -> (level, module, attribute)


def _source(obj: types.CodeType | type) -> str | None:
    """Dedented source of a code object or class; None when there is none to read.

    A code object, not its function: ``inspect.getsource(fn)`` follows ``__wrapped__`` and
    would return the wrapped function's source for a decorator's wrapper.
    """
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except Exception:  # OSError, TypeError, and tokenizer errors on edited files
        return None


def _code_names(code: types.CodeType) -> tuple[str, ...]:
    """Sorted names used by a code object and its nested ones (lambdas, comprehensions)."""
    names: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return tuple(sorted(names))


def _imported(name: str, package: str | None) -> Iterator[types.ModuleType]:
    """Loaded modules a name in ``co_names`` may import (``import x``, ``from . import x``)."""
    candidates = [name] if name else []
    if package:
        candidates.append(f"{package}.{name}" if name else package)
    for candidate in candidates:
        module = sys.modules.get(candidate)
        if isinstance(module, types.ModuleType):
            yield module


def _resolve(level: int, module: str | None, package: str | None) -> str | None:
    if level == 0:
        return module
    try:
        return importlib.util.resolve_name("." * level + (module or ""), package)
    except (ImportError, ValueError):
        return None


def _unwrap(obj: object) -> list[object]:
    """``obj`` and the objects it wraps, outermost first."""
    layers: list[object] = []
    current: object | None = obj
    while current is not None and len(layers) < _MAX_UNWRAP \
            and all(current is not layer for layer in layers):
        layers.append(current)
        current = _inner(current)
    return layers


def _inner(obj: object) -> object | None:
    if isinstance(obj, type | types.ModuleType) or not callable(obj):
        return None
    if isinstance(obj, functools.partial):
        return obj.func
    if isinstance(obj, types.MethodType):
        return obj.__func__
    for attr in ("__wrapped__", "fn"):  # functools.wraps; mloop's Step keeps `fn`
        try:
            inner = getattr(obj, attr, None)
        except Exception:  # a proxy whose __getattr__ does more than look up
            return None
        if callable(inner) and not isinstance(inner, type):
            return inner
    return None


def _methods(cls: type) -> list[types.FunctionType]:
    """Functions defined in a class body: methods, static/class methods, properties."""
    found: list[types.FunctionType] = []
    for _, value in sorted(vars(cls).items()):
        candidates: Iterable[object]
        if isinstance(value, staticmethod | classmethod):
            candidates = (value.__func__,)
        elif isinstance(value, property):
            candidates = (value.fget, value.fset, value.fdel)
        elif isinstance(value, functools.cached_property):
            candidates = (value.func,)
        else:
            candidates = (value,)
        found += [c for c in candidates if isinstance(c, types.FunctionType)]
    return found


def _own_methods(cls: type) -> list[types.FunctionType]:
    """Methods written in the class body: not a dataclass's generated ones (from `<string>`
    or dataclasses.py), nor the __new__ an Enum copies from enum.py."""
    return [f for f in _methods(cls)
            if f.__code__.co_qualname.rpartition(".")[0] == cls.__qualname__]


def _class_globals(cls: type) -> dict[str, Any]:
    for method in _own_methods(cls):
        return method.__globals__
    module = sys.modules.get(cls.__module__)
    return vars(module) if module is not None else {"__name__": cls.__module__}


def _read(filename: str) -> _File:
    linecache.checkcache(filename)  # the same text inspect.getsource reads
    lines = linecache.getlines(filename)
    assigns: dict[str, list[str]] = {}
    imports: dict[str, tuple[int, str | None, str]] = {}
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        return _File(lines, None, assigns, imports)
    for node in _run_at_import(tree.body):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imports[alias.asname or alias.name] = (node.level, node.module, alias.name)
            continue
        targets = node.targets if isinstance(node, ast.Assign) \
            else [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else []
        text = "".join(lines[node.lineno - 1:node.end_lineno]).strip()
        # `X = ...`, `a, b = ...`, `X += ...`, `X[0] = ...`: each statement that binds X
        bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        for name in sorted(bound):
            assigns.setdefault(name, []).append(text)
    return _File(lines, tree, assigns, imports)


def _run_at_import(nodes: Iterable[ast.AST]) -> Iterator[ast.stmt]:
    """Statements of a module or class body, also those in `if`, `try` and `with` blocks;
    a def or class statement is yielded, its body is not entered."""
    for node in nodes:
        if isinstance(node, ast.stmt) and not isinstance(
                node, ast.If | ast.Try | ast.TryStar | ast.With | ast.For | ast.While | ast.Match):
            yield node
        elif not isinstance(node, ast.expr):
            yield from _run_at_import(ast.iter_child_nodes(node))


def _find_class(tree: ast.Module, qualname: str, line: int | None) -> ast.ClassDef | None:
    """The class statement of ``qualname``: the one holding ``line`` (a method's first line),
    else the last one, which is the definition in force after import."""
    found: ast.ClassDef | None = None
    body: list[ast.stmt] = tree.body
    for part in qualname.split("."):
        matches = [n for n in _run_at_import(body)
                   if isinstance(n, ast.ClassDef) and n.name == part]
        if not matches:
            return None
        found = next((n for n in matches if line is not None
                      and n.lineno <= line <= (n.end_lineno or n.lineno)), matches[-1])
        body = found.body
    return found


def _class_file(cls: type) -> tuple[str | None, int | None]:
    """The file a class is defined in, and a line inside it (a method's), when known."""
    try:
        declared: str | None = inspect.getfile(cls)
    except (TypeError, OSError):
        declared = None
    methods = [f.__code__ for f in _own_methods(cls)]
    files = sorted({c.co_filename for c in methods})
    filename = declared if declared in files or not files else files[0]
    line = next((c.co_firstlineno for c in methods if c.co_filename == filename), None)
    return filename, line


def _encode_simple(value: object) -> bytes | None:
    """Canonical bytes of a simple immutable constant; None for anything else."""
    return _encode(value, [_MAX_ITEMS], 0)


def _encode(value: object, budget: list[int], depth: int) -> bytes | None:
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_DEPTH:
        return None
    if value is None or value is Ellipsis:
        return b"N" if value is None else b"E"
    if isinstance(value, enum.Enum):
        inner = _encode(value.value, budget, depth + 1)
        name = f"{type(value).__qualname__}.{value.name}".encode()
        return None if inner is None else b"e" + _frame(name) + inner
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):  # hex: no 4300-digit limit, unlike str()
        return b"i" + format(int(value), "x").encode()
    if isinstance(value, float):
        return b"f" + float.__repr__(value).encode()
    if isinstance(value, complex):
        return b"c" + complex.__repr__(value).encode()
    if isinstance(value, str):
        return b"s" + _frame(str.encode(value, "utf-8", "surrogatepass"))
    if isinstance(value, bytes):
        return b"b" + _frame(bytes(value))
    if isinstance(value, tuple | frozenset):
        items = [_encode(item, budget, depth + 1) for item in value]
        if any(item is None for item in items):
            return None
        framed = [_frame(item) for item in items if item is not None]
        if isinstance(value, frozenset):  # iteration order follows PYTHONHASHSEED
            return b"z" + b"".join(sorted(framed))
        return b"t" + b"".join(framed)
    return None


def _encode_code(code: types.CodeType) -> bytes:
    """A code object without its file name or line numbers (marshal is not stable)."""
    consts = [b"C" + _frame(_encode_code(c)) if isinstance(c, types.CodeType)
              else _encode_simple(c) or b"?" + _qualified(type(c)).encode()
              for c in code.co_consts]
    fields = [code.co_code, code.co_exceptiontable, code.co_qualname.encode(),
              *(str(n).encode() for n in (code.co_argcount, code.co_posonlyargcount,
                                          code.co_kwonlyargcount, code.co_flags)),
              *(_encode_simple(names) or b"" for names in (
                  code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars))]
    return _join([*fields, *consts])


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def _join(parts: Iterable[bytes]) -> bytes:
    return b"".join(_frame(p) for p in parts)


def _qualified(obj: object) -> str:
    try:
        module = getattr(obj, "__module__", None) or type(obj).__module__
        name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    except Exception:  # a proxy object; its type is still a fine name
        module, name = type(obj).__module__, type(obj).__qualname__
    return f"{module}.{name}"


def _dotted(rel: str) -> str:
    parts = list(PurePosixPath(rel).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
