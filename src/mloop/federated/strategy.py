"""The strategy contract: which clients train each round, and how their updates become
the next global model.

Every strategy works on *updates* (client weights − global weights). A *linear*
strategy's next model depends on the updates only through their weighted mean, so it
can be computed from a secure sum (SecAgg) that never shows the server one client's
update; robust statistics (median, trimmed mean, Krum) need each update and are not
linear. Built-ins and plugins register by name through :func:`register_strategy`
(entry-point group ``mloop.fl_strategies``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mloop.errors import ConfigError
from mloop.federated.types import Config, EvalResult, Update, Weights


class Strategy(ABC):
    """The base: client sampling and evaluation aggregation shared by every strategy.

    ``fraction_fit`` of the available clients train each round, at least
    ``min_fit_clients``; a round starts once ``min_available_clients`` are connected.
    """

    name: ClassVar[str] = ""
    #: the next model depends only on the weighted mean of the updates (SecAgg can do it)
    linear: ClassVar[bool] = True

    def __init__(self, *, fraction_fit: float = 1.0, fraction_evaluate: float = 1.0,
                 min_fit_clients: int = 2, min_evaluate_clients: int = 2,
                 min_available_clients: int = 2) -> None:
        if not 0.0 < fraction_fit <= 1.0 or not 0.0 <= fraction_evaluate <= 1.0:
            raise ConfigError("fraction_fit must be in (0, 1] and fraction_evaluate in [0, 1]")
        if min(min_fit_clients, min_available_clients) < 1 or min_evaluate_clients < 0:
            raise ConfigError("min_fit_clients and min_available_clients must be >= 1 and "
                              "min_evaluate_clients >= 0")
        self.fraction_fit = fraction_fit
        self.fraction_evaluate = fraction_evaluate
        self.min_fit_clients = min_fit_clients
        self.min_evaluate_clients = min_evaluate_clients
        self.min_available_clients = max(min_available_clients, min_fit_clients)

    # -- sampling ------------------------------------------------------------------
    def num_fit(self, available: int) -> int:
        return min(available, max(self.min_fit_clients, math.ceil(self.fraction_fit * available)))

    def num_evaluate(self, available: int) -> int:
        if self.fraction_evaluate == 0.0:
            return 0
        wanted = max(self.min_evaluate_clients, math.ceil(self.fraction_evaluate * available))
        return min(available, wanted)

    def sample(self, available: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
        """``k`` of ``available`` without replacement (all of them, in order, when k ≥ n)."""
        if k >= len(available):
            return list(available)
        idx = np.sort(rng.choice(len(available), size=k, replace=False))
        return [available[i] for i in idx]

    # -- the round -----------------------------------------------------------------
    def initialize(self, weights: Weights) -> None:
        """Called once with the initial global weights (server optimizers size state)."""
        return

    def fit_config(self, server_round: int) -> Config:
        """Extra config every sampled client gets for ``fit`` this round."""
        return {}

    def client_update(self) -> dict[str, Any]:
        """How mloop's client runtime must treat its own update before sending it
        (``clip_norm``, ``noise_std``, ``weighting``): empty for most strategies."""
        return {}

    def stop_reason(self, server_round: int) -> str | None:
        """Why round ``server_round`` must not run (e.g. a privacy budget), else None."""
        return None

    @abstractmethod
    def aggregate(self, server_round: int, current: Weights,
                  updates: Sequence[Update]) -> Weights:
        """The next global weights from this round's updates (at least one)."""

    def aggregate_sum(self, server_round: int, current: Weights, total: Weights,
                      total_weight: float, count: int) -> Weights:
        """Linear strategies only: the next weights from the *sum* of the updates, each
        multiplied by its weight (``num_examples``, or 1 under ``weighting: uniform``),
        the sum of those weights and the number of clients, as SecAgg gives them."""
        raise ConfigError(f"the {self.name or type(self).__name__} strategy is not linear: it "
                          "needs each client's update, which secure aggregation hides; use "
                          "FedAvg, FedProx, FedAvgM or a server optimizer with SecAgg")

    def aggregate_evaluate(self, server_round: int, results: Sequence[EvalResult]
                           ) -> dict[str, float]:
        """Weighted loss and metrics over the clients' own evaluations, and the worst
        client's loss (``loss``, ``worst_loss``, ``<metric>``, ``worst_<metric>``)."""
        from mloop.federated.evaluate import weighted_summary

        return weighted_summary(results)

    def round_metrics(self) -> dict[str, float]:
        """Numbers to log after each round (e.g. ``epsilon``, ``clip_norm``)."""
        return {}

    # -- resume and tracking ---------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What must survive a restart (server optimizer moments, clip norm …): JSON
        scalars and lists of numpy arrays."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Load what :meth:`state` returned."""
        return

    def params(self) -> dict[str, Any]:
        """The strategy's parameters, logged as run params (``strategy`` is its name)."""
        return {"strategy": self.name, "fraction_fit": self.fraction_fit,
                "fraction_evaluate": self.fraction_evaluate,
                "min_fit_clients": self.min_fit_clients,
                "min_available_clients": self.min_available_clients}


__all__ = ["Strategy"]
