"""Differential privacy for federated training: DP-FedAvg with an accountant.

:class:`DPFedAvg` wraps a *linear* strategy (FedAvg, FedProx, FedAvgM, FedAdam, …) and
makes each round a Gaussian mechanism over clients (user-level DP, McMahan et al. 2018
"Learning Differentially Private Recurrent Language Models"):

1. every update is clipped to L2 norm ``C`` (``clip_norm``), so one client moves the sum
   by at most ``C``;
2. the clipped updates are *summed uniformly* (each client weighs 1, not its examples:
   example weights would let one client's influence exceed ``C``);
3. Gaussian noise of std ``z·C`` (``z`` = ``noise_multiplier``) is added to the sum, and
   the noisy sum divided by the number of clients ``m`` goes to the wrapped strategy
   (through its :meth:`~mloop.federated.strategy.Strategy.aggregate_sum`).

``mode="central"``: the server adds the noise. It clips each update itself when it sees
them, and :meth:`DPFedAvg.client_update` also asks clients to clip and weigh uniformly,
which is what makes it work under secure aggregation, where the server only gets the sum
(and must trust the clients' clipping). ``mode="local"``: each client clips and adds
noise of std ``z·C`` itself and the server adds none; the server then sees each noisy
update and knows who sent it, so sampling does not amplify privacy and every round is
accounted as a plain Gaussian mechanism (the worst case of a client sampled every round).

Adaptive clipping (Andrew et al. 2021, "Differentially Private Learning with Adaptive
Clipping"): after each round ``C ← C·exp(−η·(b̄ − target))`` where ``b̄`` is the noised
fraction of clients that were *not* clipped, ``target`` the target quantile and η the
learning rate, so ``C`` tracks that quantile of the update norms. The count gets noise of std
``σ_b`` (``count_noise_multiplier``) and the update noise multiplier is raised to
``z_Δ = (z⁻² − (2σ_b)⁻²)^(-1/2)``, so that both together cost what one Gaussian
mechanism with multiplier ``z`` costs. Clients report whether they clipped as the metric
``clipped`` (1 or 0, :data:`CLIPPED`) in :attr:`Update.metrics`; under secure aggregation
the coordinator passes the count to :meth:`DPFedAvg.record_clipped`. In local mode those
bits reach the server without noise, which ε does not cover: use a fixed ``clip_norm``
for a strict local guarantee.

Accounting: each aggregated round composes ``PoissonSampledDpEvent(q, GaussianDpEvent(z))``
in a Rényi-DP accountant from ``dp_accounting`` (its default orders), with ``q`` = the
clients sampled / ``min(num_clients, clients available)`` (the sampling rate when every
client is connected; higher, so conservative, when fewer are). The coordinator samples
a fixed number of clients without replacement; accounting that as Poisson sampling at the
same rate (McMahan et al. select each client independently with probability ``q``) is
the usual approximation, not an exact bound for fixed-size samples. ``round_metrics``
reports ε after every round; with ``target_epsilon`` training stops before a round whose
ε (at the highest rate seen so far) would pass it.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mloop.core.redact import filter_library_logger, get_logger
from mloop.errors import ConfigError, InvalidInputError
from mloop.federated import arrays
from mloop.federated.strategies import check_number, update_matrix
from mloop.federated.strategy import Strategy
from mloop.federated.types import Config, EvalResult, Update, Weights

log = get_logger(__name__)

#: the metric a client sets to 1 when it clipped its update this round (else 0)
CLIPPED = "clipped"
_INSTALL = "pip install 'mloop[federated]'"
_STATE_CLIP, _STATE_RATES, _INNER = "dp.clip_norm", "dp.sampling_rates", "inner."


def _dp() -> Any:
    """The ``dp_accounting`` module, or :class:`ConfigError` saying how to install it."""
    try:
        import dp_accounting
    except ImportError as exc:
        raise ConfigError("differential privacy needs the dp-accounting package: "
                          f"{_INSTALL}") from exc
    filter_library_logger("absl", _NoConvergenceNoise())
    return dp_accounting


class _NoConvergenceNoise(logging.Filter):
    """Drops dp_accounting's note that a fractional RDP order did not converge: that
    order is left out of the minimum, which only makes ε (safely) less tight."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("_compute_log_a_frac failed to converge")


