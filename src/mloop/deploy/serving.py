"""``mloop serve --deployment NAME``: deployments as endpoints of the server.

The serving extension (``mloop.deploy.serving:extension``, see
:mod:`mloop.serving.endpoint`) reads each deployment's current revision when the server
starts, loads every arm's model and the fallback model as ``mloop serve`` loads a model
(:func:`mloop.serving.lifecycle.load_one`: resolved, hash-checked, warmed on its input
example; each with its own micro-batcher) and answers at ``/v2/models/NAME/infer``,
``/predict?model=NAME`` and ``/invocations?model=NAME`` through a
:class:`~mloop.deploy.endpoint.DeploymentEndpoint`. A deployment without a revision, or
a model that cannot be loaded, stops the start with the reason.

Every ``poll_interval`` seconds it reads the deployments' serials (one query); when one
changed, it reads the new revision, loads the models it lacks in a thread first, and
only then swaps the endpoint's table (one reference): new requests follow the new
revision, requests in flight finish on the table they started with. Loaded models are
kept by pinned ``models:/NAME/V``, so a revision that keeps an arm reuses it warm (blue
stays loaded through a blue/green switch and back); a model no table needs any more is
stopped after a grace period. A change that cannot be applied (a model that fails to
load, the store away) is logged and the old table keeps serving; the next poll tries
again.

Unless ``--no-controller``, the server also runs the deployments' controller
(:mod:`mloop.deploy.controller`: canary steps, analyses, bandit updates) every poll
interval in a thread; a lease in the store makes one process at a time do it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING, Any

from mloop.core.redact import get_logger
from mloop.deploy.endpoint import DeploymentEndpoint, Table
from mloop.deploy.plan import Plan, plan_of, read_plans
from mloop.deploy.router import Split
from mloop.deploy.traffic_log import DeploymentMetrics, TrafficWriter
from mloop.errors import ConflictError, InvalidInputError

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.serving.inference import ServedModel
    from mloop.serving.state import ServeConfig, ServingState

SHADOW_DELAY = 0.02  # seconds a shadow batch may wait to fill
SHADOW_BATCH = 16  # rows in one shadow call at most: a primary waits for one at most

log = get_logger("mloop.deploy")

__all__ = ["DeploymentServing", "Plan", "extension", "plan_of"]

EXTENSION = "mloop.deploy.serving:extension"


def extension(config: ServeConfig) -> DeploymentServing:
    """The serving extension for ``config.deployments`` (named ``EXTENSION``)."""
    return DeploymentServing(config)


class DeploymentServing:
    """The serving extension: endpoints, polling, the traffic index and the controller."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.names = list(dict.fromkeys(config.deployments))
        self.models: dict[str, ServedModel] = {}  # by models:/NAME/V
        # shadow copies' batchers, by the plan's "shadow uri > primary uri" (the primary's
        # predict thread is theirs)
        self.shadow_models: dict[str, ServedModel] = {}
        self.endpoints: dict[str, DeploymentEndpoint] = {}
        self.serials: dict[str, int] = {}
        self.writer: TrafficWriter | None = None
        self.metrics: DeploymentMetrics | None = None
        self.controller: Any = None
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, state: ServingState) -> None:
        from mloop.serving.lifecycle import open_project

        loop = asyncio.get_running_loop()
        project = open_project(state)
        clash = sorted(set(self.names) & set(state.models))
        if clash:
            raise ConflictError(f"{clash[0]!r} is both a served model and a deployment; "
                                "serve one of them.")
        self.metrics = DeploymentMetrics(state.metrics.registry)
        self.writer = TrafficWriter(project)
        try:
            plans = await loop.run_in_executor(None, read_plans, project, self.names)
            await self.apply(state, plans, strict=True)
        except BaseException:  # what was loaded is stopped; the reason stops the start
            await self.stop(state)
            raise
        if self.config.poll_interval > 0:
            self.tasks.append(loop.create_task(self._poll(state, project)))
            if self.config.controller:
                self.controller = _controller(project, self.names)
                if self.controller is not None:
                    self.tasks.append(loop.create_task(self._control()))

    async def stop(self, state: ServingState) -> None:
        loop = asyncio.get_running_loop()
        for task in self.tasks:
            task.cancel()
        for name in self.endpoints:
            state.endpoints.pop(name, None)
        for endpoint in self.endpoints.values():  # shadow copies finish first
            if endpoint.shadows:
                await asyncio.wait(list(endpoint.shadows), timeout=10)
        if self.controller is not None:
            await loop.run_in_executor(None, self.controller.release)
        for served in [*self.models.values(), *self.shadow_models.values()]:
            await served.batcher.stop()
        if self.writer is not None:
            await loop.run_in_executor(None, self.writer.close)

    async def apply(self, state: ServingState, plans: list[Plan], *, strict: bool) -> None:
        """Load what ``plans`` need, then swap each deployment's table; a plan whose model
        fails to load raises when ``strict``, else is logged and skipped."""
        from mloop.serving.lifecycle import load_one, retire, serve_one

        loop = asyncio.get_running_loop()
        project = state.project
        tables = []
        for plan in plans:
            try:
                for uri in sorted(plan.uris() - set(self.models)):
                    one = await loop.run_in_executor(None, load_one, project, uri,
                                                     state.config)
                    self.models[uri] = serve_one(state, one)
                key = shadow_key(plan)
                if key is not None and key not in self.shadow_models:
                    copies, primary = key.split(" > ")
                    self.shadow_models[key] = shadow_of(state, self.models[copies],
                                                        self.models[primary])
                tables.append((plan, table_of(plan, self.models, self.shadow_models)))
            except Exception:
                if strict:
                    raise
                log.exception("deployment %s: revision %d cannot be served; the previous "
                              "one keeps serving", plan.deployment, plan.revision)
        for plan, table in tables:  # every model loaded first: then the swaps, at once
            self._swap(state, plan, table)
        needed = set().union(*(e.table.models() for e in self.endpoints.values()))
        unused = [uri for uri in self.models if uri not in needed]
        retire(state, [self.models.pop(uri) for uri in unused])
        shadowing = {e.table.shadow_key for e in self.endpoints.values()}
        retire(state, [self.shadow_models.pop(key) for key in list(self.shadow_models)
                       if key not in shadowing])

    def _swap(self, state: ServingState, plan: Plan, table: Table) -> None:
        assert self.metrics is not None
        endpoint = self.endpoints.get(plan.deployment)
        if endpoint is None:
            endpoint = self.endpoints[plan.deployment] = DeploymentEndpoint(
                table, self.writer, self.metrics)
            state.endpoints[plan.deployment] = endpoint
        else:
            endpoint.table = table  # one reference: requests in flight keep the old table
            log.info("deployment %s now routes by revision %d", plan.deployment,
                     plan.revision)
        self.serials[plan.deployment] = plan.serial
        self.metrics.routing(plan.deployment, plan.revision, dict(table.weights),
                             step=plan.step, posterior=plan.posterior or {},
                             verdict=plan.verdict)

    async def _poll(self, state: ServingState, project: Project) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.poll_interval)
            try:
                plans = await loop.run_in_executor(None, read_plans, project, self.names,
                                                   dict(self.serials))
                if plans:
                    await self.apply(state, plans, strict=False)
            except Exception:  # the store away, a deployment deleted: keep serving
                log.exception("reading the deployments failed; the current routing stays")

    async def _control(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.poll_interval)
            try:
                await loop.run_in_executor(None, self.controller.tick)
            except Exception:  # tick() handles each deployment's trouble; this is a bug
                log.exception("the deployment controller failed a round")


