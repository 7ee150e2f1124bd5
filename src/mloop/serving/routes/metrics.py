"""``/metrics``: the application's Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from mloop.serving.state import state_of

router = APIRouter()


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return PlainTextResponse(generate_latest(state_of(request).metrics.registry),
                             media_type=CONTENT_TYPE_LATEST)
