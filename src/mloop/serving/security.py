"""What ``mloop serve`` checks before a request reaches a route.

In order, answering at the first failure (JSON ``{"error": …}``; the body is not read):

1. **Host** (DNS rebinding: a web page whose name resolves to 127.0.0.1 would otherwise
   talk to a local server as if it were its own site): the ``Host`` header must name
   127.0.0.1, localhost, ::1, the address the server binds (unless 0.0.0.0 or ::) or an
   ``--allowed-host`` (``*.example.com`` for subdomains, ``*`` for any: only behind a
   proxy that checks Host itself). 400 without a usable Host, 421 for another name. The
   health routes answer any Host: probes address a server by its IP.
2. **Origin** on requests that change things: a browser names the page that sent the
   request; a page on another site gets 403.
3. **Token** (with ``--token-file``): writes need a ``writer`` token; with ``--protect
   inference`` inference needs ``predictor``, with ``--protect all`` reads need
   ``reader`` (health stays open). 401 with ``WWW-Authenticate`` when the token is
   missing or not valid, 403 when its role is not enough. See :mod:`mloop.core.tokens`.
4. **Content type** of every POST: JSON (``application/json`` or ``…+json``, UTF-8) — a
   web page can post ``text/plain`` or a form anywhere without asking, but JSON only with
   the server's consent (CORS), which this server never gives. 415 otherwise. The V2
   inference routes also take the binary tensor extension (``application/octet-stream``
   with ``Inference-Header-Content-Length``) and no Content-Type at all, which is what
   ``tritonclient`` sends (browsers always name one, and step 2 stops them anyway).
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from mloop.core.redact import get_logger
from mloop.core.tokens import ForbiddenError, TokenError, TokenFile, authorize
from mloop.errors import (
    InvalidInputError,
    MalformedRequestError,
    MisdirectedRequestError,
    MloopError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECT = ("writes", "inference", "all")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HEALTH = frozenset({"/v2/health/live", "/v2/health/ready"})
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_INFERENCE = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?/infer|/predict|/invocations")
_V2_INFER = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?/infer")
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9_.-]+))(?::[0-9]{1,5})?")
log = get_logger("mloop.serving.security")


@dataclass
class Security:
    """The checks' settings (plain data: ``mloop serve --workers N`` passes it as JSON)."""

    host: str = "127.0.0.1"  # the address the server binds
    allowed_hosts: list[str] = field(default_factory=list)
    token_file: str | None = None
    protect: str = "writes"  # what needs a token: writes, inference (and writes), all

    def __post_init__(self) -> None:
        if self.protect not in PROTECT:
            from mloop.errors import InvalidInputError

            raise InvalidInputError(f"protect must be one of {', '.join(PROTECT)}, not "
                                    f"{self.protect!r}.")
        self.allowed_hosts = list(self.allowed_hosts)
        for pattern in self.allowed_hosts:
            host_pattern(pattern)  # a bad --allowed-host fails at start, not per request

    def host_patterns(self) -> frozenset[str]:
        """The names the Host check accepts."""
        names = set(LOOPBACK)
        bound = host_pattern(self.host) if self.host.strip() else ""
        if bound not in ("0.0.0.0", "::", ""):  # every interface: no single name
            names.add(bound)
        names.update(host_pattern(h) for h in self.allowed_hosts)
        return frozenset(names)


def host_pattern(value: str) -> str:
    """An allowed host as the Host check compares it: lower case, no port, no brackets,
    addresses in their short form; ``*`` and ``*.domain`` kept. ``InvalidInputError``
    when it cannot be a host."""
    from mloop.errors import InvalidInputError

    text = value.strip().lower()
    if text == "*":
        return text
    try:
        return ipaddress.ip_address(text).compressed  # also a bare IPv6 address
    except ValueError:
        pass
    wild = text.startswith("*.")
    name = host_name(text[2:] if wild else text)
    if name is None:
        raise InvalidInputError(f"{value!r} is not a host name or address (allowed hosts "
                                "look like example.com, *.example.com, 10.0.0.5, [::1] "
                                "or *).")
    return f"*.{name}" if wild else name


