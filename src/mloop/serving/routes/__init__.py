"""The routes of ``mloop serve``, one ``APIRouter`` per area, in the order they match.

Each receives the application's :class:`~mloop.serving.state.ServingState` through
``state_of(request)``; errors become JSON in :mod:`mloop.serving.routes.errors`.
Handlers return ``Any`` though they all return a ``Response``: FastAPI reads the
annotation into the OpenAPI document, which stays as clients and fuzzers know it.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from mloop.serving.routes import feedback, health, inference, metrics, precompute

ROUTERS: tuple[APIRouter, ...] = (health.router, inference.router, precompute.router,
                                  feedback.router, metrics.router)


def add_routes(app: FastAPI) -> None:
    """Every area's routes, on ``app``'s own router.

    The routes themselves, not ``include_router``: recent FastAPI keeps an included router
    as a nested matcher consulted on every request, which cost 10-40 µs a request here
    (a quarter of a one-row prediction's own time); the routes alone match as
    ``@app.post`` ones do. No router here has a prefix or dependencies to apply.
    """
    for router in ROUTERS:
        app.router.routes.extend(router.routes)


__all__ = ["ROUTERS", "add_routes"]
