"""``/v2/health/live`` and ``/v2/health/ready``: the server's liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mloop.errors import ServiceUnavailableError
from mloop.serving.routes.common import json_response
from mloop.serving.state import state_of

router = APIRouter()


@router.get("/v2/health/live")
async def live() -> Any:
    return json_response({"live": True})


@router.get("/v2/health/ready")
async def ready(request: Request) -> Any:
    if not state_of(request).ready:  # loading its models, or draining before it stops
        return json_response({"ready": False},
                             status_code=ServiceUnavailableError.http_status)
    return json_response({"ready": True})
