"""The client contract: what a site's code implements to take part in a federation.

A client holds its own data and never sends it. The server sends the global weights
and a config (``round`` from 1, ``client_id``, and whatever the strategy asks, such as
``lr`` or ``proximal_mu``); the client answers with new weights (``fit``) or a loss
(``evaluate``), plus the number of examples it used, which weights its voice.

The same class runs in :func:`mloop.federated.simulate` (one process per client) and on
a real site with ``mloop fl client --client mymodule:make_client``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from mloop.federated.types import Config, Metrics, Weights


class Client(ABC):
    """Subclass and implement ``get_weights``, ``fit`` and ``evaluate`` (numpy in, out)."""

    @abstractmethod
    def get_weights(self) -> Weights:
        """The model's current parameters (used for the initial global model)."""

    @abstractmethod
    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        """Train from ``weights`` on local data: (new weights, examples used, metrics)."""

    @abstractmethod
    def evaluate(self, weights: Weights, config: Config) -> tuple[float, int, Metrics]:
        """Score ``weights`` on local data: (loss, examples used, metrics)."""

    def properties(self) -> dict[str, Any]:
        """What the client may tell about its data without sending it: recorded with the
        run (ready clients give ``num_examples`` and ``label_histogram``)."""
        return {}


__all__ = ["Client"]
