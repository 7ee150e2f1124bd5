"""``/api/v1/feedback``: the true labels of served predictions, by request id."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mloop.serving.routes.common import body_of, json_response, openapi_body
from mloop.serving.state import ServingState, state_of

router = APIRouter()


@router.post("/api/v1/feedback", openapi_extra=openapi_body("feedback"))
async def feedback(request: Request) -> Any:
    state = state_of(request)
    return await store(state, await body_of(request, state.config.max_body_bytes))


async def store(state: ServingState, body: Any) -> Response:
    """Store the labels of one feedback request: ``{"stored": N, "unmatched": M}``, or 413
    naming the ``[serving]`` limit it passed."""
    from mloop.monitoring import feedback as fb

    settings = state.project.settings
    try:
        entries = fb.request_entries(body, max_items=settings.feedback_max_items,
                                     max_label_bytes=settings.feedback_max_label_bytes)
    except fb.LimitError as exc:
        return json_response({"error": exc.message, "limit": exc.limit, "value": exc.value},
                             status_code=exc.http_status)
    logger = state.logger
    save = partial(fb.save, state.project, entries,
                   unwritten=logger.unwritten if logger is not None else None)
    result = await asyncio.get_running_loop().run_in_executor(None, save)
    return json_response(result.to_dict())