@dataclass(frozen=True)
class AdaptiveClipping:
    """Adaptive clipping (Andrew et al. 2021): start at ``initial`` (> 0) and move C
    geometrically by ``learning_rate`` (> 0) toward the ``target_quantile`` (in (0, 1))
    of the update norms; ``count_noise_multiplier`` is the std of the noise on the count
    of unclipped clients (default: expected clients per round / 20, as the paper
    suggests, but at least ``noise_multiplier``)."""

    initial: float
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_noise_multiplier: float | None = None


def _rdp_epsilon(noise_multiplier: float, rates: Sequence[float], delta: float) -> float:
    """ε for ``delta`` after one Poisson-subsampled Gaussian round at each of ``rates``."""
    if not rates:
        return 0.0
    return _composed_epsilon(noise_multiplier, tuple(sorted(Counter(rates).items())), delta)


@functools.lru_cache(maxsize=256)
def _composed_epsilon(noise_multiplier: float, rounds: tuple[tuple[float, int], ...],
                      delta: float) -> float:
    dp = _dp()
    gaussian = dp.GaussianDpEvent(noise_multiplier)
    events = [dp.SelfComposedDpEvent(dp.PoissonSampledDpEvent(q, gaussian), n)
              for q, n in rounds]
    accountant = dp.rdp.RdpAccountant()
    accountant.compose(dp.ComposedDpEvent(events))
    return float(accountant.get_epsilon(delta))


