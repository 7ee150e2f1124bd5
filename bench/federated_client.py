"""The benchmark's client: softmax regression on scikit-learn's digits, in plain numpy.

The same code runs under mloop (as an ``mloop.federated.Client``) and under Flower
(through ``bench/flower_side.py``'s adapter), so it imports only numpy and scikit-learn
(for the data); mloop's ``Client`` base is used when mloop is importable, else the class
stands alone with the same methods. Everything is seeded: equal seeds give equal
weights on both sides.

The model: 64×10 weights and 10 biases, started at zero. ``fit`` runs local minibatch SGD
(lr 0.3, 1 epoch, batch 10, L2 1e-4 on the weights) over the client's rows in an order
drawn from ``(cid, round)``; ``evaluate`` gives the mean cross-entropy and accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

try:  # mloop's contract when mloop is there (it is not in Flower's environment)
    from mloop.federated.client import Client as _Base
except ImportError:  # pragma: no cover - exercised by bench/flower_side.py
    _Base = object  # type: ignore[assignment,misc]

N_FEATURES, N_CLASSES = 64, 10
LR, EPOCHS, BATCH, L2 = 0.3, 1, 10, 1e-4


def initial_weights() -> list[np.ndarray]:
    """Zero weights (64×10) and biases (10), float64: every client starts equal."""
    return [np.zeros((N_FEATURES, N_CLASSES)), np.zeros(N_CLASSES)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def score(weights: list[np.ndarray], X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy in nats, accuracy) of ``weights`` on ``X``, ``y``."""
    W, b = weights
    logits = X @ W + b
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    return float(-log_p[rows, y].mean()), float((logits.argmax(axis=1) == y).mean())


def sgd(weights: list[np.ndarray], X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
        *, lr: float = LR, epochs: int = EPOCHS, batch: int = BATCH,
        l2: float = L2) -> list[np.ndarray]:
    """New weights after ``epochs`` of minibatch SGD on the mean cross-entropy + l2/2·‖W‖²."""
    W, b = weights[0].copy(), weights[1].copy()
    onehot = np.eye(N_CLASSES)[y]
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            rows = order[start:start + batch]
            xb = X[rows]
            err = _softmax(xb @ W + b)
            err -= onehot[rows]
            err /= len(rows)
            W -= lr * (xb.T @ err + l2 * W)
            b -= lr * err.sum(axis=0)
    return [W, b]


class DigitsClient(_Base):
    """Client ``cid`` holding rows ``X``, ``y`` of the digits training data."""

    def __init__(self, cid: int, X: np.ndarray, y: np.ndarray) -> None:
        self.cid, self.X, self.y = int(cid), X, y

    def get_weights(self) -> list[np.ndarray]:
        """The zero initial weights."""
        return initial_weights()

    def fit(self, weights: list[np.ndarray], config: dict[str, Any]
            ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        """One epoch of local SGD from ``weights``, rows ordered by (cid, round)."""
        rng = np.random.default_rng([self.cid, int(config.get("round", 0))])
        new = sgd([np.asarray(w, dtype=np.float64) for w in weights], self.X, self.y, rng)
        return new, len(self.y), {}

    def evaluate(self, weights: list[np.ndarray], config: dict[str, Any]
                 ) -> tuple[float, int, dict[str, Any]]:
        """Cross-entropy and accuracy of ``weights`` on this client's rows."""
        loss, acc = score(weights, self.X, self.y)
        return loss, len(self.y), {"accuracy": acc}

    def properties(self) -> dict[str, Any]:
        """The row count and label histogram (never the rows)."""
        labels, counts = np.unique(self.y, return_counts=True)
        return {"num_examples": len(self.y),
                "label_histogram": {str(k): int(c) for k, c in zip(labels, counts,
                                                                   strict=True)}}


@lru_cache(maxsize=1)
def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as X/16 with a stratified 80/20 split (random_state=0): X_tr, y_tr, X_te, y_te."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.2, stratify=y,
                                              random_state=0)
    return (np.ascontiguousarray(X_tr), y_tr.astype(np.int64),
            np.ascontiguousarray(X_te), y_te.astype(np.int64))


def load_partitions(n_clients: int, seed: int = 0
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The training rows cut IID into ``n_clients`` near-equal parts (a permutation drawn
    from ``seed``): ``[(X_i, y_i), …]``."""
    X, y, _, _ = load_digits_split()
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), n_clients)
    return [(X[np.sort(p)], y[np.sort(p)]) for p in parts]


def central_evaluate(weights: list[np.ndarray]) -> tuple[float, float]:
    """(cross-entropy, accuracy) of ``weights`` on the held-out 20%."""
    _, _, X_te, y_te = load_digits_split()
    return score(weights, X_te, y_te)


def indexed_client(cid: int, parts: Sequence[np.ndarray]) -> DigitsClient:
    """Client ``cid`` holding the training rows ``parts[cid]`` (index arrays into the 80%
    split, e.g. from ``fl.dirichlet(y_train, n, alpha=0.5)``); with
    ``functools.partial(indexed_client, parts=parts)`` it is a ``client_fn``."""
    X, y, _, _ = load_digits_split()
    if not 0 <= cid < len(parts):
        raise IndexError(f"client {cid} of {len(parts)} partitions")
    rows = np.asarray(parts[cid], dtype=np.int64)
    return DigitsClient(cid, X[rows], y[rows])


def client_fn(cid: int, n_clients: int = 10, seed: int = 0) -> DigitsClient:
    """Client ``cid`` of an IID federation of ``n_clients`` (for ``fl.simulate``)."""
    X, y = load_partitions(n_clients, seed)[cid]
    return DigitsClient(cid, X, y)
