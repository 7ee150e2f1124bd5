"""What a server records of deployment traffic: the traffic index and Prometheus metrics.

:class:`TrafficWriter` takes one entry per answered request (references only) and a
thread turns about a second's worth into :class:`~mloop.repositories.traffic.TrafficRow`
rows, one per predicted row, indexed in one transaction; the request path never waits
for the store, and a full queue drops and counts (as the prediction log does). A failed
write is logged and its rows dropped and counted: the index is for analysis, and serving
goes on.

:class:`DeploymentMetrics` are the per-deployment, per-arm series, added to the
application's own registry so that ``/metrics`` shows them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.batches import Batches
from mloop.core.redact import get_logger
from mloop.repositories.traffic import Outcome, TrafficRow

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.deploy")

__all__ = ["DeploymentMetrics", "Served", "TrafficWriter"]


@dataclass(frozen=True, slots=True)
class Served:
    """One request's rows as answered by one arm (or its fallback, or its shadow)."""

    deployment: str
    revision: int
    arm: str
    model: str  # models:/NAME/V that answered (the arm's, the fallback's, the shadow's)
    outcome: Outcome
    request_id: str
    rows: int
    pred: Any  # None for an error, a scalar for a fallback value, else one per row
    latency_ms: float
    time_ms: int


def rows_of(entry: Served) -> list[TrafficRow]:
    """The index rows of one entry: a JSON value per row (the label, or the number)."""
    if entry.pred is None or np.ndim(entry.pred) == 0:
        value = entry.pred.item() if isinstance(entry.pred, np.generic) else entry.pred
        values: list[Any] = [value] * entry.rows
    else:
        values = np.asarray(entry.pred).tolist()  # Python scalars (or lists per row)
    return [TrafficRow(entry.request_id, i, entry.arm, entry.deployment, entry.revision,
                       entry.model, entry.outcome, v, entry.latency_ms, entry.time_ms)
            for i, v in enumerate(values)]


class TrafficWriter:
    def __init__(self, project: Project, *, flush_seconds: float = 1.0,
                 max_pending: int = 100_000) -> None:
        self.project = project
        self.flush_seconds = flush_seconds
        self._pending: Batches[Served] = Batches(max_pending)
        self.failed = 0  # entries whose write failed
        self.written = 0  # rows indexed
        self._thread = self._pending.consume(self._write, flush_seconds, name="mloop-traffic")

    @property
    def dropped(self) -> int:
        """Entries not indexed: the queue was full, or the write failed."""
        return self._pending.dropped + self.failed

    def put(self, entry: Served) -> None:
        """Queue one entry; never blocks nor wakes the writer (a full queue drops and
        counts it)."""
        self._pending.put(entry)

    def close(self) -> None:
        """Index everything queued, then stop (blocking)."""
        self._pending.close()
        self._thread.join(timeout=60)

    def _write(self, entries: list[Served]) -> None:
        if not entries:
            return
        from mloop import repositories

        rows = [row for entry in entries for row in rows_of(entry)]
        try:
            self.written += repositories.backend(self.project).traffic.record(rows)
        except Exception:  # the store is away: serving goes on, the loss is counted
            self.failed += len(entries)
            log.exception("could not index %d rows of deployment traffic", len(rows))


class DeploymentMetrics:
    """Per deployment and arm, in the application's Prometheus registry."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.weight = Gauge("mloop_deployment_weight", "Percent of new requests routed to "
                            "the arm", ["deployment", "arm"], registry=registry)
        self.requests = Counter("mloop_deployment_requests", "Deployment requests by arm "
                                "and outcome (ok, error, fallback, shadow)",
                                ["deployment", "arm", "outcome"], registry=registry)
        self.latency = Histogram("mloop_deployment_latency_seconds", "Latency of the arm's "
                                 "answers", ["deployment", "arm"], registry=registry,
                                 buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25,
                                          .5, 1, 2.5))
        self.fallbacks = Counter("mloop_deployment_fallbacks", "Requests the fallback "
                                 "answered because the arm failed or was too slow",
                                 ["deployment", "arm"], registry=registry)
        self.revision = Gauge("mloop_deployment_revision", "The revision routing requests",
                              ["deployment"], registry=registry)
        self.canary_step = Gauge("mloop_deployment_canary_step", "The canary's step (index "
                                 "into its steps; -1 without a canary)", ["deployment"],
                                 registry=registry)
        self.decision = Gauge("mloop_deployment_canary_decision", "The canary's last "
                              "analysis: 1 pass, 0 inconclusive, -1 fail (absent before "
                              "the first)", ["deployment"], registry=registry)
        self.posterior = Gauge("mloop_deployment_bandit_posterior_mean", "A bandit arm's "
                               "posterior mean reward", ["deployment", "arm"],
                               registry=registry)
        self.shadow_dropped = Counter("mloop_deployment_shadow_dropped", "Shadow copies not "
                                      "made because too many were pending", ["deployment"],
                                      registry=registry)
        self.traffic_dropped = Gauge("mloop_deployment_traffic_dropped", "Traffic index "
                                     "entries dropped (queue full or store away)",
                                     registry=registry)
        self._arms: dict[str, set[str]] = {}
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def answered(self, deployment: str, arm: str, outcome: Outcome, seconds: float) -> None:
        """Count one answer (a labelled child is looked up once per key)."""
        key = (deployment, arm, outcome.value)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (self.requests.labels(deployment, arm, outcome.value),
                                           self.latency.labels(deployment, arm))
        found[0].inc()
        found[1].observe(seconds)
        if outcome is Outcome.FALLBACK:
            self.fallbacks.labels(deployment, arm).inc()

    def routing(self, deployment: str, revision: int, weights: dict[str, float], *,
                step: int | None, posterior: dict[str, float],
                verdict: str | None = None) -> None:
        """Gauges of the routing table now in force (arms gone lose their series)."""
        self.revision.labels(deployment).set(revision)
        self.canary_step.labels(deployment).set(-1 if step is None else step)
        if verdict in VERDICTS:
            self.decision.labels(deployment).set(VERDICTS[verdict])
        else:
            with contextlib.suppress(KeyError):
                self.decision.remove(deployment)
        before = self._arms.get(deployment, set())
        _forget(self.weight, deployment, before - set(weights))
        _forget(self.posterior, deployment, before - set(posterior))
        for arm, weight in weights.items():
            self.weight.labels(deployment, arm).set(weight)
        for arm, mean in posterior.items():
            self.posterior.labels(deployment, arm).set(mean)
        self._arms[deployment] = set(weights) | set(posterior)


VERDICTS = {"pass": 1.0, "inconclusive": 0.0, "fail": -1.0}


def _forget(gauge: Any, deployment: str, arms: set[str]) -> None:
    for arm in arms:
        with contextlib.suppress(KeyError):  # never set for this arm
            gauge.remove(deployment, arm)