class DPFedAvg(Strategy):
    """DP-FedAvg (McMahan et al. 2018) around a linear ``strategy``: clipped, uniformly
    weighted, Gaussian-noised updates, ε accounted after every round (see the module).

    Give ``clip_norm`` (fixed C > 0) or ``adaptive``, not both; ``noise_multiplier`` > 0;
    ``num_clients`` is the size of the federation (for the sampling rate and the default
    ``delta`` = 1/num_clients^1.1). With ``target_epsilon``, :meth:`stop_reason` stops
    training before a round that would spend more. ``seed`` makes the noise repeatable
    (by round) for tests and benchmarks only: whoever knows it can subtract the noise.
    """

    name = "dp-fedavg"
    linear = True

    def __init__(self, strategy: Strategy, *, noise_multiplier: float, num_clients: int,
                 clip_norm: float | None = None, adaptive: AdaptiveClipping | None = None,
                 mode: Literal["central", "local"] = "central", delta: float | None = None,
                 target_epsilon: float | None = None, seed: int | None = None) -> None:
        _dp()
        self._check_inner(strategy)
        self.inner = strategy
        super().__init__(fraction_fit=strategy.fraction_fit,
                         fraction_evaluate=strategy.fraction_evaluate,
                         min_fit_clients=strategy.min_fit_clients,
                         min_evaluate_clients=strategy.min_evaluate_clients,
                         min_available_clients=strategy.min_available_clients)
        what = self.name
        self.noise_multiplier = check_number(what, "noise_multiplier", noise_multiplier,
                                             low=0.0, low_open=True)
        self.num_clients = int(check_number(what, "num_clients", num_clients, low=1,
                                            integer=True))
        if mode not in ("central", "local"):
            raise ConfigError(f"{what}: mode={mode!r} is not valid; use 'central' (the "
                              "server adds the noise) or 'local' (each client does)")
        self.mode = mode
        default_delta = self.num_clients ** -1.1
        self.delta = check_number(what, "delta", default_delta if delta is None else delta,
                                  low=0.0, high=1.0, low_open=True, high_open=True)
        self.target_epsilon = None if target_epsilon is None else check_number(
            what, "target_epsilon", target_epsilon, low=0.0, low_open=True)
        self.adaptive = adaptive
        self.clip_norm = self._check_clipping(clip_norm, adaptive)
        self.count_noise_multiplier = self._count_noise(adaptive)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._rates: list[float] = []
        self._fit_rate: float | None = None
        self._clipped_report: tuple[int, float] | None = None
        self._warned_no_count = False
        self._last: dict[str, float] = {}
        if adaptive is not None and mode == "local":
            log.warning("dp-fedavg: adaptive clipping in local mode lets the server see "
                        "whether each client clipped (one bit a round), which ε does not "
                        "cover; use a fixed clip_norm for a strict local guarantee")

    # -- validation ---------------------------------------------------------------------
    def _check_inner(self, strategy: Strategy) -> None:
        if not isinstance(strategy, Strategy):
            raise ConfigError(f"dp-fedavg wraps a Strategy, not {strategy!r}: pass e.g. "
                              "FedAvg()")
        if isinstance(strategy, DPFedAvg):
            raise ConfigError("dp-fedavg: this strategy is already differentially private; "
                              "wrap the inner strategy once")
        if not strategy.linear:
            raise ConfigError(f"dp-fedavg needs a linear strategy (FedAvg, FedProx, FedAvgM, "
                              f"FedAdam, FedYogi, FedAdagrad); {strategy.name or strategy!r} "
                              "is not: its sensitivity to one client is not bounded by "
                              "clipping a sum")

    def _check_clipping(self, clip_norm: float | None,
                        adaptive: AdaptiveClipping | None) -> float:
        if (clip_norm is None) == (adaptive is None):
            raise ConfigError("dp-fedavg: give either clip_norm (a fixed bound on each "
                              "update's L2 norm) or adaptive=AdaptiveClipping(initial=...), "
                              "exactly one")
        if adaptive is None:
            return check_number(self.name, "clip_norm", clip_norm, low=0.0, low_open=True)
        if not isinstance(adaptive, AdaptiveClipping):
            raise ConfigError(f"dp-fedavg: adaptive must be an AdaptiveClipping, not "
                              f"{adaptive!r}")
        check_number(self.name, "adaptive.target_quantile", adaptive.target_quantile,
                     low=0.0, high=1.0, low_open=True, high_open=True)
        check_number(self.name, "adaptive.learning_rate", adaptive.learning_rate, low=0.0,
                     low_open=True)
        return check_number(self.name, "adaptive.initial", adaptive.initial, low=0.0,
                            low_open=True)

    def _count_noise(self, adaptive: AdaptiveClipping | None) -> float:
        if adaptive is None:
            return 0.0
        z = self.noise_multiplier
        if adaptive.count_noise_multiplier is None:
            return max(self._planned_clients() / 20.0, z)
        sigma = check_number(self.name, "adaptive.count_noise_multiplier",
                             adaptive.count_noise_multiplier, low=0.0, low_open=True)
        if self.mode == "central" and 2.0 * sigma <= z:
            raise ConfigError(f"dp-fedavg: count_noise_multiplier={sigma:g} must exceed "
                              f"noise_multiplier/2 = {z / 2:g} (the count's noise is paid "
                              "for from the same budget); raise it or leave it unset")
        return sigma

    # -- noise and accounting -----------------------------------------------------------
    def update_noise_multiplier(self) -> float:
        """The multiplier of the noise on the updates: ``z``, or with adaptive clipping in
        central mode ``(z⁻² − (2σ_b)⁻²)^(-1/2)`` (Andrew et al. 2021, Theorem 1)."""
        if self.adaptive is None or self.mode == "local":
            return self.noise_multiplier
        z, sigma = self.noise_multiplier, self.count_noise_multiplier
        return float((z ** -2 - (2.0 * sigma) ** -2) ** -0.5)

    def noise_std(self) -> float:
        """The std of the noise on the sum this round (central) or on each client's
        update (local): the update noise multiplier × the current ``C``."""
        return self.update_noise_multiplier() * self.clip_norm

    def _planned_clients(self) -> int:
        return self.inner.num_fit(self.num_clients)

    def _round_rate(self, count: int) -> float:
        if self.mode == "local":
            return 1.0
        if self._fit_rate is not None:
            return self._fit_rate
        return min(1.0, max(count, self._planned_clients()) / self.num_clients)

    def epsilon(self) -> float:
        """ε (for :attr:`delta`) spent by the rounds aggregated so far; 0 before any."""
        return _rdp_epsilon(self.noise_multiplier, self._rates, self.delta)

    def stop_reason(self, server_round: int) -> str | None:
        """A message when one more round would take ε above ``target_epsilon`` (its
        sampling rate predicted from the settings and the rounds so far), else the
        wrapped strategy's reason, else None."""
        if self.target_epsilon is not None:
            planned = 1.0 if self.mode == "local" else min(
                1.0, self._planned_clients() / self.num_clients)
            q = max([planned, *self._rates])
            after = _rdp_epsilon(self.noise_multiplier, [*self._rates, q], self.delta)
            if after > self.target_epsilon:
                return (f"the privacy budget is spent: round {server_round} would take ε "
                        f"from {self.epsilon():.4g} to {after:.4g}, above target_epsilon "
                        f"{self.target_epsilon:g} (δ={self.delta:.3g}). Raise target_epsilon "
                        "or noise_multiplier, or sample fewer clients per round")
        return self.inner.stop_reason(server_round)

    # -- sampling and configs -------------------------------------------------------------
    def num_fit(self, available: int) -> int:
        """The wrapped strategy's count, remembered for this round's sampling rate."""
        k = self.inner.num_fit(available)
        if available > 0:
            self._fit_rate = min(1.0, k / min(self.num_clients, available))
        return k

    def num_evaluate(self, available: int) -> int:
        """The wrapped strategy's count of evaluating clients."""
        return self.inner.num_evaluate(available)

    def sample(self, available: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
        """The wrapped strategy's sample."""
        return self.inner.sample(available, k, rng)

    def initialize(self, weights: Weights) -> None:
        """Initialize the wrapped strategy."""
        self.inner.initialize(weights)

    def fit_config(self, server_round: int) -> Config:
        """The wrapped strategy's fit config."""
        return self.inner.fit_config(server_round)

    def client_update(self) -> dict[str, Any]:
        """What clients must do to their update: clip to ``clip_norm``, weigh
        ``uniform``ly, and in local mode add Gaussian noise of std ``noise_std``."""
        out: dict[str, Any] = {"clip_norm": self.clip_norm, "weighting": "uniform"}
        if self.mode == "local":
            out["noise_std"] = self.noise_std()
        return out

    # -- aggregation ----------------------------------------------------------------------
    def _clipped_flags(self, updates: Sequence[Update], norms: np.ndarray) -> float | None:
        """How many clients clipped: their ``clipped`` metric, else (central) whether the
        update's norm reaches C; None when no client said and the server cannot tell."""
        count, known = 0.0, 0
        for u, norm in zip(updates, norms, strict=True):
            flag = u.metrics.get(CLIPPED)
            if flag is None and self.mode == "central":
                flag = bool(norm >= self.clip_norm * (1.0 - 1e-6))
            if flag is None:
                continue
            if isinstance(flag, str) or float(flag) not in (0.0, 1.0):
                raise InvalidInputError(f"client {u.client!r} reported {CLIPPED}={flag!r}; "
                                        "it must be 1 (clipped) or 0")
            count += float(flag)
            known += 1
        return count * len(updates) / known if known else None

    def aggregate(self, server_round: int, current: Weights,
                  updates: Sequence[Update]) -> Weights:
        """Clip each update to C (central; in local mode they come clipped and noised),
        sum them with weight 1 each, add the noise, and let the wrapped strategy step."""
        matrix = update_matrix(current, updates)
        norms = np.linalg.norm(matrix, axis=1)
        if self.mode == "central":
            scale = np.minimum(1.0, self.clip_norm / np.maximum(norms, np.finfo(float).tiny))
            total = scale @ matrix
        else:
            total = matrix.sum(axis=0)
        clipped = self._clipped_flags(updates, norms) if self.adaptive else None
        return self._release(server_round, current, total, len(updates), clipped)

    def record_clipped(self, server_round: int, clipped: float) -> None:
        """Under secure aggregation with adaptive clipping: how many of this round's
        clients clipped (the sum of their ``clipped`` metrics), before
        :meth:`aggregate_sum` of the same round (a secure sum of the bits reveals the
        least; summing the clients' visible ``clipped`` metrics also works)."""
        self._clipped_report = (server_round,
                                check_number(self.name, "clipped", clipped, low=0.0))

    def aggregate_sum(self, server_round: int, current: Weights, total: Weights,
                      total_weight: float, count: int) -> Weights:
        """The sum of the clients' clipped updates, each weighted 1 (``total_weight``
        must equal ``count``), noised (central) and stepped by the wrapped strategy."""
        arrays.check_like(total, current, what="sum of the updates")
        if count < 1 or not math.isclose(float(total_weight), float(count), rel_tol=1e-6):
            raise InvalidInputError(f"dp-fedavg: the secure sum has total weight "
                                    f"{total_weight} for {count} clients; the clients must "
                                    "weigh their updates uniformly (client_update's "
                                    "weighting), so the two must be equal and positive")
        report, self._clipped_report = self._clipped_report, None
        clipped = report[1] if report is not None and report[0] == server_round else None
        if self.adaptive is not None and clipped is None and not self._warned_no_count:
            self._warned_no_count = True
            log.warning("dp-fedavg: round %d has no count of clipped clients "
                        "(record_clipped), so the adaptive clip norm stays %.4g in such "
                        "rounds", server_round, self.clip_norm)
        return self._release(server_round, current, arrays.flatten(total), count, clipped)

    def _release(self, server_round: int, current: Weights, total: np.ndarray, count: int,
                 clipped: float | None) -> Weights:
        rng = (self._rng if self.seed is None
               else np.random.default_rng([self.seed, server_round]))
        std = self.noise_std()
        if self.mode == "central":
            total = total + rng.normal(0.0, std, size=total.shape)
        self._rates.append(self._round_rate(count))
        self._fit_rate = None
        self._last = {"clip_norm": self.clip_norm, "noise_std": std}
        if self.adaptive is not None and clipped is not None:
            self._adapt(count, clipped, rng)
        like = [np.broadcast_to(np.float64(0.0), w.shape) for w in current]
        return self.inner.aggregate_sum(server_round, current,
                                        arrays.unflatten(total, like), float(count), count)

    def _adapt(self, count: int, clipped: float, rng: np.random.Generator) -> None:
        """``C ← C·exp(−η·(b̄ − target))`` with b̄ the noised fraction of unclipped clients."""
        if self.adaptive is None:
            return
        unclipped = count - clipped + rng.normal(0.0, self.count_noise_multiplier)
        fraction = unclipped / count
        self._last["unclipped_fraction"] = float(fraction)
        rate, target = self.adaptive.learning_rate, self.adaptive.target_quantile
        self.clip_norm = float(self.clip_norm * math.exp(-rate * (fraction - target)))

    def aggregate_evaluate(self, server_round: int, results: Sequence[EvalResult]
                           ) -> dict[str, float]:
        """The wrapped strategy's evaluation summary."""
        return self.inner.aggregate_evaluate(server_round, results)

    def round_metrics(self) -> dict[str, float]:
        """``epsilon`` so far, the ``clip_norm`` and ``noise_std`` of the last round (the
        current ones before any), ``unclipped_fraction`` (noised) with adaptive clipping,
        and the wrapped strategy's metrics."""
        out = {"clip_norm": self.clip_norm, "noise_std": self.noise_std(), **self._last}
        return {**self.inner.round_metrics(), **out, "epsilon": self.epsilon()}

    # -- resume and tracking --------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The current C, the sampling rate of every round accounted, and the wrapped
        strategy's state under ``inner.`` keys."""
        own = {_STATE_CLIP: self.clip_norm,
               _STATE_RATES: [np.asarray(self._rates, dtype=np.float64)]}
        return {**own, **{_INNER + k: v for k, v in self.inner.state().items()}}

    def restore(self, state: dict[str, Any]) -> None:
        """Load what :meth:`state` returned: ε and C continue where they were."""
        try:
            clip = float(state[_STATE_CLIP])
            rates = [float(q) for q in np.concatenate(
                [np.ravel(np.asarray(a, dtype=np.float64)) for a in state[_STATE_RATES]]
                or [np.zeros(0)])]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"dp-fedavg: the saved state lacks or garbles {exc}; "
                                    "resume from a checkpoint this strategy wrote") from exc
        if not (math.isfinite(clip) and clip > 0) or not all(0 < q <= 1 for q in rates):
            raise InvalidInputError("dp-fedavg: the saved state's clip norm or sampling "
                                    "rates are out of range; resume from a checkpoint this "
                                    "strategy wrote")
        self.clip_norm, self._rates = clip, rates
        self.inner.restore({k[len(_INNER):]: v for k, v in state.items()
                            if k.startswith(_INNER)})

    def params(self) -> dict[str, Any]:
        """The wrapped strategy's params and the privacy settings (``dp_mode``,
        ``noise_multiplier``, the clipping, ``delta``, ``target_epsilon``, …)."""
        out: dict[str, Any] = {**self.inner.params(), "dp": self.name, "dp_mode": self.mode,
                               "noise_multiplier": self.noise_multiplier,
                               "num_clients": self.num_clients, "delta": self.delta}
        if self.adaptive is None:
            out["clip_norm"] = self.clip_norm
        else:
            out.update(clip_norm_initial=self.adaptive.initial,
                       clip_target_quantile=self.adaptive.target_quantile,
                       clip_learning_rate=self.adaptive.learning_rate,
                       clip_count_noise_multiplier=self.count_noise_multiplier)
        if self.target_epsilon is not None:
            out["target_epsilon"] = self.target_epsilon
        return out


