"""The routes of ``mloop serve``, one ``APIRouter`` per area, in the order they match.

Each receives the application's :class:`~mloop.serving.state.ServingState` through
``state_of(request)``; errors become JSON in :mod:`mloop.serving.routes.errors`.
Handlers return ``Any`` though they all return a ``Response``: FastAPI reads the
annotation into the OpenAPI document, which stays as clients and fuzzers know it.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from mloop.serving.routes import feedback, health, inference, metrics, precompute

ROUTERS: tuple[APIRouter, ...] = (health.router, inference.router, precompute.router,
                                  feedback.router, metrics.router)


def add_routes(app: FastAPI) -> None:
    """Every area's routes, added to ``app`` as ``@app.post`` would add them.

    Not ``include_router``: recent FastAPI keeps an included router as a nested matcher
    consulted on every request, which cost 10-40 µs a request here (a quarter of a V2
    one-row prediction's own time), and its routes resolve the app's settings (strict
    content type, dependency overrides) per request. No router here has a prefix or
    dependencies to apply.
    """
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                app.router.add_api_route(route.path, route.endpoint, methods=route.methods,
                                         name=route.name, openapi_extra=route.openapi_extra)


__all__ = ["ROUTERS", "add_routes"]
