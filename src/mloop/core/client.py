"""The one HTTP client every part of mloop uses to talk to an mloop server.

It sends JSON, adds ``Authorization: Bearer <token>`` when a token is known, and turns the
server's answers into mloop errors (401 → :class:`~mloop.core.tokens.TokenError`, 403 →
:class:`~mloop.core.tokens.ForbiddenError`, other 4xx → the matching error with the
server's message, 5xx and unreachable servers → ``ServiceUnavailableError``).

The token comes from ``MLOOP_TOKEN``, else from the user's credentials file
(``[servers."URL"] token = …``, stored by ``mloop login URL``) — never from a
command-line argument, where other users and shell histories can read it. Redirects are
not followed: following one would hand the token to whatever host the answer names.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from mloop.core.redact import get_logger
from mloop.errors import (
    ConflictError,
    InvalidInputError,
    MloopError,
    NotFoundError,
    ServiceUnavailableError,
)

TOKEN_ENV = "MLOOP_TOKEN"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
log = get_logger("mloop.client")

API_VERSION = 1  # the /api/v<N> of the team server; a newer client is refused with a 400


def client_headers(token: str | None) -> dict[str, str]:
    """What every request of an mloop client to the team server carries: who it is, the
    API version it speaks (the server refuses a newer one clearly) and its token."""
    from mloop._version import __version__

    headers = {"User-Agent": f"mloop/{__version__}", "X-Mloop-Api": str(API_VERSION),
               "X-Mloop-Version": __version__}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def warn_if_plain_http(url: str, token: str | None) -> None:
    """Warn before a token goes over plain HTTP to another machine."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if token and url.startswith("http://") and host not in _LOOPBACK:
        log.warning("Sending a token to %s over plain HTTP: anyone on the network path "
                    "can read it. Put the server behind HTTPS.", url)


def normalize_url(url: str) -> str:
    """``url`` as the key of the credentials file: scheme and host in lower case, no
    trailing slash. :class:`InvalidInputError` unless it is an http(s) URL without
    user-info."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{url!r} is not a server URL (http://host:port).")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("Put no user or token in the server URL: set MLOOP_TOKEN "
                                "or store the token with `mloop token login URL`.")
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(),
                                    parts.path.rstrip("/"), "", ""))


def server_token(url: str) -> str | None:
    """The token to send to ``url`` (see :func:`mloop.core.credentials.server_token`)."""
    from mloop.core.credentials import server_token as found

    return found(url)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx answer


_OPENER = urllib.request.build_opener(_NoRedirect)


class ServerClient:
    """JSON requests to one mloop server, with its token."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = normalize_url(url)
        self.token = token if token is not None else server_token(self.url)
        self.timeout = timeout
        warn_if_plain_http(self.url, self.token)

    def post(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``path``; the decoded JSON answer."""
        return self.request("POST", path, body)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request; the decoded JSON answer, or an mloop error for anything else."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + "/" + path.lstrip("/"), data=data,
                                     headers=headers, method=method)
        try:
            with _OPENER.open(req, timeout=self.timeout) as answer:
                text = answer.read()
        except urllib.error.HTTPError as exc:
            raise self._error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailableError(f"Cannot reach the mloop server at {self.url}: "
                                          f"{reason}. Is it running?") from None
        try:
            return json.loads(text) if text else None
        except ValueError:
            raise ServiceUnavailableError(f"{self.url} did not answer with JSON; is it an "
                                          "mloop server?") from None

    def _error(self, exc: urllib.error.HTTPError) -> MloopError:
        from mloop.core.tokens import ForbiddenError, TokenError

        status = exc.code
        message = _message(exc)
        if 300 <= status < 400:
            return InvalidInputError(f"{self.url} redirected to {exc.headers.get('location')}"
                                     "; use that URL (redirects are not followed, so the "
                                     "token goes nowhere else).")
        if status == 401:
            hint = ("The token was refused" if self.token else "This server needs a token")
            return TokenError(f"{hint} ({message}). Set {TOKEN_ENV} or store the token with "
                              f"`mloop login {self.url}`.")
        if status == 403:
            return ForbiddenError(message)
        kind: type[MloopError] = {404: NotFoundError, 409: ConflictError}.get(
            status, InvalidInputError if status < 500 else ServiceUnavailableError)
        return kind(f"{self.url} answered {status}: {message}")


def _message(exc: urllib.error.HTTPError) -> str:
    """The server's error message: ``{"error": "…"}`` or ``{"error": {"message": …}}``."""
    try:
        body = json.loads(exc.read() or b"null")
    except (ValueError, OSError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error) if error else exc.reason or f"HTTP {exc.code}"