_OPTION_KEYS = ("noise_multiplier", "clip_norm", "mode", "delta", "target_epsilon",
                "num_clients", "adaptive", "target_quantile", "clip_learning_rate",
                "count_noise_multiplier")


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"--dp adaptive={value!r} is not valid: use true or false")


def dp_from_options(strategy: Strategy, options: dict[str, Any]) -> DPFedAvg:
    """``strategy`` wrapped in :class:`DPFedAvg` from ``--dp key=value`` options:
    ``noise_multiplier`` (required), ``clip_norm`` (required: the fixed C, or the initial
    C with ``adaptive=true``, tuned by ``target_quantile``, ``clip_learning_rate`` and
    ``count_noise_multiplier``), ``mode``, ``delta``, ``target_epsilon`` and
    ``num_clients`` (default: the strategy's ``min_available_clients``; a smaller count
    only overstates the sampling rate, so ε errs on the safe side). Never seeded."""
    unknown = sorted(set(options) - set(_OPTION_KEYS))
    if unknown:
        raise ConfigError(f"--dp has no key {unknown[0]!r}; the keys: "
                          f"{', '.join(sorted(_OPTION_KEYS))}")
    for key in ("noise_multiplier", "clip_norm"):
        if key not in options:
            raise ConfigError(f"differential privacy needs --dp {key}=VALUE (e.g. --dp "
                              "noise_multiplier=1 --dp clip_norm=0.5)")
    numbers = {k: _number(k, v) for k, v in options.items()
               if k not in ("mode", "adaptive")}
    tuning = {k: numbers.pop(k) for k in ("target_quantile", "clip_learning_rate",
                                          "count_noise_multiplier") if k in numbers}
    clip: float | None = numbers.pop("clip_norm")
    adaptive = None
    if _flag(options.get("adaptive", False)):
        adaptive = AdaptiveClipping(
            initial=float(clip or 0.0), target_quantile=tuning.get("target_quantile", 0.5),
            learning_rate=tuning.get("clip_learning_rate", 0.2),
            count_noise_multiplier=tuning.get("count_noise_multiplier"))
        clip = None
    elif tuning:
        raise ConfigError(f"--dp {sorted(tuning)[0]} tunes adaptive clipping: add "
                          "--dp adaptive=true, or leave it out for a fixed clip_norm")
    num_clients: Any = numbers.get("num_clients", strategy.min_available_clients)
    mode: Any = options.get("mode", "central")
    return DPFedAvg(strategy, noise_multiplier=numbers["noise_multiplier"],
                    num_clients=num_clients, clip_norm=clip, adaptive=adaptive, mode=mode,
                    delta=numbers.get("delta"), target_epsilon=numbers.get("target_epsilon"))


def _number(key: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return float(str(value))
    except ValueError:
        raise ConfigError(f"--dp {key}={value!r} is not a number") from None


__all__ = ["CLIPPED", "AdaptiveClipping", "DPFedAvg", "dp_from_options"]
