"""What one ``mloop serve`` application holds: its settings, models, log and metrics.

:class:`ServingState` is built by ``create_app`` and filled at start-up
(``mloop.serving.lifecycle``); every route reaches it through :func:`state_of`, so that
several applications can run side by side in one process (no module globals).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

from mloop.errors import InternalError, NotFoundError
from mloop.serving.protocol import PayloadError
from mloop.serving.security import Security

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.serving.endpoint import Endpoint, Extension
    from mloop.serving.inference import ServedModel
    from mloop.serving.predlog import PredictionLogger


@dataclass
class ServeConfig:
    models: list[str]
    project: str | None = None
    max_batch_size: int = 64
    max_batch_delay_ms: float = 0.0
    max_queue: int = 1024
    max_body_bytes: int = 16 << 20
    engine: str | None = None  # None: the [serving] engine setting (auto)
    log_predictions: bool = True
    monitor_every: float = 60.0  # seconds between drift/performance checks; 0: none
    security: Security = field(default_factory=Security)  # Host, Origin, token, JSON checks
    allow_pickle: bool | None = None  # None: the user's allow_pickle setting (off)
    deployments: list[str] = field(default_factory=list)  # served by an extension
    extensions: list[str] = field(default_factory=list)  # "module:factory" (serving.endpoint)
    poll_interval: float = 2.0  # seconds between checks of aliases and deployments; 0: none
    controller: bool = True  # run the deployments' controller in this server
    # freeze what start-up made out of the garbage collector's sight (``serve`` sets it:
    # a process of its own; not for apps made inside another program, such as tests)
    settle_memory: bool = False


class Metrics:
    """The Prometheus metrics of one application, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("mloop_requests", "Requests by model, version, route and "
                                "status", ["model", "version", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("mloop_request_latency_seconds", "Request latency",
                                 ["model", "version", "route"], registry=self.registry,
                                 buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25,
                                          .5, 1, 2.5))
        self.batch = Histogram("mloop_batch_rows", "Rows per model call", ["model"],
                               registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024))
        self.in_flight = Gauge("mloop_in_flight_requests", "Requests being served",
                               registry=self.registry)
        self.load = Gauge("mloop_model_load_seconds", "Time to load and warm a model",
                          ["model", "version"], registry=self.registry)
        self.dropped = Gauge("mloop_prediction_log_dropped", "Prediction log rows dropped "
                             "because the log queue was full", registry=self.registry)
        # monitoring, refreshed by the background check
        self.drift_share = Gauge("mloop_drift_share", "Share of input columns drifted",
                                 ["model"], registry=self.registry)
        self.dataset_drift = Gauge("mloop_dataset_drift", "1 when the inputs drift",
                                   ["model"], registry=self.registry)
        self.drift_statistic = Gauge("mloop_drift_statistic", "Drift test statistic per "
                                     "input column", ["model", "column", "method"],
                                     registry=self.registry)
        self.drift_detected = Gauge("mloop_drift_detected", "1 when the column drifted",
                                    ["model", "column"], registry=self.registry)
        self.drift_checked = Gauge("mloop_drift_last_check_timestamp_seconds", "When the "
                                   "inputs were last checked", ["model"], registry=self.registry)
        self.live_metric = Gauge("mloop_live_metric", "Metric on the window's labelled "
                                 "predictions", ["model", "metric"], registry=self.registry)
        self.feedback_rows = Gauge("mloop_feedback_rows", "Labelled predictions in the "
                                   "window", ["model"], registry=self.registry)
        self.open_alerts = Gauge("mloop_open_alerts", "Open monitoring alerts",
                                 ["severity"], registry=self.registry)

    def monitored(self, results: list[Any], counts: dict[str, int]) -> None:
        """Gauges from one round of monitoring checks (the first version of a name)."""
        seen: set[str] = set()
        for r in results:
            if r.model in seen:
                continue
            seen.add(r.model)
            if r.drift is not None:
                self.drift_checked.labels(r.model).set(r.drift.created_at / 1000)
                self.drift_share.labels(r.model).set(r.drift.share_drifted)
                self.dataset_drift.labels(r.model).set(float(bool(r.drift.dataset_drift)))
                for name, c in r.drift.columns.items():
                    if c.statistic is not None and c.method is not None:
                        self.drift_statistic.labels(r.model, name, c.method).set(c.statistic)
                    if c.drifted is not None:
                        self.drift_detected.labels(r.model, name).set(float(c.drifted))
            if r.performance is not None:
                self.feedback_rows.labels(r.model).set(r.performance.labelled)
                for metric, value in r.performance.metrics.items():
                    self.live_metric.labels(r.model, metric).set(value)
        for severity, n in counts.items():
            self.open_alerts.labels(severity).set(n)


