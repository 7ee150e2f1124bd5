"""Start-up and shutdown of a ``mloop serve`` application, in one place.

Start-up loads and warms every model off the event loop, gives each a micro-batcher,
opens the prediction log, starts the extensions (``serving.endpoint``), the monitoring
checks and the alias follower; only then is the server ready. Shutdown reverses it: not
ready, tasks stopped, extensions stopped, batchers drained, log closed.

A served alias (``models:/churn@champion``) is resolved again every ``poll_interval``:
when it moved, the new version is loaded and warmed in a thread, then swapped in for new
requests; the old one answers what already chose it and stops after a grace period.
The pieces (:func:`load_one`, :func:`serve_one`, :func:`retire`) are what an extension
uses to load models the same way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI

from mloop.core.redact import get_logger
from mloop.serving.batcher import MicroBatcher
from mloop.serving.inference import ServedModel, Traits, learn, predict_fn
from mloop.serving.state import ServeConfig, ServingState, state_of_app

if TYPE_CHECKING:
    from mloop.project import Project

monitor_log = get_logger("mloop.monitoring")
log = get_logger("mloop.serving")

GRACE = 10.0  # seconds a model no longer routed to keeps answering requests that chose it


@dataclass(frozen=True)
class Loaded:
    """A model version loaded and warmed, before it has a batcher."""

    name: str
    version: int
    uri: str
    model: Any
    seconds: float  # to load and warm
    traits: Traits


def open_project(state: ServingState) -> Project:
    """The configured project (the current one without), opened once per application."""
    from mloop.project import Project, current_project

    if state.opened is None:
        config = state.config
        state.opened = Project.open(config.project) if config.project else current_project()
    return state.opened


def load_one(project: Project, ref: str, config: ServeConfig) -> Loaded:
    """Resolve ``ref``, load the version it names and warm it on its input example
    (blocking: run in a thread)."""
    # the plain-SQL loading path (registry.loading, model_sources, tracking.lookup): a
    # server started on a SQLite project never imports SQLAlchemy (~0.15 s of its start)
    from mloop.core.uris import ModelURI, parse_uri
    from mloop.registry.loading import load_model
    from mloop.repositories.model_sources import source
    from mloop.tracking import lookup

    start = time.perf_counter()
    found = source(project, ref)  # ModelNotFoundError names what is missing
    version = parse_uri(found.uri)
    assert isinstance(version, ModelURI)  # source() answers models:/NAME/N
    assert version.version is not None
    loaded = load_model(project, found.uri,
                        engine=config.engine or project.settings.serve_engine,
                        allow_pickle=config.allow_pickle)
    example = loaded.manifest.get("input_example")
    frame = None
    if example:  # warm: the first predict pays lazy imports
        body = json.loads(lookup.read_artifact(
            project, found.run_id, f"{found.artifact_path}/{example}"))
        import pandas as pd

        frame = (pd.DataFrame(body["data"], columns=body.get("columns"))
                 if "columns" in body else np.asarray(body["data"]))
    return Loaded(version.name, int(version.version), found.uri, loaded,
                  time.perf_counter() - start, learn(loaded, frame))


def load_all(state: ServingState) -> list[Loaded]:
    """Open the project and load every configured model (blocking: run in a thread)."""
    project = open_project(state)
    return [load_one(project, uri, state.config) for uri in state.config.models]


def serve_one(state: ServingState, one: Loaded) -> ServedModel:
    """``one`` with a started micro-batcher of its own (on the event loop)."""
    config, metrics = state.config, state.metrics
    batcher = MicroBatcher(predict_fn(one.model, one.traits.has_proba,
                                      one.traits.takes_matrix),
                           max_batch_size=config.max_batch_size,
                           max_delay=config.max_batch_delay_ms / 1000,
                           max_queue=config.max_queue,
                           on_batch=metrics.batch.labels(one.name).observe)
    batcher.start()
    metrics.load.labels(one.name, str(one.version)).set(one.seconds)
    return ServedModel(one.name, one.version, one.uri, one.model, batcher, one.seconds,
                       one.traits)


def start(state: ServingState, loaded: list[Loaded]) -> None:
    """Batchers for the loaded models, and the prediction log."""
    for one in loaded:
        # the first version listed for a name answers requests without a version
        state.models.setdefault(one.name, []).append(serve_one(state, one))
    if state.config.log_predictions:
        from mloop.serving.predlog import PredictionLogger, sharer

        state.logger = PredictionLogger(state.project.root / ".mloop" / "predictions",
                                        share=sharer(state.project))


def retire(state: ServingState, served: list[ServedModel], grace: float = GRACE) -> None:
    """Stop the batchers of models no longer routed to, ``grace`` seconds from now: a
    request that looked one up before the swap (and may still be reading its body) is
    answered by it; shutdown drains any still waiting."""
    if not served:
        return
    state.retiring.extend(served)

    async def later() -> None:
        await asyncio.sleep(grace)
        for one in served:
            await one.batcher.stop()
            if one in state.retiring:
                state.retiring.remove(one)

    task = asyncio.get_running_loop().create_task(later())
    state.background.add(task)
    task.add_done_callback(state.background.discard)


async def stop(state: ServingState) -> None:
    """Drain every batcher (retiring ones too), then close the prediction log and the
    project the server opened."""
    for task in list(state.background):
        task.cancel()
    for versions in state.models.values():
        for served in versions:
            await served.batcher.stop()
    for served in list(state.retiring):
        await served.batcher.stop()
    if state.logger is not None:
        state.logger.close()
    if state.config.project and state.opened is not None:  # opened by us: its connections
        state.opened.close()


async def start_extensions(state: ServingState) -> None:
    """Make and start each configured extension (``module:factory``), in order."""
    from mloop.serving.endpoint import load_extension

    for name in state.config.extensions:
        extension = load_extension(name, state.config)
        await extension.start(state)
        state.extensions.append(extension)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The application's lifetime: ready between start-up and shutdown."""
    state = state_of_app(app)
    start(state, await asyncio.get_running_loop().run_in_executor(None, load_all, state))
    config = state.config
    tasks = []
    try:
        await start_extensions(state)
        if config.monitor_every > 0 and config.log_predictions:
            tasks.append(asyncio.create_task(watch(state)))
        if config.poll_interval > 0 and _aliased(config.models):
            tasks.append(asyncio.create_task(follow(state)))
        if config.settle_memory:
            settle_memory()
        state.ready = True
        yield
    finally:
        state.ready = False
        for task in tasks:
            task.cancel()
        for extension in reversed(state.extensions):
            try:
                await extension.stop(state)
            except Exception:  # the others still stop, and the batchers still drain
                log.exception("a serving extension failed to stop")
        await stop(state)


