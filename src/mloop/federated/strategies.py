"""The built-in strategies that average updates, the server optimizers, and the registry.

Every strategy here is *linear*: the next model depends on the clients' updates only
through their example-weighted mean ``Σ nᵢ·Δᵢ / Σ nᵢ``, so :meth:`aggregate` (each update
seen) and :meth:`aggregate_sum` (only the sum, as secure aggregation gives it) agree.
Updates are stacked into one clients × parameters matrix and reduced in one operation.

- :class:`FedAvg` adds the mean update to the global model (McMahan et al. 2017).
- :class:`FedProx` aggregates as FedAvg and sends ``proximal_mu`` to the clients, whose
  local objective gains ``mu/2·‖w − w_global‖²`` (Li et al. 2020).
- :class:`FedAvgM` keeps server momentum over the mean update (Hsu et al. 2019).
- :class:`FedAdagrad`, :class:`FedAdam`, :class:`FedYogi` treat the mean update as a
  pseudo-gradient for an adaptive server optimizer (Reddi et al. 2021, Algorithm 2).

The robust, non-linear strategies (median, trimmed mean, Krum) live in
:mod:`mloop.federated.robust`. :func:`make_strategy` builds any of them by name, plugins
included (entry-point group ``mloop.fl_strategies``).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import math
import re
import types
import typing
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated import arrays
from mloop.federated.strategy import Strategy
from mloop.federated.types import Config, Update, Weights

ENTRY_POINTS = "mloop.fl_strategies"


# -- shared checks and vector helpers ---------------------------------------------------
def check_number(strategy: str, name: str, value: Any, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 high_open: bool = False, integer: bool = False) -> float:
    """``value`` as a float when it is a finite number within the bounds (open or closed),
    else :class:`ConfigError` naming ``strategy``'s parameter and the range to use."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and math.isfinite(float(value)):
        v = float(value)
        below = low is not None and (v <= low if low_open else v < low)
        above = high is not None and (v >= high if high_open else v > high)
        if not below and not above:
            return v
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    bounds = " and ".join(b for b in (lo, hi) if b)
    raise ConfigError(f"{strategy}: {name}={value!r} is not valid; set it to {kind}"
                      f"{' ' + bounds if bounds else ''}.")


def example_weights(updates: Sequence[Update]) -> np.ndarray:
    """Each update's ``num_examples`` as float64 weights (all 1 when every one is 0)."""
    w = np.array([u.num_examples for u in updates], dtype=np.float64)
    if (w < 0).any() or not np.isfinite(w).all():
        bad = next(u.client for u in updates if not u.num_examples >= 0)
        raise InvalidInputError(f"client {bad!r} reported a negative or non-finite number "
                                "of examples; a client must count the examples it used")
    return w if w.sum() > 0 else np.ones_like(w)


def update_matrix(current: Weights, updates: Sequence[Update]) -> np.ndarray:
    """The updates as a (clients × parameters) float64 matrix, each checked against
    ``current``'s shapes and for finite values (:class:`InvalidInputError` otherwise)."""
    if not updates:
        raise InvalidInputError("no client updates to aggregate: a round needs at least one")
    for u in updates:
        arrays.check_like(u.delta, current, what=f"update from client {u.client!r}")
    return arrays.stack([u.delta for u in updates])


def apply_step(current: Weights, step: np.ndarray) -> Weights:
    """``current`` plus the flat ``step``, each array keeping its dtype (integer arrays,
    such as a batch-norm counter, are rounded to the nearest integer)."""
    out: Weights = []
    at = 0
    for w in current:
        n = w.size
        new = np.asarray(w, dtype=np.float64).ravel() + step[at:at + n]
        if w.dtype.kind in "iub":
            new = np.rint(new)
        out.append(new.reshape(w.shape).astype(w.dtype, copy=False))
        at += n
    if at != step.size:
        raise InvalidInputError(f"a step of {step.size} values does not fit a model of {at}")
    return out


class DeltaStrategy(Strategy):
    """A strategy over updates (the base checks the sampling arguments)."""


