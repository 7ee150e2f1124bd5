"""Code fingerprints: a step's source and, transitively, the project code it uses.

A step is skipped when its cache key is unchanged, and the code fingerprint is the part
of that key that follows the code. Hashing only the step's own source misses an edit to a
helper two calls deep (the complaint about ZenML's cache), so references are followed on
code objects — never by matching text:

- global names (``co_names``) of the function and of its nested code objects (lambdas,
  comprehensions, inner functions), looked up in ``__globals__``; builtins are ignored;
- attributes of project modules whose names appear in that code (``helpers.clean``,
  ``pkg.sub.f``), also for modules imported inside the function;
- closure cells, default arguments, ``functools.partial`` arguments, and wrappers that
  keep the wrapped function in ``__wrapped__`` or ``fn`` (decorators, ``@mloop.step``);
- project classes (their methods' references, their project bases), the class a method
  is defined in and the class of a bound method's instance.

What is hashed, per item, into a sorted manifest (no ids, addresses or line numbers):

- project functions and classes: their dedented source, or, when there is none (``exec``,
  a REPL), a line-number-free encoding of the code object;
- simple constants (None, bool, int, float, complex, str, bytes, enum members, and tuples
  or frozensets of these) by name and value, so ``THRESHOLD = 0.5`` → ``0.6`` counts;
- any other global a project module binds (a list, a dict, an estimator, ``mean =
  np.mean``) by the source of the module-level statements that assign it, following
  ``from x import name`` into project modules — a cache dict filled at run time does
  not change the fingerprint, its definition does.

"The project" is the files under ``roots``, minus site-packages/dist-packages folders, the
interpreter's trees (a virtualenv inside the project included) and mloop itself: library
code is covered by the environment lock. Functions and classes defined in the step's own
module count as the project too, unless it is library code: a notebook, ``exec``, a
script outside the roots.

Not followed: dynamic lookups (``getattr(m, name)``, ``globals()[...]``,
``importlib.import_module``), instance state set at run time (``self.x``), mutable values
held in closures or defaults, statements that mutate a global (``FEATURES.append``), and
data files the code reads. Names are resolved by name, not by bytecode position, so an
attribute that shares a helper's name (``df.clean`` when ``helpers.clean`` exists) may add
that helper: the error is always towards re-running, never towards a stale cache.
"""

from __future__ import annotations

import functools
import inspect
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloop.core.hashing import hash_bytes
from mloop.pipelines._introspect import (
    _class_file,
    _class_globals,
    _code_names,
    _dotted,
    _encode_code,
    _encode_simple,
    _File,
    _find_class,
    _imported,
    _is_dunder,
    _join,
    _methods,
    _qualified,
    _read,
    _resolve,
    _source,
    _str_or_none,
    _unwrap,
)

__all__ = ["describe", "fingerprint"]

# Bump when what is hashed changes: every cached step then runs once more, which is right.
_FORMAT = b"mloop.fingerprint/1\n"
_EXCLUDED_PARTS = frozenset({"site-packages", "dist-packages"})
_MAX_IMPORT_HOPS = 8  # `from a import X` chains followed to find where X is assigned


def fingerprint(fn: Callable[..., Any], *, roots: Sequence[str | Path]) -> str:
    """Hex BLAKE3 digest of ``fn``'s code and of the project code it uses, transitively.

    ``fn`` may be a function, a bound method, a ``functools.partial`` or any wrapper with
    ``__wrapped__`` or ``fn`` (a ``Step``). ``roots`` are the project folders. Equal in
    every process for equal code; never raises (what cannot be read is hashed by its
    code object, its type name or the kind of error).
    """
    manifest = "".join(sorted(_walk(fn, roots).lines))
    return hash_bytes(_FORMAT + manifest.encode("utf-8", "surrogatepass"))