# ── following aliases ─────────────────────────────────────────────────────────────────

def _aliased(refs: list[str]) -> list[str]:
    """Those of ``refs`` that name an alias (``models:/churn@champion``, ``churn@x``)."""
    from mloop.repositories.model_sources import parse_model_ref

    out = []
    for ref in refs:
        parsed = parse_model_ref(ref)
        if not isinstance(parsed, tuple) and parsed.alias is not None:
            out.append(ref)
    return out


def _resolve(state: ServingState, refs: list[str]) -> dict[str, str]:
    """The version each ref names now (blocking)."""
    from mloop.repositories.model_sources import source

    project = state.project
    return {ref: source(project, ref).uri for ref in refs}


async def follow_once(state: ServingState, serving: dict[str, ServedModel]) -> None:
    """Load the version each alias in ``serving`` (ref → what answers for it) names now
    where it moved, swap it in for new requests and retire the old one."""
    loop = asyncio.get_running_loop()
    now = await loop.run_in_executor(None, _resolve, state, list(serving))
    for ref, uri in now.items():
        old = serving[ref]
        if uri == old.uri:
            continue
        one = await loop.run_in_executor(None, load_one, state.project, uri, state.config)
        new = serve_one(state, one)
        if new.name == old.name:  # an alias of one model: one version answers for another
            state.models[old.name] = [new if s is old else s
                                      for s in state.models[old.name]]
        serving[ref] = new
        log.info("%s moved from %s to %s: new requests go to it", ref, old.uri, new.uri)
        retire(state, [old])


async def follow(state: ServingState) -> None:
    """Every poll interval, follow the served aliases (a failing round is logged and the
    old version keeps answering)."""
    ordered = _in_config_order(state)
    serving = {ref: ordered[state.config.models.index(ref)]
               for ref in _aliased(state.config.models)}
    while True:
        await asyncio.sleep(state.config.poll_interval)
        try:
            await follow_once(state, serving)
        except Exception:  # e.g. the alias now names a refused pickle: keep the old one
            log.exception("following the served aliases failed; the versions loaded keep "
                          "answering")


def _in_config_order(state: ServingState) -> list[ServedModel]:
    """The served models in the order of ``config.models`` (``start`` appended them by
    name in that order)."""
    from mloop.repositories.model_sources import parse_model_ref

    seen: dict[str, int] = {}
    out = []
    for ref in state.config.models:
        parsed = parse_model_ref(ref)
        name = parsed[0] if isinstance(parsed, tuple) else parsed.name
        index = seen.get(name, 0)
        seen[name] = index + 1
        out.append(state.models[name][index])
    return out


def settle_memory() -> None:
    """Move what start-up made (modules, models, warmed caches: ~10^5 objects that live as
    long as the server) out of the garbage collector's sight. Otherwise every full
    collection walks them all and frees nothing: 25-100 ms pauses every few seconds
    under load, each one a p99 outlier (measured in bench/deployment.py)."""
    import gc

    gc.collect()
    gc.freeze()


def check_once(state: ServingState) -> None:
    """One round of monitoring checks of the served models, into the metrics."""
    from mloop.monitoring.alerting import open_counts
    from mloop.monitoring.runner import check

    project = state.project
    state.metrics.monitored(check(project, models=list(state.models)), open_counts(project))


async def watch(state: ServingState) -> None:
    """Drift, live metrics and alert rules for the served models, off the event loop;
    a failing round is logged and the next one tries again."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(state.config.monitor_every)
        try:
            await loop.run_in_executor(None, check_once, state)
        except Exception:  # never let monitoring take serving down
            monitor_log.exception("monitoring round failed")