class LinearStrategy(DeltaStrategy):
    """A strategy whose next model is a function of the example-weighted mean update:
    subclasses implement :meth:`step` and get both aggregation paths."""

    linear = True

    @abstractmethod
    def step(self, server_round: int, current: Weights, mean: np.ndarray) -> Weights:
        """The next weights from ``current`` and the flat mean update ``mean``."""

    def aggregate(self, server_round: int, current: Weights,
                  updates: Sequence[Update]) -> Weights:
        """The next weights from the example-weighted mean of ``updates``."""
        matrix = update_matrix(current, updates)
        w = example_weights(updates)
        return self.step(server_round, current, (w @ matrix) / w.sum())

    def aggregate_sum(self, server_round: int, current: Weights, total: Weights,
                      total_weight: float, count: int) -> Weights:
        """The next weights from the weighted sum of the updates (``total``) divided by
        ``total_weight``, which must be positive; ``count`` is the number of clients."""
        arrays.check_like(total, current, what="sum of the updates")
        if not (math.isfinite(total_weight) and total_weight > 0) or count < 1:
            raise InvalidInputError(f"a secure sum over {count} clients with total weight "
                                    f"{total_weight} cannot be averaged: both must be > 0")
        return self.step(server_round, current, arrays.flatten(total) / float(total_weight))


# -- the linear strategies ----------------------------------------------------------------
class FedAvg(LinearStrategy):
    """Federated averaging (McMahan et al. 2017): the global model plus the
    example-weighted mean of the clients' updates."""

    name = "fedavg"

    def step(self, server_round: int, current: Weights, mean: np.ndarray) -> Weights:
        """``current + mean``."""
        return apply_step(current, mean)


class FedProx(FedAvg):
    """FedProx (Li et al. 2020): FedAvg on the server, and ``proximal_mu`` (≥ 0) sent to
    every client, whose ready implementations add ``mu/2·‖w − w_global‖²`` to the loss."""

    name = "fedprox"

    def __init__(self, *, proximal_mu: float, **sampling: Any) -> None:
        super().__init__(**sampling)
        self.proximal_mu = check_number(self.name, "proximal_mu", proximal_mu, low=0.0)

    def fit_config(self, server_round: int) -> Config:
        """``{"proximal_mu": mu}`` for every client, every round."""
        return {"proximal_mu": self.proximal_mu}

    def params(self) -> dict[str, Any]:
        """The sampling settings and ``proximal_mu``."""
        return {**super().params(), "proximal_mu": self.proximal_mu}


def _one_vector(state: dict[str, Any], key: str, who: str) -> np.ndarray | None:
    value = state.get(key, [])
    if not isinstance(value, (list, tuple)) or len(value) > 1:
        raise InvalidInputError(f"{who}: the saved state's {key!r} must be a list of at most "
                                "one array; resume from a checkpoint this strategy wrote")
    if not value:
        return None
    vector = np.array(value[0], dtype=np.float64).ravel()
    if not np.isfinite(vector).all():
        raise InvalidInputError(f"{who}: the saved state's {key!r} holds NaN or infinity")
    return vector


class _ServerState(LinearStrategy):
    """A linear strategy with server-side vectors sized by :meth:`initialize`."""

    _vectors: tuple[str, ...] = ()

    def __init__(self, **sampling: Any) -> None:
        super().__init__(**sampling)
        self._state: dict[str, np.ndarray] = {}

    def _fresh(self, size: int) -> dict[str, np.ndarray]:
        return {key: np.zeros(size) for key in self._vectors}

    def initialize(self, weights: Weights) -> None:
        """Size the server state for ``weights`` (zero momentum)."""
        self._state = self._fresh(int(sum(w.size for w in weights)))

    def _vectors_for(self, mean: np.ndarray) -> dict[str, np.ndarray]:
        if not self._state:  # initialize() was not called: start from zero state
            self._state = self._fresh(mean.size)
        size = next(iter(self._state.values())).size
        if size != mean.size:
            raise InvalidInputError(f"{self.name}: its state is sized for {size} parameters "
                                    f"but the update has {mean.size}; resume with the model "
                                    "the state was saved for")
        return self._state

    def state(self) -> dict[str, Any]:
        """The server vectors, each as a one-array list (empty before the first round)."""
        return {key: [self._state[key].copy()] if self._state else []
                for key in self._vectors}

    def restore(self, state: dict[str, Any]) -> None:
        """Load what :meth:`state` returned (all vectors or none, of one size)."""
        loaded = {key: _one_vector(state, key, self.name) for key in self._vectors}
        present = {k: v for k, v in loaded.items() if v is not None}
        if present and (len(present) != len(loaded)
                        or len({v.size for v in present.values()}) != 1):
            raise InvalidInputError(f"{self.name}: the saved state must hold all of "
                                    f"{', '.join(self._vectors)} with one size, or none")
        self._state = present


