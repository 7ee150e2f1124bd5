"""The team server's FastAPI application."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from mloop._version import __version__
from mloop.core.identity import Identity
from mloop.core.redact import get_logger
from mloop.errors import MloopError

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.server")

API_VERSION = 1  # the /api/v<N> a client speaks; a newer client is refused with a clear 4xx

# Checks a request's credentials and role: returns who is calling, or raises
# TokenError (401) / ForbiddenError (403). ``need`` is a role of mloop.core.identity.ROLES.
Authorize = Callable[[Request, str], Identity]


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(exc: MloopError, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.http_status,
                        headers=headers)


def no_auth(request: Request, need: str) -> Identity:
    """Everyone is an admin: the local, loopback-only server of a single user."""
    return Identity("local", "admin")
