"""The values federated learning passes around: weights, configs, updates, results.

Weights are a list of numpy arrays (a model's parameters, in a fixed order), as in
Flower: anything that can say its parameters as arrays and take them back can take part.
The server works on *updates* (a client's new weights minus the global weights it was
sent), which makes clipping, server optimizers and robust statistics one operation each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Scalar = bool | int | float | str
Weights = list[np.ndarray]
Config = dict[str, Scalar]
Metrics = dict[str, Scalar]


@dataclass(frozen=True)
class Update:
    """What one client sent back from ``fit``: its update (new − global weights)."""

    client: str
    delta: Weights
    num_examples: int
    metrics: Metrics = field(default_factory=dict)


@dataclass(frozen=True)
class EvalResult:
    """What one client's ``evaluate`` returned on its own data."""

    client: str
    loss: float
    num_examples: int
    metrics: Metrics = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A sampled client whose answer did not count this round, and why."""

    client: str
    reason: str


__all__ = ["Config", "EvalResult", "Failure", "Metrics", "Scalar", "Update", "Weights"]