class FedAvgM(_ServerState):
    """FedAvg with server momentum (Hsu et al. 2019): ``v ← β·v + Δ`` and
    ``w ← w + η·v``, with Δ the example-weighted mean update, η =
    ``server_learning_rate`` (> 0) and β = ``server_momentum`` in [0, 1)."""

    name = "fedavgm"
    _vectors = ("momentum",)

    def __init__(self, *, server_learning_rate: float = 1.0, server_momentum: float = 0.9,
                 **sampling: Any) -> None:
        super().__init__(**sampling)
        self.server_learning_rate = check_number(self.name, "server_learning_rate",
                                                 server_learning_rate, low=0.0, low_open=True)
        self.server_momentum = check_number(self.name, "server_momentum", server_momentum,
                                            low=0.0, high=1.0, high_open=True)

    def step(self, server_round: int, current: Weights, mean: np.ndarray) -> Weights:
        """One momentum step along the mean update."""
        state = self._vectors_for(mean)
        state["momentum"] = self.server_momentum * state["momentum"] + mean
        return apply_step(current, self.server_learning_rate * state["momentum"])

    def params(self) -> dict[str, Any]:
        """The sampling settings, ``server_learning_rate`` and ``server_momentum``."""
        return {**super().params(), "server_learning_rate": self.server_learning_rate,
                "server_momentum": self.server_momentum}


