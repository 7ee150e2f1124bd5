"""Reading a skops file without importing ``skops.io``: the fast path of the sklearn flavor.

Why: ``import skops.io`` lists every scikit-learn estimator at import time
(``sklearn.utils.all_estimators``), which imports all of scikit-learn (1.7 s here, more
than the model's own modules). A logged model needs only its own classes; the file's
``schema.json`` names them, and the manifest records the same names when the model is
saved (``flavor_meta["types"]``). This reader imports only those modules.

It reads skops protocol 2 (skops 0.10 and later), the node kinds scikit-learn models are
made of, and rebuilds objects the way skops does (``cls.__new__`` and ``__setstate__``
for estimators; ``Tree(*args)`` then ``__setstate__`` for trees). Safety is decided
before anything is built, by the same policy as :func:`mloop.registry.safety.
skops_trusted`, never wider:

* every name the file holds must be one this reader vouches for under its loader (JSON
  values, builtin containers, NumPy arrays, dtypes, ufuncs and scalar types), or one
  :mod:`mloop.registry.safety` trusts (scikit-learn's own classes, its short NumPy/SciPy
  list), or one the caller named (``trusted=[...]``);
* when the manifest lists the file's types, the file may hold no other (the two were
  written together; a difference means one was changed);
* a name outside NumPy, SciPy, scikit-learn and the builtins that nobody trusts is refused
  here with :class:`~mloop.errors.UnsafeModelError`; anything else this reader does not
  know (another protocol, a node kind it does not build, a NumPy or scikit-learn name
  skops may trust by default) is left to ``skops.io`` (:class:`Unsupported`), which
  decides as before.

The files reach here only after the registry verified every byte against its digest and
:func:`mloop.registry.safety.check_files` checked they are zip archives.
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mloop.errors import UnsafeModelError

PROTOCOLS = frozenset({2})
# the modules skops's own defaults may trust: a name from elsewhere that mloop's policy
# refuses is refused here too; one from these goes to skops.io for its verdict
_SKOPS_DEFAULT_MODULES = frozenset({"builtins", "collections", "numpy", "scipy", "sklearn"})
_PRIMITIVES = frozenset({"builtins.int", "builtins.float", "builtins.str", "builtins.bool"})
_CONTAINERS = {"DictNode": frozenset({"builtins.dict", "collections.OrderedDict"}),
               "ListNode": frozenset({"builtins.list"}),
               "SetNode": frozenset({"builtins.set"}),
               "TupleNode": frozenset({"builtins.tuple"})}
_OWN = {"TypeNode": _PRIMITIVES | {"builtins.list", "builtins.set", "builtins.tuple",
                                   "builtins.dict"},
        "DTypeNode": frozenset({"numpy.dtype"}),
        "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
        "SliceNode": frozenset({"builtins.slice"}),
        "NdArrayNode": frozenset({"numpy.ndarray"}), **_CONTAINERS}
LOADERS = frozenset({"JsonNode", "ObjectNode", "FunctionNode", "TreeNode", "LossNode", *_OWN})


class Unsupported(Exception):
    """The file holds something this reader leaves to ``skops.io``."""


def types_of(schema: Any) -> dict[str, set[str]]:
    """Every type or function name in a skops schema, with the loaders that use it."""
    found: dict[str, set[str]] = {}
    stack: list[Any] = [schema]
    while stack:  # iterative: a hostile file can nest deeper than the recursion limit
        node = stack.pop()
        if isinstance(node, dict):
            loader, module, cls = (node.get("__loader__"), node.get("__module__"),
                                   node.get("__class__"))
            if isinstance(loader, str) and isinstance(module, str) and isinstance(cls, str):
                found.setdefault(f"{module}.{cls}", set()).add(loader)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def types_in(path: Path) -> list[str]:
    """The sorted type and function names of a skops file, for its manifest."""
    with zipfile.ZipFile(path) as archive:
        return sorted(types_of(json.loads(archive.read("schema.json"))))


def listed_types(meta: dict[str, Any]) -> list[str] | None:
    """The names a manifest lists for its skops file (None for a model logged before
    they were recorded); :class:`UnsafeModelError` for a list mloop did not write."""
    listed = meta.get("types")
    if listed is None:
        return None
    if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
        raise UnsafeModelError("The model's manifest lists its types in a form mloop does "
                               "not write: it was changed after the model was logged. Log "
                               "the model again from its source.")
    return listed


def _numpy_name(name: str, kind: type | None) -> bool:
    """``numpy.float64`` (a scalar type) or ``numpy.log1p`` (a ufunc) and the like."""
    module, _, attr = name.rpartition(".")
    if module != "numpy":
        return False
    value = getattr(np, attr, None)
    if kind is None:
        return isinstance(value, type) and issubclass(value, np.generic)
    return isinstance(value, kind)


def _vouched(name: str, loader: str) -> bool:
    """Whether this reader builds ``name`` under ``loader`` without trusting it: it only
    parses JSON, fills a builtin container, reads a NumPy array, or refers to a ufunc."""
    if loader == "JsonNode" or name in _OWN.get(loader, frozenset()):
        return True
    if loader in ("NdArrayNode", "TypeNode"):
        return _numpy_name(name, None)
    return loader == "FunctionNode" and _numpy_name(name, np.ufunc)


def check(found: dict[str, set[str]], extra: Iterable[str],
          expected: Iterable[str] | None) -> None:
    """Refuse (or leave to skops) a file by the names it holds; see the module docstring."""
    from mloop.registry.safety import _implicit

    unknown = {loader for loaders in found.values() for loader in loaders} - LOADERS
    if unknown:
        raise Unsupported(f"node kinds {sorted(unknown)}")
    if expected is not None:
        stray = sorted(set(found) - set(expected))
        if stray:
            raise UnsafeModelError(
                f"The model file names types its manifest does not list ({', '.join(stray)}"
                "): the manifest or the file was changed after the model was logged. Log "
                "the model again from its source.")
    wanted = set(extra)
    refused = []
    for name, loaders in found.items():
        doubtful = {loader for loader in loaders if not _vouched(name, loader)}
        if doubtful and name not in wanted and not _implicit(name, doubtful):
            refused.append(name)
    if not refused:
        return
    if any(n.split(".")[0] in _SKOPS_DEFAULT_MODULES for n in refused):
        raise Unsupported(f"names skops may trust by default: {refused}")
    raise UnsafeModelError(
        f"The model names types or functions that mloop does not trust by itself: "
        f"{', '.join(sorted(refused))}. skops builds or calls them while loading, so they "
        "could run code; mloop trusts scikit-learn's own classes and a few NumPy/SciPy "
        "containers. If these are yours (or you trust them), pass "
        f"load_model(..., trusted={sorted(refused)!r}).")


def load(path: Path, extra: Iterable[str] = (), expected: Iterable[str] | None = None) -> Any:
    """The object in the skops file ``path``; :class:`UnsafeModelError` for a name nobody
    trusts, :class:`Unsupported` for what only ``skops.io`` can decide or build."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
            if not isinstance(schema, dict) or schema.get("protocol") not in PROTOCOLS:
                raise Unsupported("another skops protocol")
            check(types_of(schema), extra, expected)
            try:
                return _Builder(archive).build(schema)
            except RecursionError:
                raise UnsafeModelError(f"{path.name} nests deeper than Python can load; "
                                       "log the model again.") from None
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise Unsupported(f"{type(exc).__name__}: {exc}") from exc


