"""``mloop worker --deployment NAME``: asynchronous jobs routed as the server routes requests.

Jobs are submitted to ``deployments:/NAME`` (``mloop.submit("deployments:/churn", rows)``;
the broker keys them by that string). A :class:`DeploymentWorker` claims them as the
model worker (:class:`~mloop.serving.worker.Worker`) claims a model's, and for each
claimed batch:

1. takes the current :class:`Routes` once (the revision's
   :class:`~mloop.deploy.plan.Plan`, read as the server reads it, with its models loaded):
   the whole batch finishes on the revision it was routed by;
2. chooses each job's arm with the revision's :class:`~mloop.deploy.router.Split` — by
   the sticky field of the job's first row when the policy names one (the same hash as a
   request's, so a user is in the same arm online and offline), else a random draw;
3. predicts each arm's jobs in one vectorised call (a failing batch is retried job by
   job, so one bad payload fails alone);
4. completes each job with ``{"model", "arm", "deployment", "revision", "predictions"[,
   "probabilities"]}``. When the arm fails on a job (the model raised), the revision's
   fallback answers (a model, or the value for every row) and the result carries
   ``"fallback": true``; without a fallback the job fails as a model's job does (retried,
   then dead-lettered). A caller's mistake (rows that are not a table, a column the
   signature refuses) is never the arm's failure: the job fails, without fallback or
   index row. The fallback's ``timeout_ms`` is not applied to jobs (nobody waits on a
   connection);
5. then copies the answered jobs (sampled) to the shadow arm; its answers are indexed,
   never returned.

Every job's rows go to the traffic index (request id = job id, outcome ``ok``, ``error``,
``fallback`` or ``shadow``) through the server's :class:`~mloop.deploy.traffic_log.TrafficWriter`,
so the controller's analyses and bandits see asynchronous traffic too; the answering
model's predictions also go to the prediction log by model version, as for a model's
jobs. Every ``follow`` seconds the worker reads the deployment's serial (one query);
when it changed, the new revision's missing models are loaded first and only then is it
used for the next claims. A revision that cannot be loaded is logged and the old one
keeps answering; the next check tries again. The controller is not run here (any
``mloop serve --deployment`` or ``mloop deploy run`` does it).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.redact import get_logger, redact
from mloop.deploy.plan import Plan, read_plans
from mloop.deploy.router import Split
from mloop.deploy.traffic_log import Served, TrafficWriter
from mloop.errors import MloopError
from mloop.repositories.traffic import Outcome
from mloop.serving.worker import Worker

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.serving.broker import Broker, Job

log = get_logger("mloop.deploy")

__all__ = ["DeploymentWorker", "Routes", "job_key", "queue_of"]


def queue_of(deployment: str) -> str:
    """The broker key of ``deployment``'s jobs: ``deployments:/NAME``."""
    return f"deployments:/{deployment}"


@dataclass(frozen=True)
class Routes:
    """One revision's routing of jobs, with the loaded models it routes to."""

    plan: Plan
    split: Split
    arms: Mapping[str, Any]  # arm -> loaded model (0% arms too: warm for a switch)
    fallback: Any = None  # the fallback's loaded model

    @property
    def has_fallback(self) -> bool:
        return self.fallback is not None or self.plan.fallback.has_value

    def primary(self) -> str:
        """The arm with the most traffic."""
        return max(self.split.arms, key=lambda a: self.plan.weights.get(a, 0.0))


def job_key(payload: Any, field: str | None) -> str | None:
    """The sticky key of a job: ``field`` of its first row (records or columns), as text."""
    if field is None:
        return None
    found = None
    if isinstance(payload, list) and payload and isinstance(payload[0], Mapping):
        found = payload[0].get(field)
    elif isinstance(payload, Mapping):
        column = payload.get(field)
        found = column[0] if isinstance(column, list) and column else column
    return None if found is None or isinstance(found, list | dict) else str(found)


@dataclass(frozen=True)
class _Part:
    """A job of one arm's batch, parsed."""

    job: Job
    frame: Any


