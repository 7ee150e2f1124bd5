"""TokenAuth, sessions and the audit writer, through a tiny FastAPI app on a real uvicorn."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request

from mloop import repositories
from mloop.core.clock import now_ms
from mloop.core.identity import Identity
from mloop.errors import MloopError, RateLimitedError
from mloop.project import Project
from mloop.server import login, tokens
from mloop.server.app import error_response
from mloop.server.auth import RateLimiter, TokenAuth, auth_headers
from mloop.server.sessions import CSRF_COOKIE, SESSION_COOKIE
from tests.server.live import LiveServer


def serve(app: FastAPI) -> Iterator[httpx.Client]:
    with LiveServer(app) as served, httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def make_app(project: Project, auth: TokenAuth) -> FastAPI:
    """Two routes the way the lead's server wraps them: authorize, act, audit."""
    app = FastAPI()

    @app.exception_handler(MloopError)
    def _error(request: Request, exc: MloopError):  # type: ignore[no-untyped-def]
        return error_response(exc, auth_headers(exc))

    @app.get("/api/v1/whoami")
    def whoami(request: Request) -> dict[str, str | None]:
        who = auth(request, "reader")
        return {"name": who.name, "role": who.role, "token_id": who.token_id}

    @app.post("/api/v1/models/register")
    def register(request: Request) -> dict[str, str]:
        who = auth(request, "writer")
        auth.record(who, "POST /api/v1/models/register", "churn", 200)
        return {"by": who.name}

    @app.post("/api/v1/tokens")
    def admin_only(request: Request) -> dict[str, str]:
        return {"by": auth(request, "admin").name}

    app.include_router(login.make_router(project, auth))
    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(project: Project, clock: Clock) -> Iterator[TokenAuth]:
    found = TokenAuth(project, host="127.0.0.1", cache_ttl=1.0, clock=clock)
    yield found
    found.close()


@pytest.fixture
def client(project: Project, auth: TokenAuth) -> Iterator[httpx.Client]:
    yield from serve(make_app(project, auth))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_names_the_caller_and_its_role(project: Project, client: httpx.Client) -> None:
    token, row, _ = tokens.create(project, "alice", "writer")
    answer = client.get("/api/v1/whoami", headers=bearer(token))
    assert answer.status_code == 200
    assert answer.json() == {"name": "alice", "role": "writer", "token_id": row.id}
    assert client.post("/api/v1/models/register", headers=bearer(token)).json() == \
        {"by": "alice"}


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwdw==", "Bearer",
                                    "Bearer mloop_short_secret", "Bearer hunter2-password"])
def test_missing_or_malformed_tokens_are_401_and_never_echoed(client: httpx.Client,
                                                              header: str | None) -> None:
    answer = client.get("/api/v1/whoami",
                        headers={} if header is None else {"Authorization": header})
    assert answer.status_code == 401
    body = answer.json()["error"]
    assert body["code"] == "invalid_token" and body["message"]
    assert "Bearer" in answer.headers["www-authenticate"]
    if header:
        secret = header.partition(" ")[2]
        assert not secret or secret not in answer.text


def test_unknown_and_wrong_secret_are_the_same_401(project: Project,
                                                   client: httpx.Client) -> None:
    token, _, _ = tokens.create(project, "alice", "writer")
    wrong = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    unknown = "mloop_" + "f" * 12 + token[18:]
    answers = [client.get("/api/v1/whoami", headers=bearer(t)) for t in (wrong, unknown)]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()
    assert wrong not in answers[0].text and token[18:] not in answers[1].text


def test_expired_and_revoked_tokens_are_refused(project: Project, client: httpx.Client,
                                                clock: Clock) -> None:
    old, old_row, _ = tokens.create(project, "old", "writer", expires_ms=now_ms() - 1)
    answer = client.get("/api/v1/whoami", headers=bearer(old))
    assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]
    assert old_row.id in answer.text and old[18:] not in answer.text
    token, _row, _ = tokens.create(project, "bob", "writer")
    assert client.get("/api/v1/whoami", headers=bearer(token)).status_code == 200
    tokens.revoke(project, "bob")
    # cached for the TTL (here 1 s of the test's clock), then refused everywhere
    assert client.get("/api/v1/whoami", headers=bearer(token)).status_code == 200
    clock.now += 1.01
    answer = client.get("/api/v1/whoami", headers=bearer(token))
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]["message"]


def test_a_role_below_the_need_is_403_naming_both(project: Project,
                                                  client: httpx.Client) -> None:
    token, _, _ = tokens.create(project, "reader-bot", "reader")
    answer = client.post("/api/v1/models/register", headers=bearer(token))
    assert answer.status_code == 403
    message = answer.json()["error"]["message"]
    assert "'reader'" in message and "'writer'" in message and token[18:] not in message
    writer, _, _ = tokens.create(project, "w", "writer")
    assert client.post("/api/v1/tokens", headers=bearer(writer)).status_code == 403
    admin, _, _ = tokens.create(project, "root", "admin")
    assert client.post("/api/v1/tokens", headers=bearer(admin)).json() == {"by": "root"}


