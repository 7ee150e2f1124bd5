"""``/api/v1/<repository>/<method>``: the Backend protocol over HTTP, one route per method.

Each route takes a JSON object of the method's parameters, checks it against the
method's type hints (:mod:`mloop.server.codec`: a wrong type, an unknown field, a value
out of range is a 400 naming the field), checks the caller's role
(:mod:`mloop.server.methods`), runs the method on the server's own SQL repositories as
the caller (:func:`mloop.core.identity.acting_as`), and answers ``{"result": …}``.
What the method raises on purpose (``mloop.errors``) becomes the error's status with
``{"error": {"code", "message", "type"}}``, so the client raises the same class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mloop.core.identity import Identity, acting_as
from mloop.errors import ForbiddenError, PayloadTooLargeError
from mloop.repositories import backend
from mloop.server import methods as catalogue
from mloop.server.codec import DecodeError, decode, dumps, encode, loads, schema_of

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.server.app import Authorize

MAX_BODY = 256 * 1024 * 1024  # one request: a large batch of points or traffic rows

Audit = Callable[[Identity, str, str, int], None]

# What every route answers when the call fails: the error's code (``not_found``,
# ``invalid_input``, …), a message for a person, and the mloop.errors class it stands for.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error", "type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "type": {"type": "string"}}}}}
ERROR_RESPONSES: dict[str, Any] = {
    status: {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
    for status, description in (
        ("4XX", "The caller's mistake: a malformed request (400), missing or wrong "
                "credentials (401, 403), something that does not exist (404), a conflict "
                "(409), a body too large (413), a value the method refuses (422), too many "
                "requests (429)."),
        ("5XX", "The server could not answer: the store is unavailable (503) or full (507)."))}


def _body_schema(method: catalogue.Method, defs: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, param in list(method.signature.parameters.items())[1:]:
        props[name] = schema_of(method.parameters[name], defs)
        if param.default is param.empty:
            required.append(name)
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


def decode_arguments(method: catalogue.Method, body: Any) -> dict[str, Any]:
    """The keyword arguments of a call, from the request's JSON object."""
    if not isinstance(body, dict):
        raise DecodeError("The request body is a JSON object of the method's parameters.")
    unknown = body.keys() - method.parameters.keys()
    if unknown:
        raise DecodeError(f"Unknown parameter(s) of {method.repository}.{method.name}: "
                          f"{', '.join(sorted(unknown))}.")
    args: dict[str, Any] = {}
    for name, param in list(method.signature.parameters.items())[1:]:
        if name in body:
            args[name] = decode(method.parameters[name], body[name], name)
        elif param.default is param.empty:
            raise DecodeError(f"Missing parameter {name!r} of "
                              f"{method.repository}.{method.name}.")
    return args


def _as_caller(method: catalogue.Method, args: dict[str, Any], who: Identity) -> None:
    """Check argument-dependent roles and put the caller's name where a call says who acts
    (a server that knows its callers does not take their word for it)."""
    if (method.repository, method.name) == ("models", "set_status") and str(
            args.get("status")) in catalogue.APPROVAL_STATUSES and not who.allows("approver"):
        raise ForbiddenError(f"Approving a model version needs the approver role; this "
                             f"token's role is {who.role}.")
    if who.token_id is None:
        return
    for name in catalogue.IDENTITY_PARAMETERS & args.keys():
        args[name] = who.name
    if (method.repository, method.name) == ("runs", "create"):  # a new run's user
        args["run"] = dataclasses.replace(args["run"], user=who.name)


def make_router(project: Project, authorize: Authorize,
                audit: Audit | None = None) -> APIRouter:
    """The routes of every served repository method, over ``project``'s repositories."""
    router = APIRouter(tags=["api"])
    repos = backend(project)
    defs: dict[str, Any] = {}

    for repository in catalogue.REPOSITORIES:
        for method in catalogue.methods(repository).values():
            body_schema = _body_schema(method, defs)
            result_schema = {"type": "object", "properties": {
                "result": schema_of(method.returns, defs)}, "required": ["result"]}
            router.add_api_route(
                method.path, _endpoint(repos, method, authorize, audit), methods=["POST"],
                name=f"{repository}.{method.name}", summary=f"{repository}.{method.name}",
                description=f"{method.doc}\n\nRole: `{method.role}` or above.",
                response_class=Response,
                openapi_extra={
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": body_schema}}},
                    "responses": {"200": {"description": "The method's result.", "content": {
                        "application/json": {"schema": result_schema}}}, **ERROR_RESPONSES},
                })
    defs["Error"] = ERROR_SCHEMA
    router.openapi_defs = defs  # type: ignore[attr-defined]  # merged by the app
    return router


def _endpoint(repos: Any, method: catalogue.Method, authorize: Authorize,
              audit: Audit | None) -> Callable[[Request], Any]:
    writes = method.role != "reader"

    async def endpoint(request: Request) -> Response:
        who = authorize(request, method.role)
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise PayloadTooLargeError(f"A request body may hold at most {MAX_BODY} bytes.")
        body = loads(await request.body() or b"{}")
        args = decode_arguments(method, body)
        _as_caller(method, args, who)
        call = getattr(getattr(repos, method.repository), method.name)

        def run() -> Any:
            with acting_as(who):
                return call(**args)

        status = 500
        try:
            result = await run_in_threadpool(run)
            status = 200
        except Exception as exc:
            status = getattr(exc, "http_status", 500)
            raise
        finally:
            if writes and audit is not None:
                audit(who, f"{method.repository}.{method.name}", _target(args), status)
        return Response(dumps({"result": encode(result)}), media_type="application/json")

    endpoint.__name__ = f"{method.repository}_{method.name}"
    return endpoint


def _target(args: dict[str, Any]) -> str:
    """A short note of what a write touched, for the audit log (names and ids only)."""
    for key in ("name", "run_id", "alert_id", "decision_id", "batch_id", "table", "pipeline"):
        value = args.get(key)
        if isinstance(value, (str, int)):
            return f"{key}={str(value)[:200]}"
    return ""
