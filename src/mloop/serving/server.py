"""``mloop serve``: registered models behind the Open Inference Protocol (KServe V2).

Routes: ``/v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}[/versions/
{v}]`` (metadata), ``…/ready``, ``…/infer``; ``/predict`` (records or columns + data) and
``/invocations`` (MLflow's scoring form) for people and existing clients; ``/metrics``
(Prometheus). Each model has a micro-batcher; every prediction is logged in batches off
the request path; payload mistakes get 400 (malformed) or 422 (against the signature)
with the field named; a full queue gets 503 with ``Retry-After``.

This module assembles the application: its state (``serving.state``), the routers of
``serving.routes`` (one per area), their error answers and the lifecycle
(``serving.lifecycle``); ``serve`` runs it under uvicorn.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI

from mloop.serving.security import Guard, Security
from mloop.serving.state import ServeConfig, ServingState

CONFIG_ENV = "MLOOP_SERVE_CONFIG"

__all__ = ["CONFIG_ENV", "ServeConfig", "app_factory", "create_app", "serve"]


def create_app(config: ServeConfig) -> FastAPI:
    """The FastAPI application serving ``config.models``."""
    from mloop.serving import routes
    from mloop.serving.lifecycle import lifespan
    from mloop.serving.routes import errors

    app = FastAPI(title="mloop serve", lifespan=lifespan)
    app.state.serving = ServingState(config)
    # the one middleware: nothing reaches a route (or reads a body) unchecked, and a
    # declared body over --max-body-mb gets 413 there
    app.add_middleware(Guard, security=config.security, max_body=config.max_body_bytes)
    errors.install(app)
    routes.add_routes(app)
    return app


def app_factory() -> Any:
    """For ``uvicorn --factory`` with several workers: the config comes from the env."""
    config = json.loads(os.environ[CONFIG_ENV])
    config["security"] = Security(**config.get("security", {}))
    return create_app(ServeConfig(**config))


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8080,
          workers: int = 1) -> None:
    """Run the server until SIGINT/SIGTERM (in-flight requests are drained)."""
    from dataclasses import replace

    import uvicorn

    # the Host check accepts the address bound here, whatever the config said
    config = replace(config, security=replace(config.security, host=host),
                     settle_memory=True)

    if workers > 1:
        os.environ[CONFIG_ENV] = json.dumps(asdict(config))
        uvicorn.run("mloop.serving.server:app_factory", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", timeout_graceful_shutdown=30)
        return
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=30)
