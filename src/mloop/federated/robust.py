"""Robust aggregation: strategies that a few bad or malicious clients cannot steer.

A mean moves as far as one client pushes it; these statistics do not. Each needs every
client's update, so none is *linear* and none works under secure aggregation. They
count clients, not examples: a client cannot buy weight by claiming more data.

- :class:`FedMedian`: the coordinate-wise median (Yin et al. 2018).
- :class:`FedTrimmedAvg`: the coordinate-wise mean after cutting the ``beta`` fraction
  of lowest and highest values (Yin et al. 2018).
- :class:`Krum`: the update closest to its ``n − f − 2`` nearest neighbours, or the mean
  of the ``num_to_keep`` best (Multi-Krum) (Blanchard et al. 2017).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated.strategies import DeltaStrategy, apply_step, check_number, update_matrix
from mloop.federated.types import Update, Weights


class FedMedian(DeltaStrategy):
    """The global model plus the coordinate-wise median of the updates (each client
    counts once); robust while fewer than half the clients are bad."""

    name = "median"
    linear = False

    def aggregate(self, server_round: int, current: Weights,
                  updates: Sequence[Update]) -> Weights:
        """``current`` + the coordinate-wise median update."""
        return apply_step(current, np.median(update_matrix(current, updates), axis=0))


class FedTrimmedAvg(DeltaStrategy):
    """The global model plus the coordinate-wise ``beta``-trimmed mean of the updates:
    in each coordinate the ``floor(beta·n)`` lowest and highest values are dropped and the
    rest averaged (each client counts once). ``beta`` is in [0, 0.5); with few clients
    ``floor(beta·n)`` can be 0 and nothing is cut (e.g. beta 0.2 needs n ≥ 5)."""

    name = "trimmed-mean"
    linear = False

    def __init__(self, *, beta: float = 0.2, **sampling: Any) -> None:
        super().__init__(**sampling)
        self.beta = check_number(self.name, "beta", beta, low=0.0, high=0.5, high_open=True)

    def trimmed(self, n: int) -> int:
        """How many values are cut at each end of a coordinate with ``n`` clients."""
        return math.floor(self.beta * n)

    def aggregate(self, server_round: int, current: Weights,
                  updates: Sequence[Update]) -> Weights:
        """``current`` + the coordinate-wise trimmed mean update."""
        matrix = update_matrix(current, updates)
        cut = self.trimmed(matrix.shape[0])
        if cut:
            matrix = np.sort(matrix, axis=0)[cut:matrix.shape[0] - cut]
        return apply_step(current, matrix.mean(axis=0))

    def params(self) -> dict[str, Any]:
        """The sampling settings and ``beta``."""
        return {**super().params(), "beta": self.beta}


def krum_scores(matrix: np.ndarray, num_malicious: int) -> np.ndarray:
    """Each row's Krum score (Blanchard et al. 2017): the sum of its squared Euclidean
    distances to its ``n − f − 2`` nearest other rows, all distances from one Gram matrix;
    needs ``n ≥ f + 3`` rows."""
    n = matrix.shape[0]
    neighbours = n - num_malicious - 2
    if neighbours < 1:
        raise InvalidInputError(f"Krum needs at least {num_malicious + 3} updates to score "
                                f"them with f={num_malicious}; got {n}")
    sq = np.einsum("ij,ij->i", matrix, matrix)
    dist = sq[:, None] + sq[None, :] - 2.0 * (matrix @ matrix.T)
    np.maximum(dist, 0.0, out=dist)  # rounding can make a tiny distance negative
    np.fill_diagonal(dist, np.inf)
    nearest = np.partition(dist, neighbours - 1, axis=1)[:, :neighbours]
    return np.asarray(nearest.sum(axis=1))


class Krum(DeltaStrategy):
    """Krum and Multi-Krum (Blanchard et al. 2017): tolerate ``num_malicious`` (f)
    Byzantine clients of n ≥ 2f + 3 by keeping the ``num_to_keep`` (m) updates with the
    lowest Krum scores and adding their plain mean (m = 1 is Krum: the single best).

    ``min_fit_clients`` defaults to 2f + 3 and may not be lower; ``m`` may be at most
    ``min_fit_clients − f`` and is lowered to ``n − f`` in a round with fewer clients.
    After each round :attr:`selected` names the clients whose updates were kept.
    """

    name = "krum"
    linear = False

    def __init__(self, *, num_malicious: int, num_to_keep: int = 1,
                 min_fit_clients: int | None = None, **sampling: Any) -> None:
        f = int(check_number(self.name, "num_malicious", num_malicious, low=0, integer=True))
        needed = 2 * f + 3
        fit = needed if min_fit_clients is None else min_fit_clients
        super().__init__(min_fit_clients=fit, **sampling)
        if self.min_fit_clients < needed:
            raise ConfigError(f"krum: with num_malicious={f} each round needs at least "
                              f"2f + 3 = {needed} clients; set min_fit_clients >= {needed} "
                              "or lower num_malicious")
        self.num_malicious = f
        keep = int(check_number(self.name, "num_to_keep", num_to_keep, low=1, integer=True))
        if keep > self.min_fit_clients - f:
            raise ConfigError(f"krum: num_to_keep={keep} is more than min_fit_clients − "
                              f"num_malicious = {self.min_fit_clients - f}; lower it or set "
                              f"min_fit_clients >= {keep + f}")
        self.num_to_keep = keep
        self.selected: list[str] = []

    def aggregate(self, server_round: int, current: Weights,
                  updates: Sequence[Update]) -> Weights:
        """``current`` + the mean of the best-scored updates; fewer than 2f + 3 updates
        raise :class:`InvalidInputError` (Krum's guarantee would not hold)."""
        matrix = update_matrix(current, updates)
        n, f = matrix.shape[0], self.num_malicious
        if n < 2 * f + 3:
            raise InvalidInputError(f"krum: only {n} updates arrived this round; with "
                                    f"num_malicious={f} it needs {2 * f + 3}. Sample more "
                                    "clients, lengthen the round timeout or lower "
                                    "num_malicious")
        scores = krum_scores(matrix, f)
        keep = np.argsort(scores, kind="stable")[:min(self.num_to_keep, n - f)]
        self.selected = [updates[i].client for i in keep]
        return apply_step(current, matrix[keep].mean(axis=0))

    def params(self) -> dict[str, Any]:
        """The sampling settings, ``num_malicious`` and ``num_to_keep``."""
        return {**super().params(), "num_malicious": self.num_malicious,
                "num_to_keep": self.num_to_keep}


__all__ = ["FedMedian", "FedTrimmedAvg", "Krum", "krum_scores"]
