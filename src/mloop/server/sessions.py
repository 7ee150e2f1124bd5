"""Browser sessions of the team server: a signed cookie instead of the token, and CSRF.

``POST /login`` checks a token once and answers with two cookies:

* ``mloop_session`` (HttpOnly, SameSite=Strict, Secure over https): ``<token id>.<expiry
  ms>.<nonce>.<mac>``, where ``mac`` is an HMAC-SHA256 under the server's secret. It is
  not the token: it names the token's id, and each request re-checks that token in the
  token table (revoking the token ends its sessions within the cache's second or two);
  it stops at its expiry (``server_session_hours``, never later than the token's own);
* ``mloop_csrf`` (readable by the page's script): an HMAC of the session's nonce. A
  request that changes something and is authenticated by the session cookie must send it
  back in the ``X-CSRF-Token`` header (or the ``csrf`` form field of ``/logout``): a
  page of another site can make the browser send the cookie, but cannot read the CSRF
  cookie to copy it.

The secret is 32 random bytes in ``<project>/.mloop/server_secret`` (mode 0600), made by
the first server that needs it: every worker and restart of the server shares it, so
sessions survive a restart. Delete the file to end every session at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from mloop.core.paths import write_private
from mloop.errors import ConfigError

SESSION_COOKIE = "mloop_session"
CSRF_COOKIE = "mloop_csrf"
CSRF_HEADER = "x-csrf-token"
SECRET_FILE = "server_secret"
_COOKIE = re.compile(r"([0-9a-f]{12})\.([0-9]{1,15})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Session:
    """A verified session cookie: whose token, until when, and its nonce."""

    token_id: str
    expires_ms: int
    nonce: str


def load_secret(project_dir: Path) -> bytes:
    """The server's secret in ``project_dir`` (created, mode 0600, when missing; racing
    creators agree on the first). :class:`ConfigError` when others may read it."""
    path = project_dir / SECRET_FILE
    if not path.exists():
        write_private(path, secrets.token_hex(32) + "\n", replace=False)
    st = path.stat()
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} can be read by other users (mode "
                          f"{stat.S_IMODE(st.st_mode):o}); whoever reads it can forge "
                          f"sessions. Run `chmod 600 {path}` (or delete it to make a new one).")
    text = path.read_text(encoding="ascii").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ConfigError(f"{path} is not a server secret (64 hex digits); delete it and "
                          "restart the server to make a new one.")
    return bytes.fromhex(text)


class Sessions:
    """Issues and checks session cookies under one secret."""

    def __init__(self, secret: bytes, lifetime_ms: int) -> None:
        self._secret = secret
        self.lifetime_ms = lifetime_ms
        # sessions ended by /logout before their expiry, by nonce → expiry (this process)
        self._ended: dict[str, int] = {}
        self._lock = threading.Lock()

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._secret, b"mloop-session-v1|" + body.encode(),
                             hashlib.sha256).digest())

    def issue(self, token_id: str, token_expires_ms: int | None, now: int) -> tuple[str, str]:
        """A new session for the token ``token_id``: ``(session cookie, CSRF token)``."""
        until = now + self.lifetime_ms
        if token_expires_ms is not None:
            until = min(until, token_expires_ms)
        nonce = _b64(secrets.token_bytes(16))
        body = f"{token_id}.{until}.{nonce}"
        return f"{body}.{self._mac(body)}", self.csrf(nonce)

    def check(self, cookie: str, now: int) -> Session | None:
        """The session of a cookie with a good signature, unexpired and not logged out;
        ``None`` otherwise."""
        match = _COOKIE.fullmatch(cookie)
        if match is None:
            return None
        token_id, until, nonce, mac = match.groups()
        if not hmac.compare_digest(mac, self._mac(f"{token_id}.{until}.{nonce}")):
            return None
        if int(until) <= now or nonce in self._ended:
            return None
        return Session(token_id, int(until), nonce)

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the session with this nonce."""
        return _b64(hmac.new(self._secret, b"mloop-csrf-v1|" + nonce.encode(),
                             hashlib.sha256).digest())

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        """True when ``presented`` is the session's CSRF token (constant-time)."""
        return presented is not None and hmac.compare_digest(
            presented.strip().encode("utf-8", "replace"), self.csrf(session.nonce).encode())

    def end(self, session: Session, now: int) -> None:
        """Log the session out: refused from now on (by this process; the cookie is also
        deleted in the browser)."""
        with self._lock:
            self._ended = {n: t for n, t in self._ended.items() if t > now}
            self._ended[session.nonce] = session.expires_ms