def _import(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


class _Builder:
    """Builds the objects of one checked schema; a node seen before (same ``__id__``) is
    the object built for it the first time, as skops shares them."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.memo: dict[int, Any] = {}

    def build(self, state: dict[str, Any]) -> Any:
        saved = state.get("__id__")
        if isinstance(saved, int) and saved in self.memo:
            return self.memo[saved]
        value = getattr(self, "_" + state["__loader__"])(state)
        if isinstance(saved, int):
            self.memo[saved] = value
        return value

    def _type(self, state: dict[str, Any]) -> Any:
        return _import(state["__module__"], state["__class__"])

    def _JsonNode(self, state: dict[str, Any]) -> Any:
        return json.loads(state["content"])

    def _DictNode(self, state: dict[str, Any]) -> Any:
        key_types = self.build(state["key_types"])
        out = self._type(state)()
        for k_type, (key, value) in zip(key_types, state["content"].items(), strict=True):
            out[k_type(key)] = self.build(value)
        return out

    def _ListNode(self, state: dict[str, Any]) -> Any:
        # the named type filled with the items, as skops does (checked: a builtin or a
        # class mloop's policy trusts)
        return self._type(state)([self.build(item) for item in state["content"]])

    _SetNode = _ListNode

    def _TupleNode(self, state: dict[str, Any]) -> Any:
        if f"{state['__module__']}.{state['__class__']}" != "builtins.tuple":
            raise Unsupported("a named tuple")
        return tuple(self.build(item) for item in state["content"])

    def _TypeNode(self, state: dict[str, Any]) -> Any:
        return self._type(state)

    _FunctionNode = _TypeNode

    def _SliceNode(self, state: dict[str, Any]) -> Any:
        c = state["content"]
        return slice(c["start"], c["stop"], c["step"])

    def _NdArrayNode(self, state: dict[str, Any]) -> Any:
        if state["type"] == "numpy":
            with self.archive.open(state["file"]) as f:
                array = np.load(io.BytesIO(f.read()), allow_pickle=False)
            if f"{state['__module__']}.{state['__class__']}" != "numpy.ndarray":
                return self._type(state)(array)  # a NumPy scalar (checked: np.generic)
            return array
        if state["type"] != "json":
            raise Unsupported(f"array stored as {state['type']!r}")
        shape = self.build(state["shape"])
        items = [self.build(item) for item in state["content"]]
        if len(shape) == 1:
            out = np.empty(len(items), dtype=object)
            out[:] = items
            return out
        return np.array(items, dtype=object)

    def _DTypeNode(self, state: dict[str, Any]) -> Any:
        return self.build(state["content"]).dtype

    def _RandomStateNode(self, state: dict[str, Any]) -> Any:
        rng = np.random.RandomState()
        rng.set_state(self.build(state["content"]))
        return rng

    def _ObjectNode(self, state: dict[str, Any]) -> Any:
        cls = self._type(state)
        instance = cls.__new__(cls)
        if state.get("content") is None:
            return instance
        attrs = self.build(state["content"])
        if attrs is not None:
            if hasattr(instance, "__setstate__"):
                instance.__setstate__(attrs)
            else:
                instance.__dict__.update(attrs)
        return instance

    def _reduced(self, state: dict[str, Any], cls: Any) -> Any:
        attrs = self.build(state["content"])
        instance = cls(*self.build(state["__reduce__"]["args"]))
        if not attrs:
            return instance
        if not hasattr(instance, "__setstate__"):
            raise Unsupported(f"{cls.__name__} has no __setstate__")
        instance.__setstate__(attrs)
        return instance

    def _TreeNode(self, state: dict[str, Any]) -> Any:
        from sklearn.tree._tree import Tree

        return self._reduced(state, Tree)

    def _LossNode(self, state: dict[str, Any]) -> Any:
        return self._reduced(state, self._type(state))
