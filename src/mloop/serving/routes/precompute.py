"""``/api/v1/precomputed/{table}/{key}``: a prediction scored ahead by ``mloop batch``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from mloop.serving.routes.common import json_response
from mloop.serving.state import state_of

router = APIRouter()


@router.get("/api/v1/precomputed/{table}/{key}")
async def precomputed(table: str, key: str, request: Request) -> Any:
    from mloop.serving.precompute import lookup

    project = state_of(request).project
    loop = asyncio.get_running_loop()
    return json_response(await loop.run_in_executor(None, lookup, project, table, key))
