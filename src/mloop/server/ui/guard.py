"""Who is looking at the UI, and may they change what they ask to change.

Two guards answer the same three questions (:class:`Guard`):

* :class:`LocalGuard` — ``mloop ui`` on a laptop: the operating-system user has every
  role, but the UI still binds loopback only, answers only Host headers naming loopback
  (a DNS-rebinding page cannot talk to it) and checks a per-process CSRF token on every
  change (a page of another site cannot make the browser approve a model);
* :class:`ServerGuard` — the UI mounted by ``mloop server``: the caller is the token's
  holder (a browser session cookie from ``/login``, or a bearer token), with that token's
  role; changes need the session's CSRF token and a Host the server answers to, exactly as
  the API's own routes do (:class:`mloop.server.auth.TokenAuth`).

A change's CSRF token comes in the ``X-CSRF-Token`` header (htmx sends it) or the form
field ``csrf`` (the same form works without script).
"""

from __future__ import annotations

import getpass
import hmac
import os
import secrets
from typing import TYPE_CHECKING, Protocol

from mloop.core.identity import ROLES, Identity
from mloop.errors import ForbiddenError, TokenError
from mloop.server.sessions import CSRF_HEADER, SESSION_COOKIE
from mloop.serving.security import LOOPBACK, host_allowed, host_name

if TYPE_CHECKING:
    from fastapi import Request

    from mloop.server.auth import TokenAuth

CSRF_FIELD = "csrf"


class LoginRequired(Exception):
    """The browser must log in first (the UI redirects to ``/login``)."""


class Guard(Protocol):
    def viewer(self, request: Request) -> Identity:
        """Who may read: raises :class:`LoginRequired` when nobody is logged in."""
        ...

    def csrf(self, request: Request) -> str:
        """The CSRF token the page must send back with a change ('' when none is needed)."""
        ...

    def change(self, request: Request, need: str, presented: str | None) -> Identity:
        """Who makes a change needing the role ``need`` (:class:`ForbiddenError` when the
        Host, the CSRF token or the role is wrong)."""
        ...


def _presented(request: Request, form_value: str | None) -> str | None:
    return request.headers.get(CSRF_HEADER) or form_value


class LocalGuard:
    """``mloop ui``: the local user, every role, loopback Hosts and a CSRF token."""

    def __init__(self, hosts: tuple[str, ...] = LOOPBACK) -> None:
        self._token = secrets.token_urlsafe(32)
        self._hosts = frozenset(hosts)
        try:
            name = getpass.getuser()
        except (OSError, KeyError):
            name = os.environ.get("USER") or "local"
        self.identity = Identity(name, ROLES[-1])

    def _check_host(self, request: Request) -> None:
        name = host_name(request.headers.get("host", ""))
        if name is None or not host_allowed(name, self._hosts):
            raise ForbiddenError("mloop ui answers only requests addressed to this machine "
                                 "(http://127.0.0.1:PORT); open it by that address.")

    def viewer(self, request: Request) -> Identity:
        self._check_host(request)
        return self.identity

    def csrf(self, request: Request) -> str:
        return self._token

    def check_csrf(self, request: Request, presented: str | None) -> None:
        token = _presented(request, presented)
        if token is None or not hmac.compare_digest(token.encode("utf-8", "replace"),
                                                    self._token.encode()):
            raise ForbiddenError("This change came without the page's CSRF token: refused. "
                                 "Reload the page and try again.")

    def change(self, request: Request, need: str, presented: str | None) -> Identity:
        self._check_host(request)
        self.check_csrf(request, presented)
        return self.identity


class ServerGuard:
    """The UI behind ``mloop server``'s tokens, sessions and roles."""

    def __init__(self, auth: TokenAuth) -> None:
        self.auth = auth
        self._open = LocalGuard() if auth.insecure_no_auth else None

    def viewer(self, request: Request) -> Identity:
        if self._open is not None:
            self.auth.check_host(request)
            return self.auth(request, "reader")
        bearer = "authorization" in request.headers
        cookie = request.cookies.get(SESSION_COOKIE)
        if not bearer and not cookie:
            raise LoginRequired
        try:
            if bearer or request.method in ("GET", "HEAD"):
                return self.auth(request, "reader")
            # a change: who is asking, here; its CSRF token, Host and role are checked by
            # change() once the form is read
            assert cookie is not None
            return self.auth.identity(self.auth.active(self.auth.session(cookie).token_id))
        except TokenError as exc:
            if bearer:
                raise
            raise LoginRequired from exc

    def csrf(self, request: Request) -> str:
        if self._open is not None:
            return self._open.csrf(request)
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or "authorization" in request.headers:
            return ""
        try:
            return self.auth.sessions.csrf(self.auth.session(cookie).nonce)
        except TokenError:
            return ""

    def change(self, request: Request, need: str, presented: str | None) -> Identity:
        if self._open is not None:  # --insecure-no-auth: no tokens, but still a CSRF check
            self.auth.check_host(request)
            self._open.check_csrf(request, presented)
        return self.auth(request, need, presented)
