"""The federation's HTTP(S) server: the routes of :mod:`.protocol` over a :class:`Coordinator`.

A small Starlette application (the protocol is a handful of routes moving binary
bodies; FastAPI's validation layer would add cost and nothing here). Every route but
``/fl/v1/health`` needs ``Authorization: Bearer <token>``: a token given as
``NAME=SECRET`` admits only the client called NAME, a bare ``SECRET`` admits any name.
With ``tls_ca`` the TLS layer also demands a client certificate signed by that CA
(mutual TLS). Uploads are read in chunks into a spooled temporary file, bounded by
``max_upload``; a client that disconnects mid-upload leaves nothing behind, and its
task stays open until it retries or the round's timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mloop.core.net import listen_socket
from mloop.core.redact import get_logger
from mloop.errors import (
    ConfigError,
    InvalidInputError,
    MalformedRequestError,
    MloopError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    TokenError,
)
from mloop.federated import arrays
from mloop.federated.coordinator import Coordinator, RoundRecord, run_with
from mloop.federated.protocol import JSON, MAX_WAIT, NPZ, PREFIX, SESSION_HEADER

log = get_logger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Access:
    """Who may talk to the server: tokens (hashed at once), optionally bound to names."""

    tokens: dict[bytes, str | None] = field(default_factory=dict)
    #: no tokens: every client that passed mutual TLS is admitted (``--tls-ca`` alone)
    certificates_only: bool = False

    @classmethod
    def parse(cls, specs: Iterable[str], *, certificates_only: bool = False) -> Access:
        """From ``SECRET`` or ``NAME=SECRET`` strings (``--token``); with none and
        ``certificates_only``, the TLS layer's client certificates are the admission."""
        tokens: dict[bytes, str | None] = {}
        for spec in specs:
            name, sep, secret = spec.partition("=")
            if not sep:
                name, secret = "", spec
            if len(secret) < 16:
                raise ConfigError("a federation token must be at least 16 characters; make "
                                  "one with: python -c 'import secrets; "
                                  "print(secrets.token_urlsafe(24))'")
            tokens[_digest(secret)] = name or None
        if not tokens and not certificates_only:
            raise ConfigError("give the clients' token (--token) or demand client "
                              "certificates (--tls-ca)")
        return cls(tokens, certificates_only=certificates_only and not tokens)

    def check(self, header: str | None) -> str | None:
        """The name the token binds (None: any), or :class:`TokenError`."""
        if self.certificates_only:
            return None
        scheme, _, secret = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise TokenError("send the federation's token: Authorization: Bearer <token>")
        digest = _digest(secret.strip())
        for known, name in self.tokens.items():
            if hmac.compare_digest(known, digest):
                return name
        raise TokenError("this token is not one of the federation's")


