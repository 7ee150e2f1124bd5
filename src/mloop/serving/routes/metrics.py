"""``/metrics``: the application's Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from mloop.serving.state import state_of

router = APIRouter()


@router.get("/metrics")
async def prometheus(request: Request) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return PlainTextResponse(generate_latest(state_of(request).metrics.registry),
                             media_type=CONTENT_TYPE_LATEST)
