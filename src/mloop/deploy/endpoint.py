"""A deployment as a serving endpoint: its routing table, and how one request is answered.

A :class:`Table` is immutable: the arms' loaded models, the split of new requests, the
shadow, the fallback. The server builds a new one when the revision changes and swaps
the endpoint's reference to it; a request keeps the table it was routed by (its
:class:`~mloop.serving.endpoint.Pick`), so nothing in flight changes under it.

Which weights route requests, by revision status: ``active``, ``paused`` and
``completed`` route by the revision's weights (``state["weights"]``); a revision
``awaiting_approval`` is not in traffic yet, so its ``rollback_target`` (the model that
served before it) takes all requests, indexed under that earlier revision.

Answering (:meth:`DeploymentEndpoint.predict`): the chosen arm predicts, within the
fallback's ``timeout_ms`` when one is set. When the arm fails (the model raised, its
queue was full, or it was too slow), the fallback model or value answers, the response
carries ``x-mloop-fallback: 1`` and the rows are indexed as ``fallback``; without a
fallback the caller gets the error as from a plain model (500, 503; a timeout without a
fallback is a 503) and the rows are indexed as ``error``. A caller's mistake (4xx) is
never the arm's failure: neither fallback nor index.

Shadow: after the primary answered, a sampled copy goes to the shadow arm in a
background task the request never awaits; at most :data:`SHADOW_PENDING` copies are
pending per deployment, so a slow shadow costs the primary at most that many queued
predictions on other threads (copies beyond it are dropped and counted). Shadow rows are
indexed under the request's id with outcome ``shadow`` (``error`` when the shadow failed)
and never reach the caller or the prediction log.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.ids import new_id
from mloop.core.redact import get_logger
from mloop.deploy.router import Split, request_key
from mloop.deploy.traffic_log import DeploymentMetrics, Served, TrafficWriter
from mloop.errors import ModelFailedError, ServiceUnavailableError
from mloop.repositories.traffic import Outcome
from mloop.serving.endpoint import Answer, Pick
from mloop.serving.inference import ServedModel, run

if TYPE_CHECKING:
    from mloop.serving.state import ServingState

log = get_logger("mloop.deploy")

__all__ = ["SHADOW_PENDING", "DeploymentEndpoint", "Table"]

SHADOW_PENDING = 64  # shadow copies in flight per deployment before new ones are dropped


@dataclass(frozen=True)
class Table:
    """One revision's routing, with the loaded models it routes to."""

    deployment: str
    revision: int  # the revision traffic is indexed under
    split: Split
    arms: Mapping[str, ServedModel]  # every arm loaded (0% ones too: warm for a switch)
    weights: Mapping[str, float]
    sticky: str | None = None
    shadow: str | None = None
    sample: float = 1.0
    fallback_model: ServedModel | None = None
    fallback_value: Any = None
    has_fallback_value: bool = False
    timeout_s: float | None = None
    step: int | None = None  # a canary's step
    posterior: Mapping[str, float] = field(default_factory=dict)
    shadow_model: ServedModel | None = None  # the shadow arm, batching its copies
    shadow_key: str | None = None  # which batcher that is (deploy.serving.shadow_key)

    @property
    def has_fallback(self) -> bool:
        return self.fallback_model is not None or self.has_fallback_value

    @property
    def primary(self) -> ServedModel:
        """The arm with the most traffic (its metadata is the deployment's)."""
        return self.arms[max(self.split.arms, key=lambda a: self.weights.get(a, 0.0))]

    def models(self) -> set[str]:
        """The pinned models this table needs loaded."""
        out = {s.uri for s in self.arms.values()}
        if self.fallback_model is not None:
            out.add(self.fallback_model.uri)
        return out