class DeploymentWorker(Worker):
    """Answers the jobs of deployment ``deployment`` by its current revision."""

    def __init__(self, project: Project, deployment: str, broker: Broker, *,
                 concurrency: int = 2, follow: float = 5.0, batch: int = 64,
                 log_predictions: bool = True, allow_pickle: bool | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__(project, queue_of(deployment), broker, concurrency=concurrency,
                         follow=follow, batch=batch, log_predictions=log_predictions,
                         allow_pickle=allow_pickle)
        self.deployment = deployment
        self.rng = rng or random.Random()
        self.fallbacks = 0
        self.shadowed = 0
        self._routes: Routes | None = None
        self._models: dict[str, Any] = {}  # loaded, by pinned models:/NAME/V
        self._writer: TrafficWriter | None = None
        self._rng_lock = threading.Lock()  # random.Random is not safe across threads
        self._following = threading.Lock()  # held by the thread reading a new revision

    # ── the revision, followed ───────────────────────────────────────────────────────
    def routes(self) -> Routes:
        """The current routes; the deployment's serial is checked every ``follow`` s, by
        one thread while the others go on with the routes they have (no job waits while a
        new revision's models load)."""
        current = self._routes
        if current is not None and time.monotonic() - self._checked < self.follow:
            return current
        if not self._following.acquire(blocking=current is None):
            assert current is not None
            return current
        try:
            if self._routes is None or time.monotonic() - self._checked >= self.follow:
                self._follow()
                self._checked = time.monotonic()
            assert self._routes is not None
            return self._routes
        finally:
            self._following.release()

    def _follow(self) -> None:
        known = None if self._routes is None else {self.deployment: self._routes.plan.serial}
        try:
            plans = read_plans(self.project, [self.deployment], known)
            if plans:
                self._routes = self._routes_of(plans[0])
                log.info("worker for %s now routes by revision %d", self.deployment,
                         plans[0].revision)
        except Exception:
            if self._routes is None:  # nothing to answer with: the start fails
                raise
            log.exception("worker for %s: the deployment's new revision cannot be used; "
                          "revision %d keeps answering", self.deployment,
                          self._routes.plan.revision)

    def _routes_of(self, plan: Plan) -> Routes:
        """``plan`` with its models loaded (kept ones reused); unused ones let go."""
        from mloop.registry.loading import load_model

        loaded = {uri: self._models[uri] if uri in self._models
                  else load_model(self.project, uri, allow_pickle=self.allow_pickle)
                  for uri in sorted(plan.uris())}
        self._models = loaded  # only after every model loaded: a failure keeps the old
        fallback = plan.fallback.model
        return Routes(plan, Split.of(plan.weights),
                      {arm: loaded[uri] for arm, uri in plan.models.items()},
                      loaded[fallback] if fallback is not None else None)

    def load(self) -> None:
        """Read the revision and load its models; NotFoundError for an unknown deployment,
        InvalidInputError for one without a revision."""
        self.routes()

    def model(self) -> tuple[str, Any]:
        """(version URI, loaded model) of the arm with the most traffic."""
        routes = self.routes()
        arm = routes.primary()
        return routes.plan.models[arm], routes.arms[arm]

    def run(self, stop: threading.Event | None = None, max_jobs: int | None = None) -> int:
        """Serve until ``stop`` is set (or ``max_jobs`` are done); the traffic index is
        written to the end before it returns."""
        self.load()
        self._writer = TrafficWriter(self.project)
        try:
            return super().run(stop, max_jobs)
        finally:
            self._writer.close()
            self._writer = None

    # ── a claimed batch ──────────────────────────────────────────────────────────────
    def handle(self, jobs: list[Job]) -> None:
        routes = self.routes()  # the batch finishes on this revision
        by_arm: dict[str, list[_Part]] = {}
        for job in jobs:
            try:
                frame = _frame(job.payload)
            except Exception as exc:  # not rows: the caller's mistake, no arm is at fault
                self._fail(job, exc)
                continue
            with self._rng_lock:
                arm = routes.split.pick(job_key(job.payload, routes.plan.sticky), self.rng)
            by_arm.setdefault(arm, []).append(_Part(job, frame))
        answered: list[_Part] = []
        for arm, parts in by_arm.items():
            answered += self._arm(routes, arm, parts)
        shadow = routes.plan.shadow
        if shadow is not None and answered:
            self._shadow(routes, shadow, answered)

    def _arm(self, routes: Routes, arm: str, parts: list[_Part]) -> list[_Part]:
        """Predict ``parts`` with ``arm`` together; those the arm answered."""
        import pandas as pd

        began = time.perf_counter()
        try:
            pred, proba = routes.arms[arm].predict_both(
                pd.concat([p.frame for p in parts], ignore_index=True))
        except Exception:  # one job spoils the batch: find which, job by job
            return [p for p in parts if self._one_of(routes, arm, p)]
        ms = (time.perf_counter() - began) * 1000
        start = 0
        for part in parts:
            end = start + len(part.frame)
            self._answer(routes, arm, part, pred=pred[start:end],
                         proba=None if proba is None else proba[start:end], ms=ms)
            start = end
        return parts

    def _one_of(self, routes: Routes, arm: str, part: _Part) -> bool:
        """One job by ``arm`` alone (its fallback when the arm fails); True when the arm
        answered it."""
        began = time.perf_counter()
        try:
            pred, proba = routes.arms[arm].predict_both(part.frame)
        except Exception as exc:
            if _callers(exc):
                self._fail(part.job, exc)
            else:
                self._fallback(routes, arm, part, exc, began)
            return False
        self._answer(routes, arm, part, pred=pred, proba=proba, ms=_since(began))
        return True

    def _answer(self, routes: Routes, arm: str, part: _Part, *, pred: Any, proba: Any,
                ms: float) -> None:
        uri = routes.plan.models[arm]
        self.broker.complete(part.job, self._result(routes, arm, uri, pred, proba))
        self._index(routes, arm, uri, Outcome.OK, part, pred=pred, ms=ms)
        self._log(uri, part.job, part.frame, pred=pred, proba=proba, latency_ms=ms)
        with self._lock:
            self.processed += 1

    def _fallback(self, routes: Routes, arm: str, part: _Part, exc: Exception,
                  began: float) -> None:
        """The fallback's answer to a job whose arm failed (or the job's failure)."""
        plan, rows = routes.plan, len(part.frame)
        uri = plan.models[arm]
        if not routes.has_fallback:
            self._index(routes, arm, uri, Outcome.ERROR, part, pred=None, ms=_since(began))
            self._fail(part.job, exc)
            return
        log.warning("%s: arm %s (%s) failed on job %s (%s); the fallback answers",
                    plan.deployment, arm, uri, part.job.id, type(exc).__name__)
        proba = None
        if routes.fallback is not None:
            uri = plan.fallback.model or uri
            try:
                pred, proba = routes.fallback.predict_both(part.frame)
            except Exception as again:
                self._index(routes, arm, uri, Outcome.ERROR, part, pred=None, ms=_since(began))
                self._fail(part.job, again)
                return
            self._log(uri, part.job, part.frame, pred=pred, proba=proba,
                      latency_ms=_since(began))
        else:
            pred = np.full(rows, plan.fallback.value)
        result = self._result(routes, arm, uri, pred, proba) | {"fallback": True}
        self.broker.complete(part.job, result)
        self._index(routes, arm, uri, Outcome.FALLBACK, part, pred=pred, ms=_since(began))
        with self._lock:
            self.processed += 1
            self.fallbacks += 1

    def _shadow(self, routes: Routes, arm: str, parts: list[_Part]) -> None:
        """Copies of answered jobs (sampled) for the shadow arm; indexed, never returned."""
        import pandas as pd

        sample = routes.plan.sample
        if sample < 1:
            with self._rng_lock:
                parts = [p for p in parts if self.rng.random() < sample]
        if not parts:
            return
        uri = routes.plan.models[arm]
        began = time.perf_counter()
        try:
            pred, _ = routes.arms[arm].predict_both(
                pd.concat([p.frame for p in parts], ignore_index=True))
        except Exception as exc:  # the shadow's trouble is its own: logged and indexed
            log.info("%s: the shadow %s failed on %d jobs: %s", routes.plan.deployment, uri,
                     len(parts), exc)
            for part in parts:
                self._index(routes, arm, uri, Outcome.ERROR, part, pred=None, ms=_since(began))
            return
        ms, start = _since(began), 0
        for part in parts:
            end = start + len(part.frame)
            self._index(routes, arm, uri, Outcome.SHADOW, part, pred=pred[start:end], ms=ms)
            start = end
        with self._lock:
            self.shadowed += len(parts)

    # ── what is written ──────────────────────────────────────────────────────────────
    @staticmethod
    def _result(routes: Routes, arm: str, uri: str, pred: Any, proba: Any
                ) -> dict[str, Any]:
        out: dict[str, Any] = {"model": uri, "arm": arm,
                               "deployment": routes.plan.deployment,
                               "revision": routes.plan.revision,
                               "predictions": np.asarray(pred).tolist()}
        if proba is not None:
            out["probabilities"] = np.asarray(proba).tolist()
        return out

    def _index(self, routes: Routes, arm: str, uri: str, outcome: Outcome, part: _Part, *,
               pred: Any, ms: float) -> None:
        if self._writer is not None:
            self._writer.put(Served(routes.plan.deployment, routes.plan.revision, arm, uri,
                                    outcome, part.job.id, len(part.frame), pred, ms,
                                    int(time.time() * 1000)))

    def _fail(self, job: Job, exc: Exception) -> None:
        # the job's own error, kept for the dead-letter list
        self.broker.fail(job, redact(f"{type(exc).__name__}: {exc}"))
        with self._lock:
            self.failed += 1


def _frame(payload: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(payload)


def _callers(exc: Exception) -> bool:
    """Whether ``exc`` is the caller's mistake (a 4xx: rows the signature refuses)."""
    return isinstance(exc, MloopError) and exc.http_status < 500


def _since(began: float) -> float:
    return (time.perf_counter() - began) * 1000
