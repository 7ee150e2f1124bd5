"""The UI application: server-rendered pages over one project, mounted at ``/ui``.

``mloop ui`` serves it alone on loopback (:func:`standalone`); ``mloop server`` mounts the
same application behind its tokens and sessions (:func:`make_ui` with a
:class:`~mloop.server.ui.guard.ServerGuard`). Page handlers live in ``pages/``, one module
a section; each reads through the project's domain functions and repositories and renders
a template of ``templates/``.
"""

from __future__ import annotations

import contextlib
import importlib
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware

from mloop._version import __version__
from mloop.core.identity import Identity, acting_as
from mloop.core.redact import get_logger
from mloop.errors import ForbiddenError, InvalidInputError, MloopError, TokenError
from mloop.server.forms import read_form
from mloop.server.ui import assets as static_assets
from mloop.server.ui.guard import CSRF_FIELD, Guard, LocalGuard, LoginRequired
from mloop.server.ui.render import NAV, PREFIX, Context, environment

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.server.ui")
T = TypeVar("T")
MAX_FORM = 64 * 1024  # bytes: a label, a reason, a few ids
PAGES = ("home", "runs", "data", "models", "deployments", "monitoring", "pipelines",
         "lineage", "labels")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; frame-src 'self'; frame-ancestors 'self'; "
       "form-action 'self'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                    "referrer-policy": "same-origin", "x-frame-options": "SAMEORIGIN"}


def project_of(request: Request) -> Project:
    return request.app.state.project


def view(request: Request) -> Context:
    """The page's shared context (a dependency of every page handler)."""
    guard: Guard = request.app.state.guard
    who = guard.viewer(request)
    section = request.url.path[len(PREFIX):].strip("/").split("/", 1)[0] or "home"
    return Context(request, who, guard.csrf(request), static_assets.load(),
                   request.app.state.local, section)


View = Depends(view)


async def form_of(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form (the first of each name; at most :data:`MAX_FORM`
    bytes)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise InvalidInputError("Send the form urlencoded (as the page's own form does).")
    return await read_form(request, MAX_FORM, InvalidInputError)


async def change(request: Request, need: str) -> tuple[Identity, dict[str, str]]:
    """The form of a change and who makes it, checked by the guard (Host, CSRF, role)."""
    fields = await form_of(request)
    guard: Guard = request.app.state.guard
    identity = guard.change(request, need, fields.get(CSRF_FIELD))
    return identity, fields


async def as_caller(identity: Identity, work: Callable[[], T]) -> T:
    """Run a change's domain call in a worker thread (a store call must not stall the
    event loop), as ``identity``."""
    from starlette.concurrency import run_in_threadpool

    def run() -> T:
        with acting_as(identity):
            return work()

    return await run_in_threadpool(run)


def back(request: Request, fields: dict[str, str], default: str, message: str = "") -> Response:
    """After a change: see the page again (303), with ``message`` shown once."""
    target = fields.get("next") or default
    if not target.startswith(PREFIX + "/") and target != PREFIX:
        target = default
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc:
        target = default
    if message:
        target, hash_, fragment = target.partition("#")
        target += ("&" if "?" in target else "?") + urllib.parse.urlencode({"done": message})
        target += hash_ + fragment
    response = RedirectResponse(target, status_code=303)
    response.headers["cache-control"] = "no-store"
    return response


def audit(request: Request, identity: Identity, action: str, target: str | None,
          status: int = 200) -> None:
    recorder = request.app.state.audit
    if recorder is not None:
        recorder(identity, f"ui:{action}", target, status)


def _error_page(request: Request, status: int, heading: str, message: str) -> Response:
    guard: Guard = request.app.state.guard
    who = None
    with contextlib.suppress(MloopError, LoginRequired):
        who = guard.viewer(request)
    ctx = Context(request, who or Identity("?", "reader"), "", static_assets.load(),
                  request.app.state.local)
    path = request.url.path.rstrip("/")
    parent = path.rsplit("/", 1)[0] if path.count("/") > 1 else PREFIX
    body = environment().get_template("error.html").render(
        ctx=ctx, title=heading, heading=heading, message=message, status=status, nav=NAV,
        back=parent + "/" if parent == PREFIX else urllib.parse.quote(parent),
        tables={}, scripts=[], version=__version__)
    return HTMLResponse(body, status_code=status,
                        headers={"cache-control": "no-store", **SECURITY_HEADERS})


class _Headers:
    """A plain ASGI middleware: the security headers on every page the UI answers, and the
    error page for a failure no handler expected (logged, never re-raised: a mounted app
    that re-raises would make its parent answer a second time on the same connection)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.raw = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.raw if k not in names]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            request = Request(scope)
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            if not started:
                response = _error_page(request, 500, "Something went wrong",
                                       "Internal error (logged by the server).")
                await response(scope, receive, send)


def make_ui(project: Project, guard: Guard, *, local: bool = False,
            audit_to: Callable[[Identity, str, str | None, int], None] | None = None
            ) -> FastAPI:
    """The UI application over ``project`` (mount it at :data:`PREFIX`)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.project = project
    app.state.guard = guard
    app.state.local = local
    app.state.audit = audit_to
    bundle = static_assets.load()

    @app.get("/static/{version}/{name:path}", include_in_schema=False)
    def static(request: Request, version: str, name: str) -> Response:
        return bundle.respond(request, name)

    for name in PAGES:  # every page route sees the guard first, whether it asks or not
        module = importlib.import_module(f"mloop.server.ui.pages.{name}")
        app.include_router(module.router, dependencies=[View])

    async def login_required(request: Request, exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urllib.parse.urlencode({"next": target}),
                                status_code=303)

    async def mloop_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MloopError)
        if isinstance(exc, TokenError):
            return _error_page(request, 401, "Log in", exc.message)
        if isinstance(exc, ForbiddenError):
            return _error_page(request, 403, "Not allowed", exc.message)
        heading = "Not found" if exc.http_status == 404 else (
            "Cannot do that" if exc.http_status < 500 else "Something went wrong")
        if exc.http_status >= 500:
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error_page(request, exc.http_status, heading, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error_page(request, 404, "Not found",
                               f"Nothing lives at {request.url.path}.")
        return _error_page(request, exc.status_code, "Cannot do that", str(exc.detail))

    async def bad_request(request: Request, exc: Exception) -> Response:
        from fastapi.exceptions import RequestValidationError

        assert isinstance(exc, RequestValidationError)
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                          for e in exc.errors()[:5])
        return _error_page(request, 400, "Cannot do that", f"Invalid request: {where}.")

    from fastapi.exceptions import RequestValidationError

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(MloopError, mloop_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(_Headers)
    return app


def standalone(project: Project, *, hosts: tuple[str, ...] | None = None) -> FastAPI:
    """``mloop ui``: the UI alone, for the local user, with ``/`` leading to it."""
    guard = LocalGuard(hosts) if hosts else LocalGuard()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        project.close()

    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    mount(root, make_ui(project, guard, local=True))
    return root


def mount(app: FastAPI, ui: FastAPI) -> None:
    """Mount ``ui`` at :data:`PREFIX` of ``app``, with ``/`` leading to it."""

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app.mount(PREFIX, ui)