def host_name(header: str) -> str | None:
    """The host of a ``Host`` header (no port, brackets or trailing dot; an IPv6 address
    in its short form), lower case; ``None`` when the header is not a host."""
    match = _HOST.fullmatch(header.strip().lower())
    if match is None:
        return None
    if match.group("v6") is not None:
        try:
            return ipaddress.IPv6Address(match.group("v6")).compressed
        except ValueError:
            return None
    name = match.group("name").rstrip(".")
    return name or None


def host_allowed(name: str, patterns: Iterable[str]) -> bool:
    """True when ``name`` is one of ``patterns`` (``*.domain``: a subdomain; ``*``: any)."""
    return any(pattern in ("*", name) or (pattern.startswith("*.") and
                                          name.endswith(pattern[1:])) for pattern in patterns)


def needed_role(method: str, path: str, protect: str) -> str | None:
    """The least role a request needs when the server has tokens (``None``: open)."""
    if method in _SAFE:
        return "reader" if protect == "all" else None
    if _INFERENCE.fullmatch(path):
        return "predictor" if protect in ("inference", "all") else None
    return "writer"


def content_type_problem(headers: dict[str, str], path: str) -> str | None:
    """Why the body of a POST to ``path`` is refused (415), or ``None``."""
    raw = headers.get("content-type")
    v2 = _V2_INFER.fullmatch(path) is not None
    if raw is None:
        return None if v2 else "send the body as JSON, with Content-Type: application/json"
    media, _, params = raw.partition(";")
    media = media.strip().lower()
    kind, _, subtype = media.partition("/")
    if kind == "application" and (subtype == "json" or subtype.endswith("+json")):
        charset = _charset(params)
        if charset not in (None, "utf-8", "utf8"):
            return f"JSON must be UTF-8, not {charset[:40]!r}"
        return None
    if v2 and media == "application/octet-stream" and \
            "inference-header-content-length" in headers:
        return None  # the V2 binary tensor extension
    extra = (" (or the binary tensor extension: application/octet-stream with "
             "Inference-Header-Content-Length)") if v2 else ""
    return (f"Content-Type {media[:80]!r} is not accepted: send JSON with Content-Type: "
            f"application/json{extra}")