def describe(fn: Callable[..., Any], *, roots: Sequence[str | Path]) -> list[str]:
    """Sorted qualified names that :func:`fingerprint` covers, e.g. ``"helpers.clean"``.

    Module names are the import names; a module imported under a name that is not its
    file's (``__main__``, ``mloop_user_pipelines``) is named by its path under the root.
    Closure values read ``step.<closure>.name``; a decorator's wrapper
    ``deco.<locals>.wrapper``.
    """
    return sorted(_walk(fn, roots).labels)


def _walk(fn: object, roots: Sequence[str | Path]) -> _Walk:
    walk = _Walk(roots)
    try:
        walk.run(fn)
    except Exception as exc:  # a fingerprint must not break a pipeline run
        walk.lines.add(f"error\t{type(exc).__name__}\n")
    return walk


class _Paths:
    """Which source files are the project's: under a root, outside library trees."""

    def __init__(self, roots: Sequence[str | Path]) -> None:
        # deepest root first, so a file's key does not depend on the order of `roots`
        self._roots = sorted({Path(r).resolve() for r in roots},
                             key=lambda p: len(p.parts), reverse=True)
        self._prefixes, self._libraries = _interpreter_trees()
        self._cache: dict[str, tuple[str | None, bool]] = {}

    def relpath(self, filename: object) -> str | None:
        """Root-relative POSIX path of a project source file; None for other code."""
        return self._classify(filename)[0]

    def is_library(self, filename: object) -> bool:
        """Whether a file is installed or interpreter code (not `<string>` or a notebook)."""
        return self._classify(filename)[1]

    def _classify(self, filename: object) -> tuple[str | None, bool]:
        if not isinstance(filename, str) or not filename or filename.startswith("<"):
            return None, False
        hit = self._cache.get(filename)
        if hit is None:
            try:
                hit = self._uncached(Path(filename).resolve())
            except (OSError, RuntimeError, ValueError):
                hit = (None, False)
            self._cache[filename] = hit
        return hit

    def _uncached(self, path: Path) -> tuple[str | None, bool]:
        library = bool(_EXCLUDED_PARTS.intersection(path.parts)) or any(
            path.is_relative_to(d) for d in self._libraries)
        root = next((r for r in self._roots if path.is_relative_to(r)), None)
        if root is None:
            return None, library or any(path.is_relative_to(p) for p in self._prefixes)
        # A prefix tree inside the project (a .venv) is library; a project inside the
        # prefix (/usr/src/app with the system Python's /usr) is not.
        if library or any(path.is_relative_to(p) and not root.is_relative_to(p)
                          for p in self._prefixes):
            return None, True
        return path.relative_to(root).as_posix(), False


@functools.cache
def _interpreter_trees() -> tuple[frozenset[Path], frozenset[Path]]:
    """The interpreter's prefixes, and its library folders plus mloop's own package."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths = sysconfig.get_paths()
    libraries = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    libraries.append(str(Path(__file__).resolve().parents[1]))  # mloop itself
    return (frozenset(Path(p).resolve() for p in prefixes),
            frozenset(Path(p).resolve() for p in libraries))


@dataclass(frozen=True)
class _Namespace:
    """A module's globals and the names its items get in the manifest and in describe()."""

    globals: dict[str, Any]
    loc: str  # manifest key prefix: root-relative path, so `__main__` == imported
    label: str  # dotted module name for describe()
    filename: str | None  # set only for project files: where assignments are looked up
    package: str | None


