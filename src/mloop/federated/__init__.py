"""Federated learning: train where the data lives, aggregate robustly and privately.

>>> import mloop.federated as fl
>>> history = fl.simulate(make_client, n_clients=10, rounds=20,          # doctest: +SKIP
...                       strategy=fl.FedAvg(min_fit_clients=10),
...                       evaluate_fn=central_eval, experiment="fl-digits")

The pieces: :class:`Client` (what a site implements; ready ones in
:mod:`mloop.federated.clients`), strategies (:class:`FedAvg` … :class:`Krum`),
:class:`DPFedAvg` (differential privacy), secure aggregation (``secure=True``),
partitioners for simulations (:func:`iid`, :func:`dirichlet`, :func:`shards`),
:func:`simulate` (one process per client, over real HTTP) and :func:`run_client` (a
site's side of ``mloop fl client``). See docs/federated.md.

Names are imported on first use: a client process imports only what it needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "Client": "mloop.federated.client",
    "DPFedAvg": "mloop.federated.privacy",
    "AdaptiveClipping": "mloop.federated.privacy",
    "FedAdagrad": "mloop.federated.strategies",
    "FedAdam": "mloop.federated.strategies",
    "FedAvg": "mloop.federated.strategies",
    "FedAvgM": "mloop.federated.strategies",
    "FedMedian": "mloop.federated.robust",
    "FedProx": "mloop.federated.strategies",
    "FedTrimmedAvg": "mloop.federated.robust",
    "FedYogi": "mloop.federated.strategies",
    "History": "mloop.federated.simulation",
    "Krum": "mloop.federated.robust",
    "SecureAggregation": "mloop.federated.secure",
    "Strategy": "mloop.federated.strategy",
    "Tracking": "mloop.federated.simulation",
    "dirichlet": "mloop.federated.partition",
    "iid": "mloop.federated.partition",
    "label_histogram": "mloop.federated.partition",
    "make_strategy": "mloop.federated.strategies",
    "register_strategy": "mloop.federated.strategies",
    "run_client": "mloop.federated.runtime",
    "shards": "mloop.federated.partition",
    "simulate": "mloop.federated.simulation",
}

__all__ = [
    "AdaptiveClipping",
    "Client",
    "DPFedAvg",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedMedian",
    "FedProx",
    "FedTrimmedAvg",
    "FedYogi",
    "History",
    "Krum",
    "SecureAggregation",
    "Strategy",
    "Tracking",
    "dirichlet",
    "iid",
    "label_histogram",
    "make_strategy",
    "register_strategy",
    "run_client",
    "shards",
    "simulate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mloop.federated' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
