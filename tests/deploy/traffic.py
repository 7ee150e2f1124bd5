"""Test helpers: tiny registered models, and traffic and labels written straight to the store
(as the server's writer and ``mloop.log_feedback`` would)."""

from __future__ import annotations

from typing import Any

import numpy as np

import mloop
from mloop import repositories
from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.repositories.feedback import Feedback
from mloop.repositories.traffic import Outcome, TrafficRow

X = np.arange(20, dtype=float).reshape(10, 2)
Y = np.array([0, 1] * 5)


def register(name: str = "churn", versions: int = 2) -> None:
    """``versions`` versions of a small classifier registered as ``name``; v1 is champion."""
    from sklearn.dummy import DummyClassifier

    for _ in range(versions):
        with mloop.start_run():
            mloop.log_model(DummyClassifier().fit(X, Y), input_example=X[:2],
                            registered_name=name)
    mloop.set_alias(name, "champion", 1)


def send(project: Any, deployment: str, arm: str, n: int, *, error_rate: float = 0.0,
         accuracy: float | None = None, latency: float = 10.0, seed: int = 0,
         time_ms: int | None = None, predict: Any = None, outcome: Outcome | None = None,
         revision: int | None = None, labels: bool = True) -> list[str]:
    """``n`` requests served by ``arm`` of the current revision: a share ``error_rate`` of
    them failed; the rest predict 0/1 and, with ``accuracy``, get a label that is right
    that often. Returns the request ids."""
    backend = repositories.backend(project)
    rev = backend.deployments.revision(deployment, revision)
    model = rev.arm(arm).model
    rng = np.random.default_rng(seed)
    when = now_ms() if time_ms is None else time_ms
    failed = rng.random(n) < error_rate
    preds = rng.integers(0, 2, n) if predict is None else np.broadcast_to(predict, (n,))
    # exactly that share right, every tenth row alike: a test sees the accuracy it asked for
    right = np.arange(n) % 10 < (accuracy if accuracy is not None else 1.0) * 10
    rows, fb, ids = [], [], []
    for i in range(n):
        rid = new_id()
        ids.append(rid)
        pred = None if failed[i] else preds[i].item()
        out = outcome or (Outcome.ERROR if failed[i] else Outcome.OK)
        rows.append(TrafficRow(rid, 0, arm, deployment, rev.number, model, out, pred,
                               float(latency + rng.random()), when))
        if accuracy is not None and labels and not failed[i]:
            label = pred if right[i] else 1 - pred
            fb.append(Feedback(rid, 0, str(int(label))))
    backend.traffic.record(rows)
    if fb:
        backend.feedback.save(fb)
    return ids
