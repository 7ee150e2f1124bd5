"""Who is calling the team server, and may they: tokens, browser sessions, rate limits.

:class:`TokenAuth` is the server's :data:`~mloop.server.app.Authorize`: each handler calls
it with the role the route needs and gets the caller's :class:`Identity` (the token's
name, role and id), or an error the app answers with (:func:`auth_headers` gives its
headers):

* ``Authorization: Bearer mloop_<id>_<secret>`` (see :mod:`mloop.core.tokens`), checked
  against the ``api_tokens`` table: the SHA-256 of the secret compared in constant time,
  then revocation and expiry. 401 (:class:`TokenError`) when missing, malformed, unknown,
  wrong, revoked or expired; the message never contains the token.
* else the browser session cookie of :mod:`mloop.server.sessions`, re-checked against the
  same table; a request that changes something (POST, PUT, PATCH, DELETE) must also carry
  the session's CSRF token in ``X-CSRF-Token`` and a Host header the server answers to
  (127.0.0.1, localhost, ::1, its --host, ``server_allowed_hosts``), else 403.
* a role below the route's need: 403 (:class:`ForbiddenError`) naming both roles.
* a write (a route needing ``writer`` or above) over the token's rate: 429
  (:class:`RateLimitedError`, ``Retry-After``), a token bucket per token of
  ``server_rate_limit`` per second and ``server_rate_burst`` at once.

Per request this costs a header parse, one SHA-256 and a dict look-up (a few
microseconds): the token rows are cached in memory for ``cache_ttl`` seconds (1 s by
default), so a revocation reaches every worker within that time without a database
round trip per request.

:meth:`TokenAuth.record` queues an audit entry (:class:`~mloop.server.audit.AuditLog`);
:meth:`TokenAuth.close` writes the queue out at shutdown.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from mloop.core.clock import now_ms
from mloop.core.identity import ROLES, Identity
from mloop.core.tokens import parse_token
from mloop.errors import ForbiddenError, MloopError, RateLimitedError, TokenError
from mloop.server.audit import AuditLog
from mloop.server.sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Session,
    Sessions,
    load_secret,
)
from mloop.serving.security import LOOPBACK, host_allowed, host_name, host_pattern

if TYPE_CHECKING:
    from starlette.requests import Request

    from mloop.project import Project
    from mloop.repositories.api_tokens import ApiToken, ApiTokens

__all__ = ["ANONYMOUS", "RateLimiter", "TokenAuth", "TokenCache", "auth_headers"]

ANONYMOUS = Identity("anonymous", "admin")  # everyone, on a server with --insecure-no-auth
WRITE = ROLES.index("writer")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REALM = 'Bearer realm="mloop"'
# compared against when the id is unknown, so a miss costs what a hit costs
_DUMMY = hashlib.sha256(b"mloop: no such token").hexdigest().encode()
_NO_TOKEN = ("This needs an API token, sent in the Authorization header (scheme "
             "\"Bearer\"; mloop clients read MLOOP_TOKEN or the file that `mloop login URL` "
             "writes), or a browser session: log in at /login.")
_NOT_VALID = "The token is not valid here (unknown or wrong); ask an admin for a new one."


def auth_headers(exc: MloopError) -> dict[str, str] | None:
    """The headers an error of :class:`TokenAuth` is answered with (``WWW-Authenticate``,
    ``Retry-After``), ``None`` for other errors."""
    if isinstance(exc, RateLimitedError):
        return {"retry-after": str(exc.retry_after)}
    if isinstance(exc, TokenError):
        return {"www-authenticate": f'{REALM}, error="invalid_token"'}
    if isinstance(exc, ForbiddenError):
        return {"www-authenticate": f'{REALM}, error="insufficient_scope"'}
    return None


class TokenCache:
    """Token rows by id, each kept ``ttl`` seconds (an unknown id too, so random ids cost
    the database one look-up a second each at most)."""

    def __init__(self, tokens: ApiTokens, ttl: float = 1.0, *,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000
                 ) -> None:
        self.tokens = tokens
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._rows: dict[str, tuple[float, ApiToken | None]] = {}

    def get(self, token_id: str) -> ApiToken | None:
        now = self.clock()
        hit = self._rows.get(token_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        row = self.tokens.get(token_id)
        if len(self._rows) >= self.max_entries:
            self._rows.clear()  # rare (10k distinct ids a second): start over
        self._rows[token_id] = (now, row)
        return row

    def forget(self, token_id: str | None = None) -> None:
        """Drop one id (all without it): the next request reads the table."""
        if token_id is None:
            self._rows.clear()
        else:
            self._rows.pop(token_id, None)


class EndedSessions:
    """The nonces of logged-out sessions, read from the store at most once per ``ttl``
    seconds: a logout on one worker reaches the others within that time, and survives a
    restart of the server."""

    def __init__(self, tokens: ApiTokens, ttl: float = 1.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tokens = tokens
        self.ttl = ttl
        self.clock = clock
        self._nonces: set[str] = set()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def __contains__(self, nonce: str) -> bool:
        now = self.clock()
        with self._lock:
            if self._read_at is None or now - self._read_at >= self.ttl:
                self._nonces = self.tokens.ended_sessions()
                self._read_at = now
            return nonce in self._nonces

    def add(self, nonce: str, token_id: str, expires_ms: int) -> None:
        """End a session: stored for every worker, and refused here at once."""
        self.tokens.end_session(nonce, token_id, expires_ms)
        with self._lock:
            self._nonces.add(nonce)


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``rate`` a second."""

    def __init__(self, rate: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (level, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else the seconds
        until one is available again."""
        with self._lock:
            now = self.clock()
            level, at = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - at) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate


class TokenAuth:
    """The team server's :data:`~mloop.server.app.Authorize` over the project's tokens.

    ``host`` is the address the server binds (its Host names are accepted on session
    writes, with loopback and ``allowed_hosts``, default the setting
    ``server_allowed_hosts``). ``insecure_no_auth``: everyone is :data:`ANONYMOUS` (an
    admin); audit entries are still recorded. Call :meth:`close` at shutdown.
    """

    def __init__(self, project: Project, *, host: str = "127.0.0.1",
                 allowed_hosts: Iterable[str] | None = None, insecure_no_auth: bool = False,
                 cache_ttl: float = 1.0, audit_interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from mloop import repositories

        settings = project.settings
        backend = repositories.backend(project)
        self.insecure_no_auth = insecure_no_auth
        self.tokens = TokenCache(backend.api_tokens, cache_ttl, clock=clock)
        self.limiter = RateLimiter(settings.server_rate_limit, settings.server_rate_burst,
                                   clock=clock)
        self.sessions = Sessions(load_secret(settings.project_dir),
                                 int(settings.server_session_hours * 3_600_000))
        self.ended = EndedSessions(backend.api_tokens, cache_ttl, clock=clock)
        extra = settings.server_allowed_hosts if allowed_hosts is None else allowed_hosts
        names = set(LOOPBACK) | {host_pattern(h) for h in extra}
        bound = host_pattern(host) if host.strip() else ""
        if bound not in ("", "0.0.0.0", "::"):
            names.add(bound)
        self.hosts = frozenset(names)
        self.audit = AuditLog(backend.audit, interval=audit_interval)

    # ── the Authorize callable ───────────────────────────────────────────────────
    def __call__(self, request: Request, need: str, csrf: str | None = None) -> Identity:
        """The caller of ``request`` if its role allows ``need``; see the module's doc.
        ``csrf``: a session's CSRF token sent some other way than the header (a UI form's
        field)."""
        rank = ROLES.index(need)  # a route's own need: a bad one is a bug, ValueError
        if self.insecure_no_auth:
            return ANONYMOUS
        identity = self._identify(request, csrf)
        if ROLES.index(identity.role) < rank:
            raise ForbiddenError(f"{identity.name!r} (token {identity.token_id}) has the "
                                 f"role {identity.role!r}; this needs {need!r} or above. "
                                 "Ask an admin for a token with that role.")
        if rank >= WRITE:
            wait = self.limiter.take(identity.token_id or identity.name)
            if wait:
                retry = max(1, math.ceil(wait))
                raise RateLimitedError(
                    f"Too many writes with token {identity.token_id}: the limit is "
                    f"{self.limiter.rate:g} a second (bursts of {self.limiter.burst}). "
                    f"Retry after {retry} s, or send fewer, larger batches.", retry)
        return identity

    def _identify(self, request: Request, csrf: str | None = None) -> Identity:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise TokenError(_NO_TOKEN)
            return self.identity(self.verify(token))
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return self._session(request, cookie, csrf)
        raise TokenError(_NO_TOKEN)

    def _session(self, request: Request, cookie: str, csrf: str | None = None) -> Identity:
        session = self.session(cookie)
        if request.method in UNSAFE_METHODS:
            self.check_host(request)
            if not self.sessions.csrf_ok(session, request.headers.get(CSRF_HEADER) or csrf):
                raise ForbiddenError("This change comes with a browser session but without "
                                     "its CSRF token (the X-CSRF-Token header): refused. "
                                     "Reload the page, or log in again at /login.")
        return self.identity(self.active(session.token_id))

    # ── pieces the login routes and the lead's routes share ──────────────────────
    def verify(self, token: str) -> ApiToken:
        """The active row of a presented token; :class:`TokenError` otherwise."""
        token_id, secret = parse_token(token)
        row = self.tokens.get(token_id)
        presented = hashlib.sha256(secret.encode("ascii")).hexdigest().encode()
        if not hmac.compare_digest(presented, _DUMMY if row is None else row.sha256.encode()
                                   ) or row is None:
            raise TokenError(_NOT_VALID)
        return self.active(token_id, row)

    def active(self, token_id: str, row: ApiToken | None = None) -> ApiToken:
        """The row of an active token (:class:`TokenError` when revoked, expired or
        unknown)."""
        from mloop.repositories.api_tokens import TokenStatus

        row = row if row is not None else self.tokens.get(token_id)
        if row is None:
            raise TokenError(_NOT_VALID)
        status = row.status()
        if status is TokenStatus.REVOKED:
            raise TokenError(f"The token {row.id} was revoked; ask an admin for a new one "
                             "(`mloop server token create`).")
        if status is TokenStatus.EXPIRED:
            raise TokenError(f"The token {row.id} has expired; ask an admin for a new one "
                             "(`mloop server token create`).")
        return row

    def session(self, cookie: str) -> Session:
        """The session of a cookie; :class:`TokenError` when it is forged, expired or
        logged out (the browser logs in again)."""
        session = self.sessions.check(cookie, now_ms())
        if session is None or session.nonce in self.ended:
            raise TokenError("The browser session has expired or is not valid; log in "
                             "again at /login.")
        return session

    def end_session(self, session: Session) -> None:
        """Log ``session`` out, for every worker of the server and after a restart."""
        self.sessions.end(session, now_ms())
        self.ended.add(session.nonce, session.token_id, session.expires_ms)

    def check_host(self, request: Request) -> None:
        """:class:`ForbiddenError` unless the Host header names this server."""
        name = host_name(request.headers.get("host", ""))
        if name is None or not host_allowed(name, self.hosts):
            raise ForbiddenError("This server does not answer browser sessions' changes "
                                 "sent to that Host; add it to server_allowed_hosts if it "
                                 "should.")

    @staticmethod
    def identity(row: ApiToken) -> Identity:
        return Identity(row.name, row.role, row.id)

    # ── audit ────────────────────────────────────────────────────────────────────
    def record(self, identity: Identity, action: str, target: str | None,
               status: int) -> None:
        """Queue an audit entry (see :meth:`AuditLog.record`); never blocks."""
        self.audit.record(identity, action, target, status)

    def close(self) -> None:
        """Write the audit entries still queued (at the server's shutdown)."""
        self.audit.close()
