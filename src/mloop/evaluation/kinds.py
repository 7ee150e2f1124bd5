"""Check kinds: what a suite entry may say, and which function runs it.

A suite entry names its kind by a key (``metric: accuracy``, ``behaviour: monotonic``);
the other keys of the entry are the kind's parameters. Every kind — built-in or plugin —
is one :class:`CheckKind`:

- ``name``: the key that names it in an entry;
- ``run(context, entry) -> CheckResult``: the check. ``entry`` is the entry as
  validated: the kind's key, the parameters given, and the defaults of the others
  (parameters without a default that were left out are absent);
- ``params``: the parameters, a :class:`CheckParams` model (pydantic) for the kind, or
  one model per value of its key (``{"monotonic": Monotonic, …}``), when values take
  different parameters; a value outside such a mapping is refused with the closest one.
  A kind registered without one takes no parameters but ``severity``.

Plugins call :func:`register_check` or publish a ``CheckKind`` (or a bare function,
which then takes no parameters) in the ``mloop.checks`` entry point group. Every entry
is validated against its kind's schema before anything runs, so a mistyped parameter
(``mni: 0.99``) of any kind is an error naming the file, the entry and the closest key
instead of a check that silently passes.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mloop.core.schema import Schema, config_error, did_you_mean, validate
from mloop.errors import ConfigError

if TYPE_CHECKING:
    from mloop.evaluation.checks import CheckResult, Context

ENTRY_POINTS = "mloop.checks"


class CheckParams(Schema):
    """Base of every check kind's parameters: ``severity`` is common to all."""

    severity: Literal["block", "warn"] = Field(
        "block", description="block: a failure blocks deployment; warn: it is reported only")


CheckFn = Callable[["Context", dict[str, Any]], "CheckResult"]
Params = type[CheckParams] | Mapping[str, type[CheckParams]]


@dataclass(frozen=True)
class CheckKind:
    """A check kind: its key in suite entries, its function and its parameters."""

    name: str
    run: CheckFn
    params: Params = CheckParams
    variants: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(self.params) if isinstance(self.params, Mapping) else ()
        object.__setattr__(self, "variants", names)

    def schema_for(self, value: Any) -> type[CheckParams] | None:
        """The parameter model of an entry whose kind key holds ``value``."""
        if isinstance(self.params, Mapping):
            return self.params.get(value) if isinstance(value, str) else None
        return self.params


_KINDS: dict[str, CheckKind] = {}
_loaded = False


def register_check(kind: str | CheckKind, fn: CheckFn | None = None, *,
                   params: Params = CheckParams) -> CheckKind:
    """Make a kind usable in suites: ``register_check(CheckKind(...))`` or
    ``register_check("name", fn, params=Model)``; a later registration replaces one."""
    if isinstance(kind, str):
        if fn is None:
            raise TypeError("register_check(name, fn): the check function is missing")
        kind = CheckKind(kind, fn, params)
    _check_contract(kind)
    _KINDS[kind.name] = kind
    return kind


def _check_contract(kind: CheckKind) -> None:
    models = list(kind.params.values()) if isinstance(kind.params, Mapping) else [kind.params]
    for model in models:
        if not (isinstance(model, type) and issubclass(model, CheckParams)):
            raise TypeError(f"check kind {kind.name!r}: params must be CheckParams models, "
                            f"not {model!r}")
        if kind.name in model.model_fields:
            raise TypeError(f"check kind {kind.name!r}: its parameters cannot repeat its own "
                            "key")


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import mloop.evaluation.checks  # noqa: F401  (registers the built-ins)

    for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(f"The check plugin {ep.name!r} ({ep.value}) cannot be loaded: "
                              f"{type(exc).__name__}: {exc}") from exc
        if isinstance(obj, CheckKind):
            register_check(obj)
        elif callable(obj):
            register_check(ep.name, obj)
        else:
            raise ConfigError(f"The check plugin {ep.name!r} ({ep.value}) is neither a "
                              "CheckKind nor a function.")


def kinds() -> dict[str, CheckKind]:
    """Every registered kind by name (built-ins and plugins)."""
    _load()
    return dict(sorted(_KINDS.items()))


def check_kinds() -> list[str]:
    """The names of the registered kinds, sorted."""
    return list(kinds())


def get_kind(name: str) -> CheckKind:
    return kinds()[name]


def validate_entry(entry: Any, *, source: str | Path, at: tuple[str | int, ...] = ()
                   ) -> dict[str, Any]:
    """One suite entry checked against its kind's schema: the entry as the check
    function receives it (see the module docs). Errors are :class:`ConfigError` naming
    ``source`` and the path ``at``."""
    known = kinds()
    if not isinstance(entry, Mapping):
        raise config_error(source, at, f"expected a mapping such as {{metric: accuracy, min: "
                           f"0.9}}, got {entry!r}")
    named = [k for k in entry if k in known]
    if len(named) > 1:
        raise config_error(source, at, f"names {len(named)} check kinds ({', '.join(named)}); "
                           "give each check its own entry")
    if not named:
        guesses = [g for g in (did_you_mean(str(k), list(known), known=False) for k in entry)
                   if g]
        hint = guesses[0] if guesses else f"; use one of {', '.join(known)}"
        raise config_error(source, at, f"names no check kind{hint} (e.g. metric: accuracy)")
    kind = known[named[0]]
    value = entry[kind.name]
    if isinstance(kind.params, Mapping):
        model = kind.params.get(value) if isinstance(value, str) else None
        if model is None:
            raise config_error(source, (*at, kind.name), f"{value!r} is not a {kind.name} check"
                               f"{did_you_mean(str(value), kind.variants)}")
    elif value is None or isinstance(value, Mapping | list):
        raise config_error(source, (*at, kind.name), f"expected a name, got {value!r}")
    else:
        model = kind.params
    params = validate(model, {k: v for k, v in entry.items() if k != kind.name},
                      source=source, at=at)
    return {kind.name: value, **params.model_dump(exclude_none=True)}


__all__ = ["CheckFn", "CheckKind", "CheckParams", "check_kinds", "get_kind", "kinds",
           "register_check", "validate_entry"]