def test_writes_over_the_rate_are_429_with_retry_after(project: Project, auth: TokenAuth,
                                                       client: httpx.Client,
                                                       clock: Clock) -> None:
    auth.limiter = RateLimiter(2.0, 3, clock=clock)
    token, _, _ = tokens.create(project, "alice", "writer")
    other, _, _ = tokens.create(project, "bob", "writer")
    codes = [client.post("/api/v1/models/register", headers=bearer(token)).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.post("/api/v1/models/register", headers=bearer(token))
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "rate_limited"
    # per token: another token is not slowed; reads are never limited
    assert client.post("/api/v1/models/register", headers=bearer(other)).status_code == 200
    assert client.get("/api/v1/whoami", headers=bearer(token)).status_code == 200
    clock.now += 0.5  # refilled at 2 a second: one more write
    assert client.post("/api/v1/models/register", headers=bearer(token)).status_code == 200


def test_rate_limiter_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(0.1, 1, clock=clock)
    assert limiter.take("t") == 0.0
    assert limiter.take("t") == pytest.approx(10.0)
    assert RateLimitedError("slow down", 9.2).retry_after == 9


def test_every_write_is_audited_with_the_identity(project: Project, auth: TokenAuth,
                                                  client: httpx.Client) -> None:
    token, row, _ = tokens.create(project, "alice", "writer")
    for _ in range(3):
        client.post("/api/v1/models/register", headers=bearer(token))
    auth.record(Identity("bob", "admin", "b" * 12), "revoke", "token mloop_" + "a" * 12 +
                "_" + "c" * 64, 200)
    auth.close()  # a clean shutdown writes everything queued
    entries = repositories.backend(project).audit.list()
    assert [e.actor for e in entries] == ["bob", "alice", "alice", "alice"]
    alice = entries[-1]
    assert (alice.token_id, alice.role, alice.action, alice.target, alice.status) == \
        (row.id, "writer", "POST /api/v1/models/register", "churn", 200)
    assert "c" * 64 not in (entries[0].target or "")  # targets are redacted


def test_the_audit_writer_flushes_in_the_background(project: Project) -> None:
    from mloop.server.audit import AuditLog

    log = AuditLog(repositories.backend(project).audit, interval=0.05)
    log.record(Identity("alice", "writer", "a" * 12), "POST /x", None, 201)
    assert log.pending() == 1

    deadline = time.monotonic() + 5
    while log.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.pending() == 0
    assert [e.status for e in repositories.backend(project).audit.list()] == [201]
    log.close()


def test_insecure_no_auth_makes_everyone_an_anonymous_admin(project: Project) -> None:
    auth = TokenAuth(project, insecure_no_auth=True)
    for client in serve(make_app(project, auth)):
        assert client.get("/api/v1/whoami").json() == {"name": "anonymous", "role": "admin",
                                                       "token_id": None}
        assert client.post("/api/v1/tokens").status_code == 200
    auth.close()


# ── browser sessions ─────────────────────────────────────────────────────────────

def _log_in(client: httpx.Client, token: str, next_path: str = "/runs") -> str:
    answer = client.post("/login", data={"token": token, "next": next_path},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def test_login_sets_a_session_cookie_that_is_not_the_token(project: Project,
                                                           client: httpx.Client) -> None:
    page = client.get("/login?next=/models/%3Cb%3E")
    assert page.status_code == 200 and "<form" in page.text and "<script" not in page.text
    assert "&lt;b&gt;" in page.text and "<b>" not in page.text  # escaped
    token, row, _ = tokens.create(project, "alice", "writer")
    answer = client.post("/login", data={"token": token, "next": "/runs"},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/runs"
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
    csrf = next(c for c in cookies if c.startswith(CSRF_COOKIE + "="))
    assert "httponly" in session.lower() and "samesite=strict" in session.lower()
    assert "httponly" not in csrf.lower() and "samesite=strict" in csrf.lower()
    assert "secure" not in session.lower()  # plain http here
    assert token not in " ".join(cookies) and token[18:] not in " ".join(cookies)
    assert row.id in session  # it names the token, re-checked each request
    who = client.get("/api/v1/whoami")
    assert who.status_code == 200 and who.json()["name"] == "alice"


def test_login_refuses_bad_tokens_and_open_redirects(project: Project,
                                                     client: httpx.Client) -> None:
    answer = client.post("/login", data={"token": "hunter2"}, follow_redirects=False)
    assert answer.status_code == 401 and "hunter2" not in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    token, _, _ = tokens.create(project, "alice", "writer")
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        assert _log_in(client, token, evil) == "/"
    answer = client.post("/login", data={"token": token},
                         headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert answer.status_code == 403


def test_session_writes_need_the_csrf_token_and_an_allowed_host(project: Project,
                                                                client: httpx.Client) -> None:
    token, _, _ = tokens.create(project, "alice", "writer")
    _log_in(client, token)
    csrf = client.cookies[CSRF_COOKIE]
    missing = client.post("/api/v1/models/register")
    assert missing.status_code == 403 and "CSRF" in missing.json()["error"]["message"]
    wrong = client.post("/api/v1/models/register", headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    ok = client.post("/api/v1/models/register", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json() == {"by": "alice"}
    rebound = client.post("/api/v1/models/register",
                          headers={"X-CSRF-Token": csrf, "Host": "evil.example"})
    assert rebound.status_code == 403 and "Host" in rebound.json()["error"]["message"]
    # a bearer token needs no CSRF token, and reads with a session need none either
    client.cookies.clear()
    assert client.post("/api/v1/models/register", headers={
        **bearer(token), "Host": "evil.example"}).status_code == 200


def _cookie(session: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={session}"}


def test_a_session_ends_with_logout_or_its_token(project: Project, client: httpx.Client,
                                                 clock: Clock) -> None:
    token, _, _ = tokens.create(project, "alice", "writer")
    _log_in(client, token)
    session = client.cookies[SESSION_COOKIE]
    forged = re.sub(r"\.[0-9]+\.", f".{now_ms() + 10**9}.", session, count=1)
    assert client.get("/api/v1/whoami", headers=_cookie(forged)).status_code == 401
    refused = client.post("/logout", follow_redirects=False)  # no CSRF: refused
    assert refused.status_code == 403
    csrf = client.cookies[CSRF_COOKIE]
    out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    # the browser dropped the cookie; a copy of it is refused too
    assert client.get("/api/v1/whoami", headers=_cookie(session)).status_code == 401
    client.cookies.clear()
    _log_in(client, token)
    assert client.get("/api/v1/whoami").status_code == 200
    tokens.revoke(project, "alice")
    clock.now += 1.01
    answer = client.get("/api/v1/whoami")
    assert answer.status_code == 401 and "revoked" in answer.text


def test_a_logout_reaches_every_worker_and_outlives_a_restart(project: Project,
                                                              client: httpx.Client,
                                                              clock: Clock) -> None:
    token, _, _ = tokens.create(project, "alice", "writer")
    _log_in(client, token)
    session = client.cookies[SESSION_COOKIE]
    other = TokenAuth(project, host="127.0.0.1", cache_ttl=1.0, clock=clock)  # a 2nd worker
    try:
        for worker in serve(make_app(project, other)):
            assert worker.get("/api/v1/whoami", headers=_cookie(session)).status_code == 200
            out = client.post("/logout", data={"csrf": client.cookies[CSRF_COOKIE]},
                              follow_redirects=False)
            assert out.status_code == 303
            clock.now += 1.01  # the other worker reads the ended sessions once a second
            assert worker.get("/api/v1/whoami", headers=_cookie(session)).status_code == 401
    finally:
        other.close()
    restarted = TokenAuth(project, host="127.0.0.1", cache_ttl=1.0, clock=clock)
    try:
        for fresh in serve(make_app(project, restarted)):
            assert fresh.get("/api/v1/whoami", headers=_cookie(session)).status_code == 401
    finally:
        restarted.close()


def test_the_server_secret_is_private(project: Project, auth: TokenAuth) -> None:
    from mloop.errors import ConfigError
    from mloop.server.sessions import SECRET_FILE, load_secret

    path = project.settings.project_dir / SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secret(project.settings.project_dir) == auth.sessions._secret
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret(project.settings.project_dir)


def test_a_batch_the_store_refuses_is_kept_and_retried() -> None:
    from collections.abc import Sequence

    from mloop.repositories.audit import AuditEntry
    from mloop.server.audit import AuditLog

    class Flaky:
        def __init__(self) -> None:
            self.calls = 0
            self.stored: list[AuditEntry] = []

        def add(self, entries: Sequence[AuditEntry]) -> int:
            self.calls += 1
            if self.calls == 1:
                raise OSError("the database is down")
            self.stored.extend(entries)
            return len(entries)

    store = Flaky()
    log = AuditLog(store, interval=60)  # type: ignore[arg-type]
    log.record(Identity("alice", "writer", "a" * 12), "POST /x", "t", 200)
    assert log.flush() == 0 and log.pending() == 1  # refused: kept
    log.record(Identity("alice", "writer", "a" * 12), "POST /y", "t", 200)
    log.close()  # the shutdown writes both
    assert [e.action for e in store.stored] == ["POST /x", "POST /y"]


def test_no_token_reaches_the_logs(project: Project, client: httpx.Client,
                                   caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="mloop")
    token, _, _ = tokens.create(project, "alice", "writer")
    client.post("/login", data={"token": token}, follow_redirects=False)
    client.get("/api/v1/whoami", headers=bearer(token[:-1] + "0"))
    client.post("/api/v1/models/register", headers=bearer(token))
    assert "session started" in caplog.text
    assert token[18:] not in caplog.text and token[18:-1] not in caplog.text