class DeploymentEndpoint:
    """The :class:`~mloop.serving.endpoint.Endpoint` of one deployment."""

    def __init__(self, table: Table, writer: TrafficWriter | None,
                 metrics: DeploymentMetrics, rng: random.Random | None = None) -> None:
        self.table = table  # replaced whole by the server; read once per request
        self.writer = writer
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.shadows: set[asyncio.Task[None]] = set()
        self._dropped = 0

    def model(self) -> ServedModel:
        return self.table.primary

    def choose(self, body: Any, headers: Mapping[str, str]) -> Pick:
        table = self.table
        key = request_key(body, table.sticky, headers)
        arm = table.split.pick(key, self.rng)
        return Pick(table.arms[arm], (table, arm))

    async def predict(self, state: ServingState, pick: Pick, frame: Any, route: str, *,
                      proba: bool) -> Answer:
        table, arm = pick.token
        served = pick.served
        request_id = new_id()
        began = time.perf_counter()
        try:
            answering = run(state, served, frame, route, proba=proba, request_id=request_id)
            pred, probabilities, _, _ = await (
                answering if table.timeout_s is None  # no timer to arm for every request
                else asyncio.wait_for(answering, table.timeout_s))
        except (ModelFailedError, ServiceUnavailableError, TimeoutError) as exc:
            return await self._failed(state, table, arm, served, frame=frame, route=route,
                                      proba=proba, request_id=request_id, began=began,
                                      exc=exc)
        seconds = time.perf_counter() - began
        self._record(table, arm, served.uri, Outcome.OK, request_id=request_id,
                     rows=len(pred), pred=pred, seconds=seconds)
        if table.shadow is not None:
            self._shadow(table, frame, request_id)
        return Answer(pred, probabilities, request_id, served,
                      self._headers(table, arm, served))

    async def _failed(self, state: ServingState, table: Table, arm: str,
                      served: ServedModel, *, frame: Any, route: str, proba: bool,
                      request_id: str, began: float, exc: Exception) -> Answer:
        """The fallback's answer to a request whose arm failed (or the error, without)."""
        rows = len(frame)
        if not table.has_fallback:
            self._record(table, arm, served.uri, Outcome.ERROR, request_id=request_id,
                         rows=rows, pred=None, seconds=time.perf_counter() - began)
            if isinstance(exc, TimeoutError):
                raise ServiceUnavailableError(
                    f"{served.uri} took longer than {(table.timeout_s or 0) * 1000:g} ms "
                    f"(the deployment's timeout) and {table.deployment!r} has no "
                    "fallback; give it one (--fallback or --fallback-value).") from None
            raise exc
        log.warning("%s: arm %s (%s) failed (%s); the fallback answers", table.deployment,
                    arm, served.uri, type(exc).__name__)
        answered = served
        if table.fallback_model is not None:
            try:
                pred, probabilities, _, _ = await run(state, table.fallback_model, frame,
                                                      route, proba=proba,
                                                      request_id=request_id)
            except (ModelFailedError, ServiceUnavailableError):
                self._record(table, arm, table.fallback_model.uri, Outcome.ERROR,
                             request_id=request_id, rows=rows, pred=None,
                             seconds=time.perf_counter() - began)
                raise
            answered = table.fallback_model
        else:
            pred, probabilities = np.full(rows, table.fallback_value), None
        seconds = time.perf_counter() - began
        self._record(table, arm, answered.uri, Outcome.FALLBACK, request_id=request_id,
                     rows=rows, pred=pred, seconds=seconds)
        headers = self._headers(table, arm, answered) | {"x-mloop-fallback": "1"}
        return Answer(pred, probabilities, request_id, answered, headers)

    @staticmethod
    def _headers(table: Table, arm: str, served: ServedModel) -> dict[str, str]:
        return {"x-mloop-deployment": table.deployment,
                "x-mloop-revision": str(table.revision), "x-mloop-arm": arm,
                "x-mloop-model-version": served.uri}

    def _record(self, table: Table, arm: str, model: str, outcome: Outcome, *,
                request_id: str, rows: int, pred: Any, seconds: float) -> None:
        self.metrics.answered(table.deployment, arm, outcome, seconds)
        if self.writer is not None:
            self.writer.put(Served(table.deployment, table.revision, arm, model, outcome,
                                   request_id, rows, pred, seconds * 1000,
                                   int(time.time() * 1000)))
            dropped = self.writer.dropped
            if dropped != self._dropped:  # a gauge's lock per request is not free
                self._dropped = dropped
                self.metrics.traffic_dropped.set(dropped)

    def _shadow(self, table: Table, frame: Any, request_id: str) -> None:
        """A copy of the request for the shadow arm, in the background (sampled,
        bounded)."""
        if table.sample < 1 and self.rng.random() >= table.sample:
            return
        if len(self.shadows) >= SHADOW_PENDING:
            self.metrics.shadow_dropped.labels(table.deployment).inc()
            return
        task = asyncio.get_running_loop().create_task(self._copy(table, frame, request_id))
        self.shadows.add(task)
        task.add_done_callback(self.shadows.discard)

    async def _copy(self, table: Table, frame: Any, request_id: str) -> None:
        assert table.shadow is not None
        served = table.shadow_model or table.arms[table.shadow]
        began = time.perf_counter()
        try:
            _, pred, _ = await served.predict(frame, proba=False)
        except Exception as exc:  # the shadow's trouble is its own: logged and indexed
            log.info("%s: the shadow %s failed on a copy: %s", table.deployment, served.uri,
                     exc)
            self._record(table, table.shadow, served.uri, Outcome.ERROR,
                         request_id=request_id, rows=len(frame), pred=None,
                         seconds=time.perf_counter() - began)
            return
        self._record(table, table.shadow, served.uri, Outcome.SHADOW, request_id=request_id,
                     rows=len(pred), pred=pred, seconds=time.perf_counter() - began)
