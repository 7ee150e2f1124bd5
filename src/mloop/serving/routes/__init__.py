"""The routes of ``mloop serve``, one ``APIRouter`` per area, in the order they match.

Each receives the application's :class:`~mloop.serving.state.ServingState` through
``state_of(request)``; errors become JSON in :mod:`mloop.serving.routes.errors`.
"""

from __future__ import annotations

from fastapi import APIRouter

from mloop.serving.routes import feedback, health, inference, metrics, precompute

ROUTERS: tuple[APIRouter, ...] = (health.router, inference.router, precompute.router,
                                  feedback.router, metrics.router)

__all__ = ["ROUTERS"]
