"""Steps: plain functions whose inputs, parameters and outputs the signature declares.

>>> @mloop.step(outputs="features")
... def prepare(raw: mloop.Dataset) -> pd.DataFrame: ...
>>> @mloop.step(retries=2, outputs="model")
... def train(features: pd.DataFrame, C: float = 1.0) -> mloop.Model: ...

A parameter with a default of a simple type (number, string, boolean) is a *param*:
``Pipeline.run(params={"C": 0.5})`` sets it for every step that has one of that name.
Every other parameter is an *input*: a pipeline input (``raw="train@3"``) or the output
of another step, wired by name (an output is named after its step unless ``outputs=``
says otherwise); an input annotated with a marker (``Dataset``, ``Model``, ``Report``)
may also take the one output of another step with that marker. Nothing else is wired by
type (see :mod:`.dag`).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, overload

from mloop.errors import InvalidInputError

PARAM_TYPES = (int, float, str, bool)


class Dataset:
    """A dataset version handed to a step: ``.load()`` reads it (and records lineage)."""

    def __init__(self, ref: str, uri: str, digest: str) -> None:
        self.ref = ref
        self.uri = uri
        self.digest = digest  # the version's tree: its content
        # the first rows .load() read: a model the step returns gets its input signature
        # (column names and dtypes) from them, without holding the whole frame
        self.sample: Any = None

    def load(self) -> Any:
        """The version's rows as a DataFrame (CSV or Parquet)."""
        import mloop

        frame = mloop.data.load(self.uri)
        if hasattr(frame, "head"):
            self.sample = frame.head(20).copy()
        return frame

    def __repr__(self) -> str:
        return f"Dataset({self.uri!r})"


class Model:
    """Marks a step output as a model: logged with the step's run (``runs:/…/NAME``)
    through the registry's flavors, so it can be registered, served and promoted."""


class Report:
    """Marks a step output as a report (a dict, or anything with ``to_dict()``): stored
    as JSON and shown by ``mloop pipeline show``."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    kind: type


@dataclass
class Step:
    """A function the pipeline runs; calling the Step calls the function."""

    fn: Callable[..., Any]
    name: str
    outputs: tuple[str, ...]
    inputs: dict[str, Any]  # input name -> annotation (or inspect.Parameter.empty)
    params: dict[str, Param]
    returns: Any  # the return annotation
    retries: int = 0
    retry_delay: float = 1.0
    cache: bool = True
    kind: str = "python"
    meta: dict[str, Any] = field(default_factory=dict)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def output_type(self, name: str) -> Any:
        if len(self.outputs) == 1:
            return self.returns
        args = typing.get_args(self.returns)
        index = self.outputs.index(name)
        return args[index] if index < len(args) else inspect.Parameter.empty


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # forward references the module cannot resolve: use the raw strings
        return dict(getattr(fn, "__annotations__", {}))


def _param_kind(annotation: Any, default: Any) -> type:
    """The type a param's values take: its annotation's (``int | None`` → int), else its
    default's."""
    if annotation in PARAM_TYPES:
        return annotation
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(members) == 1 and members[0] in PARAM_TYPES:
        return members[0]
    return type(default) if default is not None else str


def make_step(fn: Callable[..., Any], *, name: str | None = None,
              outputs: str | tuple[str, ...] | list[str] | None = None, retries: int = 0,
              retry_delay: float = 1.0, cache: bool = True) -> Step:
    """A :class:`Step` from a function (what ``@mloop.step`` does)."""
    if isinstance(fn, Step):
        return fn
    if not callable(fn):
        raise InvalidInputError(f"A step is a function, not {type(fn).__name__}.")
    if not isinstance(retries, int) or retries < 0:
        raise InvalidInputError(f"retries must be a whole number ≥ 0, not {retries!r}.")
    hints = _hints(fn)
    inputs: dict[str, Any] = {}
    params: dict[str, Param] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InvalidInputError(f"Step {fn.__name__!r}: *args and **kwargs cannot be "
                                    "wired; name every input.")
        annotation = hints.get(p.name, p.annotation)
        if p.default is not p.empty and (p.default is None or isinstance(p.default, PARAM_TYPES)) \
                and annotation not in (Dataset, Model, Report):
            params[p.name] = Param(p.name, p.default, _param_kind(annotation, p.default))
        else:
            inputs[p.name] = annotation
    step_name = name or fn.__name__
    if isinstance(outputs, str):
        names: tuple[str, ...] = (outputs,)
    elif outputs:
        names = tuple(outputs)
    else:
        names = (step_name,)
    step = Step(fn, step_name, names, inputs, params, hints.get("return", inspect.Parameter.empty),
                retries, float(retry_delay), cache)
    functools.update_wrapper(step, fn, updated=())
    return step


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(*, name: str | None = None, outputs: str | tuple[str, ...] | list[str] | None = None,
         retries: int = 0, retry_delay: float = 1.0,
         cache: bool = True) -> Callable[[Callable[..., Any]], Step]: ...


def step(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         outputs: str | tuple[str, ...] | list[str] | None = None, retries: int = 0,
         retry_delay: float = 1.0, cache: bool = True) -> Any:
    """Make a function a pipeline step: ``@mloop.step`` or ``@mloop.step(retries=2)``.

    ``outputs`` names what the step returns (a tuple for several; default: the step's
    name); ``retries`` re-runs a failing step with exponential backoff from
    ``retry_delay`` seconds; ``cache=False`` runs it every time.
    """
    def wrap(f: Callable[..., Any]) -> Step:
        return make_step(f, name=name, outputs=outputs, retries=retries,
                         retry_delay=retry_delay, cache=cache)

    return wrap(fn) if fn is not None else wrap


def coerce_param(step: Step, param: Param, value: Any) -> Any:
    """``value`` as the param's type (CLI strings too); a clear error naming the step."""
    if param.default is None and (value is None or (isinstance(value, str) and
                                                    value.lower() in ("none", "null"))):
        return None  # an optional param set back to nothing
    if param.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
    elif param.kind in (int, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if param.kind is int and isinstance(value, float) and not value.is_integer():
                raise InvalidInputError(f"Step {step.name!r}: param {param.name} is an int, "
                                        f"not {value!r}.")
            return param.kind(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if param.kind is float or number.is_integer():
                    return param.kind(number)
    elif param.kind is str:
        return str(value)
    elif value is None or isinstance(value, PARAM_TYPES):
        return value
    raise InvalidInputError(f"Step {step.name!r}: param {param.name} takes "
                            f"{param.kind.__name__}, not {value!r}.")
