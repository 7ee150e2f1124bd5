"""The team server's FastAPI application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from mloop._version import __version__
from mloop.core.client import API_VERSION
from mloop.core.identity import Identity
from mloop.core.redact import get_logger
from mloop.errors import MloopError

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.server")


# Checks a request's credentials and role: returns who is calling, or raises
# TokenError (401) / ForbiddenError (403). ``need`` is a role of mloop.core.identity.ROLES.
Authorize = Callable[[Request, str], Identity]


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(exc: MloopError, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.http_status,
                        headers=headers)


class Negotiate:
    """Refuse a client that speaks a newer API than this server (a plain ASGI middleware:
    it reads one header and passes everything else through untouched)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            wanted = client = None
            for key, value in scope["headers"]:
                if key == b"x-mloop-api":
                    wanted = value.decode("latin-1").strip()
                elif key == b"x-mloop-version":
                    client = value.decode("latin-1")[:40]
            if wanted is not None and wanted != str(API_VERSION):
                response = JSONResponse(error_body(
                    "version_mismatch",
                    f"This client (mloop {client or '?'}) speaks API v{wanted[:10]}; this "
                    f"server (mloop {__version__}) speaks v{API_VERSION}. Use a client of the "
                    f"server's release (pip install 'mloop=={__version__}') or upgrade the "
                    "server."), status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def no_auth(request: Request, need: str) -> Identity:
    """Everyone is an admin: the local, loopback-only server of a single user."""
    return Identity("local", "admin")


def create_app(project: Project, *, authorize: Authorize = no_auth,
               audit: Any = None, routers: list[Any] | None = None,
               closing: list[Callable[[], None]] | None = None,
               title: str = "mloop server") -> FastAPI:
    """The team server's application over ``project``'s stores.

    ``authorize`` checks each request's credentials and role (:mod:`mloop.server.auth`;
    :func:`no_auth` for a single user on loopback); ``audit(identity, action, target,
    status)`` records every write; ``routers`` are mounted as they are (the mlflow REST
    subset, the object store, the login pages); ``closing`` run at shutdown, in order.
    """
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.utils import get_openapi
    from starlette.exceptions import HTTPException

    from mloop.server import rpc

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for close in closing or []:
            close()

    app = FastAPI(title=title, version=__version__, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan)
    api = rpc.make_router(project, authorize, audit)
    for router in routers or []:  # first: they are few, the API's routes are many
        app.include_router(router)
    app.include_router(api)
    defs = getattr(api, "openapi_defs", {})

    @app.get("/api/v1/server-info", tags=["server"])
    def server_info() -> dict[str, Any]:
        """The server's mloop release and API version (no credentials needed)."""
        return {"mloop": __version__, "api": API_VERSION}

    @app.get("/health", tags=["server"], response_class=PlainTextResponse)
    def health() -> str:
        """Liveness, as MLflow's server answers it (``OK``; no credentials needed)."""
        return "OK"

    @app.get("/version", tags=["server"], response_class=PlainTextResponse)
    def version() -> str:
        """The server's release (MLflow clients ask; no credentials needed)."""
        return __version__

    @app.get("/api/v1/whoami", tags=["server"])
    def whoami(request: Request) -> dict[str, Any]:
        """Who the presented credentials say the caller is."""
        who = authorize(request, "reader")
        return {"name": who.name, "role": who.role, "token_id": who.token_id}

    app.add_middleware(Negotiate)

    async def mloop_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MloopError)
        body = error_body(exc.code, exc.message)
        body["error"]["type"] = type(exc).__name__
        headers = {}
        retry = getattr(exc, "retry_after", None)
        if retry is not None:
            headers["Retry-After"] = str(max(1, int(retry + 0.999)))
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(body, status_code=exc.http_status, headers=headers)

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                          for e in exc.errors()[:5])
        return JSONResponse(error_body("malformed_request", f"Invalid request: {where}."),
                            status_code=400)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404 and request.url.path.startswith("/api/v1/"):
            message = (f"No route {request.url.path} on this server (mloop {__version__}); "
                       "a newer client may need a newer server.")
        return JSONResponse(error_body(code, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal", "Internal error (logged by the server)."),
                            status_code=500)

    app.add_exception_handler(MloopError, mloop_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                                 description="The mloop API: every repository method, "
                                 "`POST /api/v1/<repository>/<method>`.")
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.project = project
    return app
