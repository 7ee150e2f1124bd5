"""How an MLflow route is served: who may call it, its arguments, its errors.

Every route of this package is a plain function ``args -> reply`` registered with
:meth:`Routes.add`: the endpoint checks the caller's role, reads the arguments (a GET's
query string, any other method's JSON body, as the mlflow client sends them), runs the
function in the thread pool as the caller's identity and answers MLflow's error form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mloop.core.identity import Identity, acting_as
from mloop.errors import MloopError
from mloop.server.mlflow import wire

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.server.app import Authorize
    from mloop.server.rpc import Audit

Args = dict[str, Any]
Handler = Callable[[Args], "Args | Response"]
RawHandler = Callable[[Request, Identity], Awaitable[Response]]


def _serve(routes: Routes, request: Request, role: str, handler: Handler,
           args: Args) -> Args | Response:
    """Authorize, then run the handler as the caller (one trip to the thread pool: a
    metric logged is one small request, and each trip costs about as much as the work)."""
    identity = routes.authorize(request, role)
    args.update(request.path_params)
    args["_identity"] = identity
    if role == "reader" or routes.audit is None:
        with acting_as(identity):
            return handler(args)
    status = 500
    try:
        with acting_as(identity):
            reply = handler(args)
        status = reply.status_code if isinstance(reply, Response) else 200
        return reply
    except (wire.MlflowError, MloopError) as exc:
        status = exc.status if isinstance(exc, wire.MlflowError) else exc.http_status
        raise
    finally:
        routes.audit(identity, f"{request.method} {request.url.path}", _target(args), status)


def _target(args: Args) -> str:
    """What an MLflow write touched, for the audit log (an id or a name)."""
    for key in ("run_id", "run_uuid", "name", "model_id", "experiment_id", "path"):
        value = args.get(key)
        if isinstance(value, (str, int)):
            return f"{key}={str(value)[:200]}"
    return ""


def _answer(exc: Exception, path: str) -> Response:
    """An error a route raised, in MLflow's form."""
    if isinstance(exc, wire.MlflowError):
        return wire.error_response(exc.status, exc.code, exc.message)
    assert isinstance(exc, MloopError)
    status, code = wire.translate(exc)
    if status >= 500:
        wire.log.error("mlflow route %s failed: %s", path, exc.message)
    return wire.error_response(status, code, exc.message)


def _name(method: str, path: str) -> str:
    return f"mlflow_{method.lower()}_" + "".join(c if c.isalnum() else "_" for c in path)


class Routes:
    """The MLflow routes over one project, registered on one router."""

    def __init__(self, project: Project, authorize: Authorize,
                 audit: Audit | None = None) -> None:
        self.project = project
        self.authorize = authorize
        self.audit = audit
        self.router = APIRouter()

    def add(self, method: str, path: str, role: str, handler: Handler) -> None:
        """Serve ``handler`` at ``method path`` for callers with at least ``role``."""

        async def endpoint(request: Request) -> Response:
            try:
                args = (wire.query(request) if method == "GET"
                        else await wire.read_json(request))
                reply = await run_in_threadpool(_serve, self, request, role, handler, args)
            except (wire.MlflowError, MloopError) as exc:
                return _answer(exc, path)
            return reply if isinstance(reply, Response) else JSONResponse(reply)

        endpoint.__name__ = _name(method, path)
        self.router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)

    def raw(self, method: str, path: str, role: str, handler: RawHandler) -> None:
        """Serve an ``async`` handler that reads the request itself (streamed bodies)."""

        async def endpoint(request: Request) -> Response:
            try:
                identity = await run_in_threadpool(self.authorize, request, role)
                with acting_as(identity):
                    return await handler(request, identity)
            except (wire.MlflowError, MloopError) as exc:
                return _answer(exc, path)

        endpoint.__name__ = _name(method, path)
        self.router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)

    def get(self, path: str, role: str = "reader") -> Callable[[Handler], Handler]:
        return self._decorator("GET", path, role)

    def post(self, path: str, role: str = "writer") -> Callable[[Handler], Handler]:
        return self._decorator("POST", path, role)

    def patch(self, path: str, role: str = "writer") -> Callable[[Handler], Handler]:
        return self._decorator("PATCH", path, role)

    def delete(self, path: str, role: str = "writer") -> Callable[[Handler], Handler]:
        return self._decorator("DELETE", path, role)

    def _decorator(self, method: str, path: str, role: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(method, path, role, handler)
            return handler
        return register


def identity_of(args: Args) -> Identity:
    """The caller of the request whose arguments these are."""
    found = args.get("_identity")
    assert isinstance(found, Identity)
    return found