def _charset(params: str) -> str | None:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def bearer(headers: dict[str, str]) -> str | None:
    """The token of ``Authorization: Bearer …`` (``""`` for another scheme)."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Refusal(InvalidInputError):
    """A failed check, answered with the HTTP status of ``kind`` (a class of the error
    tree), the message and ``headers``."""

    code = "refused"

    def __init__(self, kind: type[MloopError], message: str,
                 headers: dict[str, str] | None = None, *, quiet: bool = False) -> None:
        # mloop's own instructions (and token errors, redacted already): unredacted, as
        # they always were (so not MloopError.__init__), since redaction would hide
        # "Bearer <token>" in "send Authorization: Bearer <token>"
        Exception.__init__(self, message)
        self.message = message
        self.kind = kind
        self.http_status = kind.http_status
        self.headers = headers or {}
        self.quiet = quiet  # a plain client mistake, not worth a log line

    @property
    def status(self) -> int:
        return self.http_status


class Guard:
    """ASGI middleware running the checks above before the application."""

    def __init__(self, app: ASGIApp, security: Security, *, max_body: int = 16 << 20) -> None:
        self.app = app
        self.security = security
        self.max_body = max_body
        self.hosts = security.host_patterns()
        self.tokens = TokenFile(security.token_file) if security.token_file else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH:
            await self.app(scope, receive, send)
            return
        try:
            self.check(scope)
            self._size(scope)
        except Refusal as refusal:
            if not refusal.quiet:
                client = scope.get("client") or ("?", 0)
                log.warning("refused %s %s from %s: %s", scope["method"], scope["path"],
                            client[0], refusal.message)
            # a body over the limit is read to its end (and dropped), so the client sees
            # the answer rather than a reset in the middle of its upload
            await _answer(receive, send, refusal,
                          None if refusal.kind is PayloadTooLargeError else self.max_body)
            return
        await self.app(scope, receive, send)

    def _size(self, scope: Scope) -> None:
        """413 for a declared body larger than the server takes (here, in the one ASGI
        middleware, rather than in a per-request middleware of the framework's)."""
        for key, value in scope.get("headers") or ():
            if key.lower() == b"content-length":
                if value.isdigit() and int(value) > self.max_body:
                    raise Refusal(PayloadTooLargeError, f"The body is larger than "
                                  f"{self.max_body} bytes (set --max-body-mb).",
                                  {"connection": "close"}, quiet=True)
                return

    def check(self, scope: Scope) -> None:
        """Raise :class:`Refusal` for the first check the request fails."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in reversed(scope.get("headers") or [])}  # the first one wins
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        self._host(headers)
        if method not in _SAFE:
            self._origin(headers)
        need = needed_role(method, path, self.security.protect) if self.tokens else None
        if need is not None:
            self._token(headers, need, scope)
        if method in ("POST", "PUT", "PATCH"):
            problem = content_type_problem(headers, path)
            if problem is not None:
                raise Refusal(UnsupportedMediaTypeError,
                              problem[0].upper() + problem[1:] + ".",
                              {"accept": "application/json"}, quiet=True)

    def _host(self, headers: dict[str, str]) -> None:
        header = headers.get("host")
        name = host_name(header) if header is not None else None
        if name is None:
            raise Refusal(MalformedRequestError,
                          "The request needs a Host header naming this server.")
        if not host_allowed(name, self.hosts):
            raise Refusal(MisdirectedRequestError,
                          f"This server does not answer to the host {name[:100]!r}; "
                          f"if it should, start it with --allowed-host {name[:100]}.")

    def _origin(self, headers: dict[str, str]) -> None:
        origin = headers.get("origin")
        if origin is None:
            return
        try:
            host = urllib.parse.urlsplit(origin.strip()).hostname
        except ValueError:
            host = None
        if host is None or not host_allowed(host.rstrip("."), self.hosts):
            raise Refusal(ForbiddenError, "Requests from web pages of other sites are "
                                          "refused (the Origin header names a host this "
                                          "server does not answer to).")

    def _token(self, headers: dict[str, str], need: str, scope: Scope) -> None:
        assert self.tokens is not None
        realm = 'Bearer realm="mloop"'
        token = bearer(headers)
        if not token:
            raise Refusal(TokenError, f"This needs a token with the role {need!r} or above: "
                                      "send Authorization: Bearer <token> (mloop clients "
                                      "read MLOOP_TOKEN or `mloop token login`).",
                          {"www-authenticate": realm})
        try:
            record = self.tokens.verify(token)
            authorize(record, need)
        except TokenError as exc:
            if self.tokens.problem:
                log.error("the token file is unusable, so every token is refused: %s",
                          self.tokens.problem)
            raise Refusal(TokenError, exc.message, {"www-authenticate": f'{realm}, error='
                                                    '"invalid_token"'}) from None
        except ForbiddenError as exc:
            raise Refusal(ForbiddenError, exc.message, {
                "www-authenticate": f'{realm}, error="insufficient_scope", scope="{need}"'}
                          ) from None
        scope.setdefault("state", {})["token_id"] = record.id


async def _answer(receive: Receive, send: Send, refusal: Refusal, limit: int | None) -> None:
    """Send the refusal; the body is read and dropped first (up to ``limit`` bytes, None:
    all of it) so the client sees the answer, not a reset in the middle of its upload."""
    seen, complete = 0, False
    while limit is None or seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            break
        seen += len(message.get("body", b""))
        if not message.get("more_body"):
            complete = True
            break
    body = json.dumps({"error": refusal.message}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in refusal.headers.items()]
    if not complete and "connection" not in refusal.headers:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
