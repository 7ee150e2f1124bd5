"""``/login`` and ``/logout``: a browser exchanges a token for a session cookie.

``GET /login`` is a small HTML form (no script); ``POST /login`` takes the form field
``token``, checks it like a bearer token, sets the session and CSRF cookies of
:mod:`mloop.server.sessions` and redirects (303) to ``next`` (a path on this server, ``/``
by default). ``POST /logout`` needs the session's CSRF token (form field ``csrf`` or the
``X-CSRF-Token`` header), ends the session and deletes both cookies. The login form's
POST checks the Host header and, when the browser names one, the Origin: another site
cannot log a visitor in with its own token.
"""

from __future__ import annotations

import html
import urllib.parse
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mloop.core.clock import now_ms
from mloop.core.redact import get_logger
from mloop.errors import ForbiddenError, MloopError, TokenError
from mloop.server.auth import TokenAuth
from mloop.server.forms import read_form
from mloop.server.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from mloop.serving.security import host_allowed

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.server.app import Authorize

log = get_logger("mloop.server.login")
MAX_FORM = 4096  # bytes: a token and a path

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mloop · log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.4rem;margin:.4rem 0;box-sizing:border-box}}
.error{{color:#a00}}</style></head>
<body><main><h1>mloop</h1>{message}
<form method="post" action="/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>
</form>
<p>Ask an admin for a token (<code>mloop server token create</code>).</p>
</main></body></html>
"""


def _safe_next(value: str | None) -> str:
    """A path on this server to go to after logging in; ``/`` for anything else (an
    absolute or scheme-relative URL would be an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 for c in value):
        return "/"
    return value


def _page(message: str = "", next_path: str = "/", status: int = 200) -> HTMLResponse:
    text = f'<p class="error">{html.escape(message)}</p>' if message else ""
    body = _PAGE.format(message=text, next=html.escape(next_path, quote=True))
    return HTMLResponse(body, status_code=status, headers={
        "cache-control": "no-store", "x-frame-options": "DENY",
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "form-action 'self'; frame-ancestors 'none'"})


async def _form(request: Request) -> dict[str, str]:
    """The login form's fields (a body over :data:`MAX_FORM` bytes is refused)."""
    return await read_form(request, MAX_FORM, ForbiddenError)


def _origin_ok(request: Request, auth: TokenAuth) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = urllib.parse.urlsplit(origin).hostname
    return host is not None and host_allowed(host.rstrip("."), auth.hosts)


def make_router(project: Project, authorize: Authorize) -> APIRouter:
    """The login routes; with an ``authorize`` other than :class:`TokenAuth` (a server
    without tokens) ``/login`` says there is nothing to log in to."""
    router = APIRouter(include_in_schema=False)
    auth = authorize if isinstance(authorize, TokenAuth) else None

    @router.get("/login")
    def login_page(next: str = "/") -> Response:
        if auth is None or auth.insecure_no_auth:
            return _page("This server has no authentication: there is nothing to log in to.")
        return _page(next_path=_safe_next(next))

    @router.post("/login")
    async def login(request: Request) -> Response:
        if auth is None or auth.insecure_no_auth:
            return RedirectResponse("/", status_code=303)
        try:
            auth.check_host(request)
            if not _origin_ok(request, auth):
                raise ForbiddenError("Log in from this server's own page.")
            fields = await _form(request)
            next_path = _safe_next(fields.get("next"))
            row = auth.verify(fields.get("token", ""))
        except TokenError as exc:
            return _page(exc.message, "/", 401)
        except ForbiddenError as exc:
            return _page(exc.message, "/", 403)
        cookie, csrf = auth.sessions.issue(row.id, row.expires_ms, now_ms())
        secure = request.url.scheme == "https"
        max_age = max(1, min(auth.sessions.lifetime_ms, (row.expires_ms or 2**62) - now_ms())
                      // 1000)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=max_age, path="/", secure=secure,
                            httponly=True, samesite="strict")
        response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=secure,
                            httponly=False, samesite="strict")
        response.headers["cache-control"] = "no-store"
        log.info("session started for token %s (%s)", row.id, row.name)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        cookie = request.cookies.get(SESSION_COOKIE)
        if auth is not None and cookie:
            try:
                session = auth.session(cookie)
                auth.check_host(request)
                presented = request.headers.get(CSRF_HEADER)
                if presented is None:
                    presented = (await _form(request)).get("csrf")
                if not auth.sessions.csrf_ok(session, presented):
                    raise ForbiddenError("Log out from this server's own page (the CSRF "
                                         "token is missing or wrong).")
            except TokenError:  # an expired or unknown session: just clear the cookies
                session = None
            except MloopError as exc:
                return _page(exc.message, "/", 403)
            if session is not None:
                auth.end_session(session)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        response.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
        return response

    return router
