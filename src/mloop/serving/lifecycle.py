"""Start-up and shutdown of a ``mloop serve`` application, in one place.

Start-up loads and warms every model off the event loop, gives each a micro-batcher,
opens the prediction log and starts the monitoring checks; only then is the server
ready. Shutdown reverses it: not ready, monitoring stopped, batchers drained, log closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI

from mloop.core.redact import get_logger
from mloop.serving.batcher import MicroBatcher
from mloop.serving.inference import ServedModel, Traits, learn, predict_fn
from mloop.serving.state import ServingState, state_of_app

monitor_log = get_logger("mloop.monitoring")


@dataclass(frozen=True)
class Loaded:
    """A model version loaded and warmed, before it has a batcher."""

    name: str
    version: int
    uri: str
    model: Any
    seconds: float  # to load and warm
    traits: Traits


def load_all(state: ServingState) -> list[Loaded]:
    """Open the project and load every configured model (blocking: run in a thread)."""
    # the plain-SQL loading path (registry.loading, model_sources, tracking.lookup): a
    # server started on a SQLite project never imports SQLAlchemy (~0.15 s of its start)
    from mloop.core.uris import ModelURI, parse_uri
    from mloop.project import Project, current_project
    from mloop.registry.loading import load_model
    from mloop.repositories.model_sources import source
    from mloop.tracking import lookup

    config = state.config
    project = Project.open(config.project) if config.project else current_project()
    state.opened = project
    out = []
    for uri in config.models:
        start = time.perf_counter()
        found = source(project, uri)  # ModelNotFoundError names what is missing
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
        out.append(Loaded(version.name, int(version.version), found.uri, loaded,
                          time.perf_counter() - start, learn(loaded, frame)))
    return out


def start(state: ServingState, loaded: list[Loaded]) -> None:
    """Batchers for the loaded models, and the prediction log."""
    config, metrics = state.config, state.metrics
    for one in loaded:
        batcher = MicroBatcher(predict_fn(one.model, one.traits.has_proba,
                                          one.traits.takes_matrix),
                               max_batch_size=config.max_batch_size,
                               max_delay=config.max_batch_delay_ms / 1000,
                               max_queue=config.max_queue,
                               on_batch=metrics.batch.labels(one.name).observe)
        batcher.start()
        served = ServedModel(one.name, one.version, one.uri, one.model, batcher,
                             one.seconds, one.traits)
        # the first version listed for a name answers requests without a version
        state.models.setdefault(one.name, []).append(served)
        metrics.load.labels(one.name, str(one.version)).set(one.seconds)
    if config.log_predictions:
        from mloop.serving.predlog import PredictionLogger

        state.logger = PredictionLogger(state.project.root / ".mloop" / "predictions")


async def stop(state: ServingState) -> None:
    """Drain every batcher, then close the prediction log."""
    for versions in state.models.values():
        for served in versions:
            await served.batcher.stop()
    if state.logger is not None:
        state.logger.close()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The application's lifetime: ready between start-up and shutdown."""
    state = state_of_app(app)
    start(state, await asyncio.get_running_loop().run_in_executor(None, load_all, state))
    config = state.config
    monitor = None
    if config.monitor_every > 0 and config.log_predictions:
        monitor = asyncio.create_task(watch(state))
    state.ready = True
    yield
    state.ready = False
    if monitor is not None:
        monitor.cancel()
    await stop(state)


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