class ClientGone(MalformedRequestError):
    """The client went away mid-request: nobody hears the answer, and it may retry."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _error(exc: MloopError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse({"error": {"code": exc.code, "message": str(exc)}},
                        status_code=exc.http_status, headers=headers)


def create_app(coordinator: Coordinator, access: Access, *,
               max_upload: int = 2 << 30) -> Starlette:
    """The ASGI application serving ``coordinator`` to clients admitted by ``access``."""

    def bound_name(request: Request) -> str | None:
        return access.check(request.headers.get("authorization"))

    def slot_of(request: Request) -> Any:
        bound = bound_name(request)
        name = request.query_params.get("client", "")
        if bound is not None and name != bound:
            raise TokenError("this token belongs to another client name")
        return coordinator.slot(name, request.headers.get(SESSION_HEADER, ""))

    async def join(request: Request) -> Response:
        bound = bound_name(request)
        body = await _json(request, 64 << 10)
        if not isinstance(body, dict):
            raise InvalidInputError("join with {\"name\": \"<client name>\", \"properties\": {…}}")
        name = body.get("name")
        if bound is not None:  # a name-bound token: its name, whatever the client guessed
            name = name or bound
            if name != bound:
                raise TokenError("this token belongs to another client name")
        name = name or body.get("suggested")
        if not isinstance(name, str):
            raise InvalidInputError("join with {\"name\": \"<client name>\", \"properties\": {…}}")
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise InvalidInputError("properties must be a JSON object")
        session = await coordinator.join(name, props)
        return JSONResponse({"client": name, "session": session,
                             "rounds": coordinator.settings.rounds})

    async def task(request: Request) -> Response:
        slot = slot_of(request)
        try:
            wait = min(float(request.query_params.get("wait", "20")), MAX_WAIT)
        except ValueError:
            raise InvalidInputError("wait must be a number of seconds") from None
        return JSONResponse(await coordinator.next_task(
            slot, request.query_params.get("after") or None, max(wait, 0.0)))

    async def weights(request: Request) -> Response:
        bound_name(request)
        try:
            version = int(request.path_params["version"])
        except ValueError:
            raise InvalidInputError("the weights version is a round number") from None
        return Response(coordinator.weights(version), media_type=NPZ)

    async def alive(request: Request) -> Response:
        slot_of(request)  # a heartbeat while the client works on a long task
        return JSONResponse({"ok": True})

    async def result(request: Request) -> Response:
        slot = slot_of(request)
        task_id = request.path_params["task"]
        coordinator.expect(slot, task_id)  # 409 before reading a body nobody waits for
        try:
            with coordinator.busy(slot):  # a long upload is not silence
                size, answer = await read_answer(request)
        except ClientGone:
            raise
        except InvalidInputError as exc:  # not an answer: this client's failure this round
            coordinator.reject(slot, task_id, exc)
            raise
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            coordinator.refuse(slot, task_id, f"the client raised: {answer['error']}")
            return JSONResponse({"ok": True})
        coordinator.submit(slot, task_id, answer, size)
        return JSONResponse({"ok": True})

    async def read_answer(request: Request) -> tuple[int, Any]:
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind == NPZ:
            size, spooled = await _spool(request, max_upload)
            with spooled:
                return size, await asyncio.to_thread(arrays.decode, spooled)
        if kind == JSON:
            return 0, await _json(request, 64 << 20)
        raise MalformedRequestError(f"send results as {NPZ} or {JSON}")

    async def health(request: Request) -> Response:
        return JSONResponse({"round": coordinator.version, "rounds": coordinator.settings.rounds,
                             "clients": len(coordinator.clients),
                             "finished": coordinator.finished})

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, MloopError) and exc.http_status < 500:
            return _error(exc)
        log.error("federation request failed: %s: %s", type(exc).__name__, exc)
        return JSONResponse({"error": {"code": "internal", "message": "internal error"}},
                            status_code=500)

    routes = [Route(f"{PREFIX}/join", join, methods=["POST"]),
              Route(f"{PREFIX}/task", task, methods=["GET"]),
              Route(f"{PREFIX}/weights/{{version}}", weights, methods=["GET"]),
              Route(f"{PREFIX}/result/{{task}}", result, methods=["POST"]),
              Route(f"{PREFIX}/alive", alive, methods=["POST"]),
              Route(f"{PREFIX}/health", health, methods=["GET"])]
    # MloopError is answered by the routing layer; anything else by the outermost one,
    # which also logs it
    return Starlette(routes=routes, exception_handlers={MloopError: on_error, Exception: on_error})


async def _json(request: Request, limit: int) -> Any:
    _size, spooled = await _spool(request, limit)
    with spooled:
        try:
            return json.loads(spooled.read() or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedRequestError(f"the body is not JSON: {exc}") from None


async def _spool(request: Request, limit: int) -> tuple[int, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the body is over the server's limit of {limit} bytes")
    spooled = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - returned
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"the body is over the server's limit of {limit} "
                                           "bytes")
            spooled.write(chunk)
    except ClientDisconnect:
        spooled.close()
        raise ClientGone("the client disconnected mid-upload") from None
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return size, spooled


@dataclass(frozen=True)
class Listen:
    """Where and how to listen: a bound socket or host/port, and TLS files."""

    host: str = "127.0.0.1"
    port: int = 8090
    sock: socket.socket | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None  # demand client certificates signed by this CA (mTLS)


async def _run_server(server: Any, sockets: list[socket.socket], done: asyncio.Event) -> None:
    """uvicorn's start-up, then stop at once when ``done`` is set.

    ``uvicorn.Server.serve`` looks at ``should_exit`` every 100 ms and its shutdown
    sleeps 100 ms more: fixed costs of every simulation. Here the training is over when
    ``done`` is set (every client was handed its ``done`` task), so the listeners and
    connections close without waiting.
    """
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup(sockets=sockets)
    if server.should_exit:
        raise ServiceUnavailableError("the federation server could not start")
    try:
        await done.wait()
    finally:
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        for task in list(server.server_state.tasks):
            task.cancel()
        for listener in server.servers:
            await listener.wait_closed()


def serve(coordinator: Coordinator, access: Access, listen: Listen, *,
          max_upload: int = 2 << 30,
          on_loop: Callable[[Callable[[str, str], None]], None] | None = None
          ) -> list[RoundRecord]:
    """Serve the federation until its last round, then return the history.

    ``on_loop(lost)`` is called once the event loop runs, with a thread-safe
    ``lost(client, reason)`` that fails a client's open task (a watcher of client
    processes uses it)."""
    import ssl

    import uvicorn

    if bool(listen.tls_cert) != bool(listen.tls_key):
        raise ConfigError("give both --tls-cert and --tls-key for HTTPS")
    if listen.tls_ca and not listen.tls_cert:
        raise ConfigError("--tls-ca (client certificates) needs HTTPS: add --tls-cert/--tls-key")
    if access.certificates_only and not listen.tls_ca:
        raise ConfigError("admitting clients by certificate needs --tls-ca; without it, give "
                          "a token")
    app = create_app(coordinator, access, max_upload=max_upload)
    config = uvicorn.Config(app, host=listen.host, port=listen.port, log_level="warning",
                            access_log=False, lifespan="off", timeout_keep_alive=75,
                            timeout_graceful_shutdown=3,
                            ssl_certfile=listen.tls_cert, ssl_keyfile=listen.tls_key,
                            ssl_ca_certs=listen.tls_ca,
                            ssl_cert_reqs=ssl.CERT_REQUIRED if listen.tls_ca else ssl.CERT_NONE)
    server = uvicorn.Server(config)
    sock = listen.sock if listen.sock is not None else listen_socket(listen.host, listen.port)
    # accepted connections inherit it: without it a response written in two parts waits
    # ~40 ms for the peer's delayed ACK (Nagle), three times a round
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sockets = [sock]

    async def main() -> list[RoundRecord]:
        done = asyncio.Event()
        if on_loop is not None:
            loop = asyncio.get_running_loop()

            def lost(name: str, reason: str) -> None:
                loop.call_soon_threadsafe(partial(coordinator.lost, name, reason, gone=True))

            on_loop(lost)
        return await run_with(coordinator, partial(_run_server, server, sockets, done),
                              done.set)

    return asyncio.run(main())


__all__ = ["Access", "Listen", "create_app", "serve"]
