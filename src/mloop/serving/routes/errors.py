"""Errors as JSON answers: each with its class's HTTP status (``mloop.errors``), and failed
inference requests counted in ``mloop_requests``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from mloop.core.redact import get_logger, redact
from mloop.errors import InternalError, MloopError, ModelFailedError, OverloadedError
from mloop.registry.signature import ColumnError
from mloop.serving.protocol import PayloadError
from mloop.serving.routes.common import json_response
from mloop.serving.state import state_of

log = get_logger("mloop.serving")


def failed(request: Request, status: int) -> int:
    """Count a failed inference request (other routes are not counted: their paths are the
    caller's to choose, and labels must stay few)."""
    route = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    if route in ("infer", "predict", "invocations"):
        served = state_of(request).models
        name = request.path_params.get("name") or request.query_params.get("model")
        if name is None and len(served) == 1:
            name = next(iter(served))  # the one model /predict answers for
        versions = served.get(name, []) if name is not None else []
        wanted = request.path_params.get("version")
        version = next((str(v.version) for v in versions
                        if wanted is None or str(v.version) == wanted), "")
        known = bool(versions) or name in state_of(request).endpoints  # a deployment
        # names and versions not served here are one label: callers choose them
        state_of(request).metrics.requests.labels(
            name if known else "unknown", version if versions else "", route,
            str(status)).inc()
    return status


async def mloop_error(request: Request, exc: MloopError) -> Response:
    """``{"error": message}``, and ``"field"`` when the error names one."""
    body = {"error": exc.message}
    if isinstance(exc, PayloadError):
        body["field"] = exc.field
    elif isinstance(exc, ColumnError):
        body["field"] = exc.column
    return json_response(body, status_code=failed(request, exc.http_status))


async def model_failed(request: Request, exc: ModelFailedError) -> Response:
    """The model raised on this request alone: a 500 for it, with the model's reason."""
    log.error("%s: the model failed on a request", request.url.path, exc_info=exc.error)
    return json_response({"error": redact(f"The model failed on this request: {exc}")[:2000]},
                         status_code=failed(request, exc.http_status))


async def overloaded(request: Request, exc: OverloadedError) -> Response:
    """A full queue: 503, and when to try again."""
    return json_response({"error": str(exc)}, status_code=failed(request, exc.http_status),
                         headers={"Retry-After": "1"})


async def unexpected(request: Request, exc: Exception) -> Response:
    """A bug, not the caller's doing: a JSON 500 (the traceback goes to the log)."""
    return json_response({"error": "Internal error (logged by the server)."},
                         status_code=failed(request, InternalError.http_status))


def install(app: FastAPI) -> None:
    """Answer every error raised by a route of ``app`` as JSON."""
    handlers: list[tuple[type[Exception], Any]] = [
        (MloopError, mloop_error), (ModelFailedError, model_failed),
        (OverloadedError, overloaded), (Exception, unexpected)]
    for cls, handler in handlers:
        app.exception_handler(cls)(handler)
