"""Small clients for the federation's tests: each pulls the model toward its own target.

``Toward(cid)`` moves the weights halfway to ``cid`` (times ``scale``) in each fit, so
FedAvg's result after R rounds is known in closed form. Others misbehave on purpose.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from mloop.federated import Client
from mloop.federated.types import Config, Metrics, Weights

SHAPES = [(3, 2), (2,)]


class Toward(Client):
    """Moves weights halfway to ``target`` (cid) each fit; ``examples`` weights its voice."""

    def __init__(self, cid: int, examples: int = 10) -> None:
        self.cid, self.examples = cid, examples
        self.target = float(cid)

    def get_weights(self) -> Weights:
        return [np.zeros(s) for s in SHAPES]

    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        assert config["round"] >= 1
        return [w + 0.5 * (self.target - w) for w in weights], self.examples, {"cid": self.cid}

    def evaluate(self, weights: Weights, config: Config) -> tuple[float, int, Metrics]:
        loss = float(np.mean([np.mean((w - self.target) ** 2) for w in weights]))
        return loss, self.examples, {"accuracy": 1.0 / (1.0 + loss)}

    def properties(self) -> dict[str, Any]:
        return {"num_examples": self.examples, "label_histogram": {str(self.cid): 1}}


class NaNClient(Toward):
    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        return [np.full_like(w, np.nan) for w in weights], self.examples, {}


class WrongShape(Toward):
    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        return [np.zeros(7)], self.examples, {}


class Raises(Toward):
    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        raise RuntimeError("the site's disk is full")


class DiesInRound(Toward):
    """Its process ends (as a crash would) when round ``round`` asks it to fit."""

    def __init__(self, cid: int, round_: int = 2) -> None:
        super().__init__(cid)
        self.round = round_

    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        if config["round"] == self.round:
            os._exit(3)
        return super().fit(weights, config)


class Slow(Toward):
    def fit(self, weights: Weights, config: Config) -> tuple[Weights, int, Metrics]:
        time.sleep(30.0)
        return super().fit(weights, config)


def distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Euclidean distance over the float arrays (not counters such as BatchNorm's)."""
    return float(np.sqrt(sum(((x.astype(float) - y) ** 2).sum()
                             for x, y in zip(a, b, strict=True) if x.dtype.kind == "f")))


def expected_fedavg(targets: list[float], examples: list[int], rounds: int) -> float:
    """Every weight after ``rounds`` of FedAvg over Toward clients, all in each round."""
    w = 0.0
    mean = float(np.average(targets, weights=examples))
    for _ in range(rounds):
        w = w + 0.5 * (mean - w)
    return w


def make_toward(cid: int) -> Client:
    return Toward(cid)


def central(server_round: int, weights: Weights) -> tuple[float, dict[str, float]]:
    return float(np.mean(np.abs(weights[0]))), {"accuracy": 0.5}