class _Walk:
    """One traversal: manifest lines and describe() labels of everything reached."""

    def __init__(self, roots: Sequence[str | Path]) -> None:
        self.lines: set[str] = set()
        self.labels: set[str] = set()
        self._paths = _Paths(roots)
        self._home: dict[str, Any] | None = None  # the step's globals, when they count
        self._queue: list[types.FunctionType | type] = []
        self._seen: dict[int, object] = {}  # holds the objects, so their ids stay unique
        self._done: set[tuple[int, str]] = set()  # (id of globals, name) resolved
        self._spaces: dict[int, _Namespace] = {}
        self._classes: dict[int, tuple[type, bool]] = {}
        self._files: dict[str, _File] = {}

    def run(self, obj: object) -> None:
        layers = _unwrap(obj)
        functions = [layer for layer in layers if isinstance(layer, types.FunctionType)]
        if functions:  # the innermost function is the step: hashed wherever it lives
            step = functions[-1]
            if not self._paths.is_library(step.__code__.co_filename):
                self._home = step.__globals__
            self._enqueue(step)
        for layer in layers:
            self._layer(layer, ())
        while self._queue:
            item = self._queue.pop()
            try:
                if isinstance(item, type):
                    self._class(item)
                else:
                    self._function(item)
            except Exception as exc:  # never raise; the error kind still shapes the key
                self.lines.add(f"error\t{_qualified(item)!r}\t{type(exc).__name__}\n")
        if not self.lines:  # a builtin or another callable without Python code
            name = _qualified(obj)
            self._add("opaque", name, name, b"")

    # -- items -------------------------------------------------------------------------

    def _function(self, fn: types.FunctionType) -> None:
        ns = self._namespace(fn.__globals__)
        key, label = _names(ns, fn)
        names = _code_names(fn.__code__)
        source = _source(fn.__code__)
        parts = [b"source", source.encode("utf-8", "surrogatepass")] if source is not None \
            else [b"code", _encode_code(fn.__code__)]
        # Defaults are evaluated at definition: `def f(k=THRESHOLD)` keeps the old value
        # in the same source, so the values themselves are hashed.
        parts += [self._argument(v, names) for v in fn.__defaults__ or ()]
        for kw, value in sorted((fn.__kwdefaults__ or {}).items()):
            parts += [kw.encode(), self._argument(value, names)]
        self._add("function", key, label, _join(parts))
        self._follow(fn, names)

    def _follow(self, fn: types.FunctionType, names: Sequence[str]) -> None:
        """Everything ``fn`` refers to: globals, module attributes, closure cells, owner."""
        ns = self._namespace(fn.__globals__)
        key, label = _names(ns, fn)
        for name in names:
            if name in ns.globals:
                self._global(ns, name, names)
            elif not _is_dunder(name):
                for module in _imported(name, ns.package):  # `import x` inside the function
                    self._module(module, names)
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: not assigned yet
                continue
            blob = _encode_simple(value)
            if blob is not None:
                self._add("closure", f"{key}/<closure>/{var}", f"{label}.<closure>.{var}", blob)
            else:
                self._dispatch(value, names, None, None)
        self._owner(fn)

    def _class(self, cls: type) -> None:
        ns = self._namespace(_class_globals(cls))
        key, label = f"{ns.loc}:{cls.__qualname__}", f"{ns.label}.{cls.__qualname__}"
        source = self._class_source(cls)
        parts = [b"source", source.encode("utf-8", "surrogatepass")] if source is not None \
            else [b"code", *(_encode_code(f.__code__) for f in _methods(cls))]
        for name, value in sorted(vars(cls).items()):  # values computed at class creation
            blob = None if _is_dunder(name) else _encode_simple(value)
            if blob is not None:
                parts += [name.encode(), blob]
        self._add("class", key, label, _join(parts))
        for base in (*cls.__mro__[1:], type(cls)):
            self._class_ref(base)
        for value in vars(cls).values():
            if isinstance(value, type):
                self._class_ref(value)
        for method in _methods(cls):
            if self._is_project_function(method):  # its source is in the class's
                self._follow(method, _code_names(method.__code__))

    def _partial(self, p: functools.partial[Any], names: Sequence[str]) -> None:
        parts = [self._argument(arg, names) for arg in p.args]
        for kw, value in sorted(p.keywords.items()):
            parts += [kw.encode(), self._argument(value, names)]
        func = p.func
        if isinstance(func, types.FunctionType):
            ns = self._namespace(func.__globals__)
            key, label = _names(ns, func)
        else:
            key = label = _qualified(func)
        self._add("partial", f"{key}/<partial>", f"{label}.<partial>", _join(parts))

    # -- references --------------------------------------------------------------------

    def _global(self, ns: _Namespace, name: str, names: Sequence[str]) -> None:
        if _is_dunder(name):  # __name__ differs between a script and its import
            return
        value = ns.globals[name]
        if isinstance(value, types.ModuleType):
            self._module(value, names)
        elif (id(ns.globals), name) not in self._done:
            self._done.add((id(ns.globals), name))
            self._dispatch(value, names, ns, name)

    def _module(self, module: types.ModuleType, names: Sequence[str],
                outer: tuple[int, ...] = ()) -> None:
        """The attributes of a project module that ``names`` mention, and so on down."""
        if not self._is_project_module(module):
            return
        ns = self._namespace(vars(module))
        for name in names:
            value = ns.globals.get(name)
            if isinstance(value, types.ModuleType):
                if id(value) not in (*outer, id(module)):
                    self._module(value, names, (*outer, id(module)))
            elif name in ns.globals:
                self._global(ns, name, names)

    def _dispatch(self, value: object, names: Sequence[str], ns: _Namespace | None,
                  name: str | None) -> None:
        if isinstance(value, types.ModuleType):
            self._module(value, names)
            return
        if ns is not None and name is not None:
            blob = _encode_simple(value)
            if blob is not None:
                self._add("const", f"{ns.loc}:{name}", f"{ns.label}.{name}", blob)
                return
        found = False
        for layer in _unwrap(value):
            found = self._layer(layer, names) or found
        if not found and ns is not None and name is not None:
            self._assignment(ns, name)

    def _layer(self, layer: object, names: Sequence[str]) -> bool:
        """Queue what one wrapper layer brings in; whether it is project code itself."""
        if isinstance(layer, types.FunctionType):
            if self._is_project_function(layer):
                self._enqueue(layer)
                return True
            return False
        if isinstance(layer, type):
            return self._class_ref(layer)
        if isinstance(layer, functools.partial):
            self._partial(layer, names)
            return False
        if isinstance(layer, types.MethodType):
            owner = layer.__self__
            self._class_ref(owner if isinstance(owner, type) else type(owner))
            return False
        self._class_ref(type(layer))  # an instance: its arguments are in its assignment
        return False

    def _argument(self, value: object, names: Sequence[str]) -> bytes:
        """A default or partial argument: its value if simple, else a reference."""
        blob = _encode_simple(value)
        if blob is not None:
            return blob
        self._dispatch(value, names, None, None)
        return b"?" + _qualified(type(value)).encode()

    def _owner(self, fn: types.FunctionType) -> None:
        """The class a method is defined in: its other methods are reached via ``self``."""
        parts = fn.__code__.co_qualname.split(".")
        if len(parts) < 2 or "<locals>" in parts:
            return
        owner: object = fn.__globals__.get(parts[0])
        for part in parts[1:-1]:
            owner = vars(owner).get(part) if isinstance(owner, type) else None
        if isinstance(owner, type):
            self._class_ref(owner)

    def _assignment(self, ns: _Namespace, name: str, hops: int = 0) -> None:
        """The module-level statements that bind ``name`` in a project module."""
        if ns.filename is None:
            return
        bindings = self._file(ns.filename)
        statements = bindings.assigns.get(name)
        if statements:
            self._add("assign", f"{ns.loc}:{name}", f"{ns.label}.{name}",
                      "\n".join(statements).encode("utf-8", "surrogatepass"))
            return
        origin = bindings.imports.get(name)
        if origin is None or hops >= _MAX_IMPORT_HOPS:
            return
        level, module_name, attribute = origin
        target = _resolve(level, module_name, ns.package)
        module = sys.modules.get(target) if target else None
        if isinstance(module, types.ModuleType) and self._is_project_module(module):
            self._assignment(self._namespace(vars(module)), attribute, hops + 1)

    # -- what counts as the project ----------------------------------------------------

    def _is_project_function(self, fn: types.FunctionType) -> bool:
        return (self._paths.relpath(fn.__code__.co_filename) is not None
                or (self._home is not None and fn.__globals__ is self._home))

    def _is_project_module(self, module: types.ModuleType) -> bool:
        g = vars(module)
        if self._home is not None and g is self._home:
            return True
        filename = g.get("__file__")
        if isinstance(filename, str):
            return self._paths.relpath(filename) is not None
        try:  # a namespace package (a folder without __init__.py) has only __path__
            return any(self._paths.relpath(p) is not None for p in list(g.get("__path__") or ()))
        except TypeError:
            return False

    def _class_ref(self, cls: type) -> bool:
        hit = self._classes.get(id(cls))
        if hit is None:
            hit = (cls, self._is_project_class(cls))
            self._classes[id(cls)] = hit
        if hit[1]:
            self._enqueue(cls)
        return hit[1]

    def _is_project_class(self, cls: type) -> bool:
        if self._paths.relpath(_class_file(cls)[0]) is not None:
            return True
        return self._home is not None and any(f.__globals__ is self._home for f in _methods(cls))

    # -- bookkeeping -------------------------------------------------------------------

    def _enqueue(self, item: types.FunctionType | type) -> None:
        if id(item) not in self._seen:
            self._seen[id(item)] = item
            self._queue.append(item)

    def _add(self, kind: str, key: str, label: str, payload: bytes) -> None:
        self.lines.add(f"{kind}\t{key!r}\t{hash_bytes(payload)}\n")
        self.labels.add(label)

    def _namespace(self, g: dict[str, Any]) -> _Namespace:
        hit = self._spaces.get(id(g))
        if hit is None:
            name, filename, package = (g.get(k) for k in ("__name__", "__file__", "__package__"))
            module = name if isinstance(name, str) else None
            rel = self._paths.relpath(filename)
            if rel is not None:  # `helpers` for src/helpers.py; not `__main__`, nor the
                dotted = _dotted(rel)  # `mloop_user_pipelines` mloop loads pipelines.py as
                same = module is not None and module.rpartition(".")[2] == dotted.rpartition(".")[2]
                label = module if same and module else dotted
                hit = _Namespace(g, rel, label, str(filename), _str_or_none(package))
            else:
                label = module or "<exec>"
                hit = _Namespace(g, f"<{label}>", label, None, _str_or_none(package))
            self._spaces[id(g)] = hit
        return hit

    def _file(self, filename: str) -> _File:
        hit = self._files.get(filename)
        if hit is None:
            hit = _read(filename)
            self._files[filename] = hit
        return hit

    def _class_source(self, cls: type) -> str | None:
        """A class's source, found in the file its methods come from.

        ``inspect.getsource`` looks the class up through ``sys.modules[cls.__module__]``,
        which is another file for a script run by ``runpy`` as ``__main__``.
        """
        filename, line = _class_file(cls)
        if filename is None:
            return None
        file = self._file(filename)
        node = _find_class(file.tree, cls.__qualname__, line) if file.tree else None
        if node is None:  # a class made inside a function: ask inspect, if it reads that file
            try:
                consistent = inspect.getfile(cls) == filename
            except (TypeError, OSError):
                consistent = False
            return _source(cls) if consistent else None
        start = min([d.lineno for d in node.decorator_list] + [node.lineno])
        return textwrap.dedent("".join(file.lines[start - 1:node.end_lineno]))


# -- helpers without state -------------------------------------------------------------


def _names(ns: _Namespace, fn: types.FunctionType) -> tuple[str, str]:
    """Manifest key and describe() label of a function.

    The code's own qualname: ``functools.wraps`` copies the wrapped function's name onto a
    wrapper, which is other code (``deco.<locals>.wrapper``).
    """
    qualname = fn.__code__.co_qualname
    return f"{ns.loc}:{qualname}", f"{ns.label}.{qualname}"