@dataclass
class ServingState:
    """One application's state; ``models`` maps a name to its versions, the first listed
    answering requests that name no version; ``endpoints`` (names answered by an
    extension, e.g. deployments) are looked up before ``models``. Both maps are replaced
    or assigned by key, never mutated in a request: a request keeps what it looked up."""

    config: ServeConfig
    metrics: Metrics = field(default_factory=Metrics)
    models: dict[str, list[ServedModel]] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    extensions: list[Extension] = field(default_factory=list)  # started ones
    retiring: list[ServedModel] = field(default_factory=list)  # stopped after a grace
    background: set[asyncio.Task[None]] = field(default_factory=set)
    logger: PredictionLogger | None = None
    opened: Project | None = None  # set at start-up, before ``ready``
    ready: bool = False
    # (name, version, route) -> (latency histogram, 200 counter): a labelled child costs a
    # lock and a dict lookup on every request otherwise
    children: dict[tuple[str, int, str], tuple[Any, Any]] = field(default_factory=dict)

    @property
    def project(self) -> Project:
        if self.opened is None:  # routes run after start-up only
            raise InternalError("The server's project is not open yet.")
        return self.opened

    def model_of(self, name: str, version: str | None) -> ServedModel:
        """The served ``name`` at ``version`` (None: its first version), or 404."""
        versions = self.models.get(name, [])
        if not versions:
            raise NotFoundError(f"No model {name!r} is served here; see GET /v2.")
        if version is None:
            return versions[0]
        for served in versions:
            if str(served.version) == version:
                return served
        raise NotFoundError(f"Model {name!r} is served at version(s) "
                            f"{', '.join(str(v.version) for v in versions)}, not {version}.")

    def only_model(self, name: str | None) -> ServedModel:
        """``name``'s first version, or the one model served when no name is given."""
        if name is not None:
            return self.model_of(name, None)
        if len(self.models) != 1 or self.endpoints:
            raise PayloadError("model", "several models (or deployments) are served; add "
                                        "?model=NAME")
        return next(iter(self.models.values()))[0]

    def endpoint_of(self, name: str | None) -> Endpoint | None:
        """The endpoint answering at ``name`` (None: the one endpoint when nothing else
        is served), or None when a model answers."""
        if name is None:
            if not self.models and len(self.endpoints) == 1:
                return next(iter(self.endpoints.values()))
            return None
        return self.endpoints.get(name)

    def counters(self, served: ServedModel, route: str) -> tuple[Any, Any]:
        """The latency histogram and the 200 counter of a model's route (looked up once)."""
        key = (served.name, served.version, route)
        found = self.children.get(key)
        if found is None:
            version = str(served.version)
            found = self.children[key] = (
                self.metrics.latency.labels(served.name, version, route),
                self.metrics.requests.labels(served.name, version, route, "200"))
        return found


def state_of_app(app: FastAPI) -> ServingState:
    """The state ``create_app`` gave ``app``."""
    state: ServingState = app.state.serving
    return state


def state_of(request: Request) -> ServingState:
    """The state of the application serving ``request``."""
    state: ServingState = request.app.state.serving
    return state
