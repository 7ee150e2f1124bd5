"""Federated evaluation: the clients' own scores of the global model, summed up.

Each sampled client evaluates the global weights on its own data and answers with a
loss, the number of examples it used and any metrics. The summary weights each client
by its examples (as FedAvg weights its update), and reports the worst client too: a
model that is good on average can still fail one site.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mloop.federated.types import EvalResult, Scalar

#: a metric whose name holds one of these is better when higher (its worst is the minimum)
HIGHER_IS_BETTER = ("accuracy", "acc", "auc", "f1", "precision", "recall", "r2")
_RESERVED = frozenset({"loss", "clients", "num_examples"})


def higher_is_better(metric: str) -> bool:
    """True when ``metric``'s name holds accuracy, acc, auc, f1, precision, recall or r2
    (case-insensitive): its worst client is the one with the lowest value."""
    lowered = metric.lower()
    return any(token in lowered for token in HIGHER_IS_BETTER)


def _numeric(value: Scalar) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _weighted_mean(values: Sequence[float], weights: Sequence[float]) -> float:
    total = math.fsum(weights)
    if total <= 0.0:  # every client evaluated on 0 examples: each counts the same
        return math.fsum(values) / len(values)
    return math.fsum(v * w for v, w in zip(values, weights, strict=True)) / total


def _worst(values: Sequence[float], lowest: bool) -> float:
    if any(math.isnan(v) for v in values):
        return math.nan
    return min(values) if lowest else max(values)


def weighted_summary(results: Sequence[EvalResult]) -> dict[str, float]:
    """The clients' evaluations as one dict: ``loss`` and every numeric metric weighted
    by examples (uniform when all clients used 0), ``worst_loss`` (the highest),
    ``worst_<metric>`` (the lowest for accuracy-like names, see :func:`higher_is_better`,
    else the highest), ``clients`` and ``num_examples``; ``{}`` for no results.

    A metric only some clients report is summed over those; booleans and strings are
    left out, and so are metrics named ``loss``, ``clients`` or ``num_examples``. A NaN
    from a client shows as NaN rather than being hidden.
    """
    if not results:
        return {}
    weights = [float(max(r.num_examples, 0)) for r in results]
    summary = {
        "loss": _weighted_mean([float(r.loss) for r in results], weights),
        "worst_loss": _worst([float(r.loss) for r in results], lowest=False),
        "clients": float(len(results)),
        "num_examples": math.fsum(weights),
    }
    names = sorted({k for r in results for k in r.metrics} - _RESERVED)
    for name in names:
        values: list[float] = []
        used: list[float] = []
        for r, w in zip(results, weights, strict=True):
            value = _numeric(r.metrics[name]) if name in r.metrics else None
            if value is not None:
                values.append(value)
                used.append(w)
        if not values:
            continue
        summary[name] = _weighted_mean(values, used)
        summary[f"worst_{name}"] = _worst(values, lowest=higher_is_better(name))
    return summary


__all__ = ["HIGHER_IS_BETTER", "higher_is_better", "weighted_summary"]