class _FedOpt(_ServerState):
    """An adaptive server optimizer (Reddi et al. 2021, Algorithm 2) on the
    pseudo-gradient Δ (the example-weighted mean update): ``m ← β₁·m + (1 − β₁)·Δ``,
    ``v`` by the subclass's rule, ``w ← w + η·m / (√v + τ)``; ``m₀ = 0``, ``v₀ = τ²``,
    no bias correction, as in the paper."""

    _vectors = ("m", "v")

    def __init__(self, *, eta: float = 0.1, eta_l: float | None = None, beta_1: float = 0.9,
                 tau: float = 1e-3, **sampling: Any) -> None:
        super().__init__(**sampling)
        self.eta = check_number(self.name, "eta", eta, low=0.0, low_open=True)
        self.eta_l = None if eta_l is None else check_number(
            self.name, "eta_l", eta_l, low=0.0, low_open=True)
        self.beta_1 = check_number(self.name, "beta_1", beta_1, low=0.0, high=1.0,
                                   high_open=True)
        self.tau = check_number(self.name, "tau", tau, low=0.0, low_open=True)

    def _fresh(self, size: int) -> dict[str, np.ndarray]:
        return {"m": np.zeros(size), "v": np.full(size, self.tau ** 2)}

    @abstractmethod
    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The new second-moment vector from the old one and the pseudo-gradient."""

    def step(self, server_round: int, current: Weights, mean: np.ndarray) -> Weights:
        """One adaptive step along the mean update."""
        state = self._vectors_for(mean)
        state["m"] = self.beta_1 * state["m"] + (1.0 - self.beta_1) * mean
        state["v"] = self.second_moment(state["v"], mean)
        return apply_step(current, self.eta * state["m"] / (np.sqrt(state["v"]) + self.tau))

    def fit_config(self, server_round: int) -> Config:
        """``{"lr": eta_l}`` when ``eta_l`` (the clients' learning rate) was set."""
        return {} if self.eta_l is None else {"lr": self.eta_l}

    def params(self) -> dict[str, Any]:
        """The sampling settings and the optimizer's hyperparameters."""
        out = {**super().params(), "eta": self.eta, "beta_1": self.beta_1, "tau": self.tau}
        if self.eta_l is not None:
            out["eta_l"] = self.eta_l
        return out


class FedAdagrad(_FedOpt):
    """FedAdagrad (Reddi et al. 2021): ``v ← v + Δ²``."""

    name = "fedadagrad"

    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``v + Δ²``."""
        return v + delta * delta


class _BetaTwo(_FedOpt):
    def __init__(self, *, eta: float = 0.1, eta_l: float | None = None, beta_1: float = 0.9,
                 beta_2: float = 0.99, tau: float = 1e-3, **sampling: Any) -> None:
        super().__init__(eta=eta, eta_l=eta_l, beta_1=beta_1, tau=tau, **sampling)
        self.beta_2 = check_number(self.name, "beta_2", beta_2, low=0.0, high=1.0,
                                   high_open=True)

    def params(self) -> dict[str, Any]:
        """The sampling settings and the optimizer's hyperparameters."""
        return {**super().params(), "beta_2": self.beta_2}


class FedAdam(_BetaTwo):
    """FedAdam (Reddi et al. 2021): ``v ← β₂·v + (1 − β₂)·Δ²``."""

    name = "fedadam"

    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``β₂·v + (1 − β₂)·Δ²``."""
        return self.beta_2 * v + (1.0 - self.beta_2) * delta * delta


class FedYogi(_BetaTwo):
    """FedYogi (Reddi et al. 2021): ``v ← v − (1 − β₂)·Δ²·sign(v − Δ²)``."""

    name = "fedyogi"

    def second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``v − (1 − β₂)·Δ²·sign(v − Δ²)``."""
        sq = delta * delta
        return v - (1.0 - self.beta_2) * sq * np.sign(v - sq)


# -- the registry -------------------------------------------------------------------------
_REGISTRY: dict[str, type[Strategy]] = {}
_loaded = False
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def register_strategy(name: str, cls: type[Strategy]) -> None:
    """Make ``cls`` (a :class:`Strategy` subclass) buildable as ``name`` (lowercase
    letters, digits, ``_ . -``); a later registration of a name replaces the earlier."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a strategy name: use lowercase letters, digits "
                          "and _ . - (e.g. 'my-fedavg')")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"the strategy {name!r} must be a subclass of "
                          f"mloop.federated.Strategy, not {cls!r}")
    _REGISTRY[name] = cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from mloop.federated.robust import FedMedian, FedTrimmedAvg, Krum

    for cls in (FedAvg, FedProx, FedAvgM, FedAdam, FedYogi, FedAdagrad):
        register_strategy(cls.name, cls)
    for name, robust in (("median", FedMedian), ("trimmed-mean", FedTrimmedAvg),
                         ("krum", Krum)):
        register_strategy(name, robust)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(f"the strategy plugin {ep.name!r} ({ep.value}) cannot be "
                              f"loaded: {type(exc).__name__}: {exc}") from exc
        register_strategy(ep.name, obj)


def strategy_names() -> list[str]:
    """Every registered strategy name, built-ins and plugins, sorted."""
    _load()
    return sorted(_REGISTRY)


def _hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # a plugin's annotations that do not resolve: no coercion
        return {}


def strategy_params(cls: type[Strategy]) -> dict[str, inspect.Parameter]:
    """The keyword parameters ``cls`` accepts: its own and, when it passes ``**kwargs``
    on, the base sampling settings."""
    own = inspect.signature(cls).parameters
    out = {k: p for k, p in own.items()
           if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if any(p.kind is p.VAR_KEYWORD for p in own.values()):
        base = inspect.signature(Strategy.__init__).parameters
        out.update({k: p for k, p in base.items() if k != "self" and k not in out})
    return out


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """A ``--param k=v`` string turned into the type the parameter is annotated with."""
    if not isinstance(value, str) or hint is None:
        return value
    allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) or (
        typing.get_origin(hint) is typing.Union) else {hint}
    text = value.strip()
    if type(None) in allowed and text.lower() in ("none", "null"):
        return None
    if bool in allowed and text.lower() in ("true", "false", "1", "0", "yes", "no"):
        return text.lower() in ("true", "1", "yes")
    for kind in (int, float):
        if kind in allowed:
            try:
                return kind(text)
            except ValueError:
                continue
    if str in allowed or Any in allowed:
        return value
    wanted = " or ".join(sorted(getattr(t, "__name__", str(t)) for t in allowed))
    raise ConfigError(f"{key}={value!r} is not valid: {key} takes {wanted}")


def make_strategy(name: str, **params: Any) -> Strategy:
    """The strategy registered as ``name`` built with ``params``; string values (from
    ``--param k=v``) become the parameter's annotated type. Unknown names, unknown or
    missing parameters and bad values raise :class:`ConfigError` saying what is valid."""
    _load()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"unknown strategy {name!r}; known strategies: "
                          f"{', '.join(sorted(_REGISTRY))} (plugins register through the "
                          f"entry-point group {ENTRY_POINTS!r})")
    accepted = strategy_params(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"the {name} strategy has no parameter {unknown[0]!r}; its "
                          f"parameters: {', '.join(sorted(accepted))}")
    missing = sorted(k for k, p in accepted.items() if p.default is p.empty and k not in params)
    if missing:
        raise ConfigError(f"the {name} strategy needs {', '.join(missing)} "
                          f"(e.g. --param {missing[0]}=VALUE)")
    hints = {**_hints(Strategy.__init__), **_hints(cls.__init__)}
    values = {k: _coerce(k, v, hints.get(k)) for k, v in params.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the {name} strategy refused its parameters: {exc}") from exc


__all__ = ["ENTRY_POINTS", "FedAdagrad", "FedAdam", "FedAvg", "FedAvgM", "FedProx", "FedYogi",
           "LinearStrategy", "apply_step", "check_number", "example_weights", "make_strategy",
           "register_strategy", "strategy_names", "strategy_params", "update_matrix"]