def shadow_of(state: ServingState, served: ServedModel, primary: ServedModel
              ) -> ServedModel:
    """``served`` with a batcher of its own for shadow copies, which waits up to
    :data:`SHADOW_DELAY` to fill a batch of at most :data:`SHADOW_BATCH` rows and runs on
    the ``primary``'s predict thread: copies are predicted a few at a time, a few calls a
    second rather than one per request, and a primary request waits for at most one
    such small call instead of contending for the GIL with a second thread."""
    from dataclasses import replace

    from mloop.serving.batcher import MicroBatcher
    from mloop.serving.inference import predict_fn

    batcher = MicroBatcher(predict_fn(served.loaded, served.traits.has_proba,
                                      served.traits.takes_matrix),
                           max_batch_size=SHADOW_BATCH, max_delay=SHADOW_DELAY,
                           max_queue=state.config.max_queue,
                           executor=primary.batcher.executor)
    batcher.start()
    return replace(served, batcher=batcher)


def shadow_key(plan: Plan) -> str | None:
    """``"<shadow uri> > <primary uri>"`` of a plan with a shadow (the primary: the arm
    with the most traffic), else None."""
    if plan.shadow is None or plan.shadow not in plan.models:
        return None
    primary = max((a for a in plan.models if a != plan.shadow),
                  key=lambda a: plan.weights.get(a, 0.0))
    return f"{plan.models[plan.shadow]} > {plan.models[primary]}"


def table_of(plan: Plan, models: dict[str, ServedModel],
             shadows: dict[str, ServedModel] | None = None) -> Table:
    """The routing table of ``plan`` over loaded ``models`` (and shadow copies' models)."""
    fallback = plan.fallback
    key = shadow_key(plan)
    return Table(plan.deployment, plan.revision, Split.of(plan.weights),
                 {arm: models[uri] for arm, uri in plan.models.items()}, plan.weights,
                 sticky=plan.sticky, shadow=plan.shadow, sample=plan.sample,
                 shadow_model=(shadows or {}).get(key) if key else None, shadow_key=key,
                 fallback_model=models[fallback.model] if fallback.model else None,
                 fallback_value=fallback.value, has_fallback_value=fallback.has_value,
                 timeout_s=None if fallback.timeout_ms is None else fallback.timeout_ms / 1000,
                 step=plan.step, posterior=plan.posterior or {})


def _controller(project: Project, names: list[str]) -> Any:
    """The deployments' controller; every server has one, and the lease lets one act."""
    from mloop.deploy.controller import Controller

    return Controller(project, names, holder=f"serve:{socket.gethostname()}:{os.getpid()}")


def check_deployments(project: Project, names: list[str], models: list[str]) -> list[str]:
    """Refuse, before a server announces anything, a deployment that does not exist or has
    no revision, and one named like a served model (both would answer at its name); the
    pinned models the deployments need now."""
    from mloop.repositories.model_sources import parse_model_ref

    served = set()
    for ref in models:
        parsed = parse_model_ref(ref)
        served.add(parsed[0] if isinstance(parsed, tuple) else parsed.name)
    clash = sorted(set(names) & served)
    if clash:
        raise InvalidInputError(f"{clash[0]!r} is both a model given to serve and a "
                                f"deployment; both would answer at /v2/models/{clash[0]}: "
                                "serve one of them.")
    return sorted(set().union(*(p.uris() for p in read_plans(project, names))))
