"""The checks before a route: Host, Origin, tokens, JSON content types — on a real uvicorn.

A small application behind :class:`mloop.serving.security.Guard` runs in this process on
127.0.0.1 (so ``caplog`` sees the server's log lines); ``tests/serving/
test_serve_protected.py`` drives the real ``mloop serve``.
"""

import http.client
import json
import logging
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloop.core.tokens import create_token, revoke_token
from mloop.errors import InvalidInputError
from mloop.serving import security as S


def request(port, method, path, body=b"", headers=None, host=None):
    """(status, decoded body, headers) of one request with exactly these headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    if host is not None:
        conn.putheader("Host", host)
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    if body or method == "POST":
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    answer = conn.getresponse()
    raw = answer.read()
    conn.close()
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = raw.decode(errors="replace")
    return answer.status, decoded, answer


def _app():
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request):
        return JSONResponse({"path": request.url.path, "bytes": len(await request.body()),
                             "token_id": request.scope.get("state", {}).get("token_id")})

    paths = ["/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/churn",
             "/v2/models/churn/infer", "/v2/models/churn/versions/1/infer", "/predict",
             "/invocations", "/api/v1/feedback", "/metrics"]
    return Starlette(routes=[Route(p, echo, methods=["GET", "POST"]) for p in paths])


class Served:
    def __init__(self, security):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = S.Guard(_app(), security)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.host = f"127.0.0.1:{self.port}"

    def __call__(self, method, path, body=b"", headers=None, host=""):
        return request(self.port, method, path, body, headers,
                       self.host if host == "" else host)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def serve():
    started = []

    def start(**kwargs):
        served = Served(S.Security(**kwargs))
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


JSON = {"Content-Type": "application/json"}


# -- Host (DNS rebinding) ----------------------------------------------------------------

def test_the_host_header_must_name_this_server(serve):
    app = serve(allowed_hosts=["models.example.com", "*.corp.example"])
    for good in (app.host, "localhost", "LOCALHOST.:1", "[::1]:8080", "127.0.0.1",
                 "models.example.com", "a.b.corp.example:443"):
        assert app("GET", "/v2", host=good)[0] == 200, good
    for bad in ("evil.example", "attacker.com:8080", "example.com", "corp.example",
                "127.0.0.2", "localhost.evil.example", "[::2]"):
        status, body, _ = app("GET", "/v2", host=bad)
        assert status == 421 and "--allowed-host" in body["error"], bad
    assert app("POST", "/api/v1/feedback", b"{}", JSON, host="rebound.example")[0] == 421
    for malformed in ("a b", "x/y", "[zz]", "::1"):
        assert app("GET", "/v2", host=malformed)[0] == 400, malformed
    # the health probes answer any Host: a probe addresses the server by its IP
    assert app("GET", "/v2/health/ready", host="10.1.2.3:8080")[0] == 200


def test_the_bound_address_counts_unless_it_is_every_interface():
    assert "10.0.0.5" in S.Security(host="10.0.0.5").host_patterns()
    assert "myhost" in S.Security(host="MyHost").host_patterns()
    for everywhere in ("0.0.0.0", "::"):
        assert S.Security(host=everywhere).host_patterns() == set(S.LOOPBACK)
    assert S.host_allowed("anything.example", S.Security(allowed_hosts=["*"]).host_patterns())
    assert S.host_pattern("[::1]") == S.host_pattern("0:0:0:0:0:0:0:1") == "::1"
    with pytest.raises(InvalidInputError, match="not a host name"):
        S.Security(allowed_hosts=["exa mple.com"])
    with pytest.raises(InvalidInputError, match="protect must be one of"):
        S.Security(protect="some")


# -- content types (cross-site forms) ---------------------------------------------------

@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/xml", "application/json-seq",
    "application/json; charset=utf-16", "text/json", None])
def test_posts_that_are_not_json_get_415(serve, content_type):
    app = serve()
    headers = {} if content_type is None else {"Content-Type": content_type}
    for path in ("/api/v1/feedback", "/predict", "/invocations"):
        status, body, answer = app("POST", path, b'{"request_id": "r", "label": 1}', headers)
        wanted = "must be UTF-8" if "utf-16" in str(content_type) else "application/json"
        assert status == 415 and wanted in body["error"], (path, body)
        assert answer.getheader("accept") == "application/json"


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON",
                                          "application/json; charset=utf-8",
                                          "application/vnd.mloop+json"])
def test_json_content_types_pass(serve, content_type):
    app = serve()
    status, body, _ = app("POST", "/api/v1/feedback", b"{}", {"Content-Type": content_type})
    assert (status, body["path"]) == (200, "/api/v1/feedback")


def test_v2_inference_also_takes_the_binary_extension_and_tritonclient_bodies(serve):
    app = serve()
    binary = {"Content-Type": "application/octet-stream",
              "Inference-Header-Content-Length": "2"}
    for path in ("/v2/models/churn/infer", "/v2/models/churn/versions/1/infer"):
        assert app("POST", path, b"{}\x00\x01", binary)[0] == 200
        assert app("POST", path, b"{}")[0] == 200  # no Content-Type: what tritonclient sends
        status, body, _ = app("POST", path, b"{}", {"Content-Type": "application/"
                                                                    "octet-stream"})
        assert status == 415 and "Inference-Header-Content-Length" in body["error"]
        assert app("POST", path, b"{}", {"Content-Type": "text/plain"})[0] == 415
    # the binary form is for the V2 routes only
    assert app("POST", "/predict", b"{}\x00", binary)[0] == 415


def test_requests_from_other_sites_pages_are_refused(serve):
    app = serve()
    evil = {"Origin": "https://evil.example", **JSON}
    assert app("POST", "/api/v1/feedback", b"{}", evil)[0] == 403
    assert app("POST", "/v2/models/churn/infer", b"{}", {"Origin": "null"})[0] == 403
    assert app("POST", "/v2/models/churn/infer", b"{}",
               {"Origin": "http://[bad"})[0] == 403
    own = {"Origin": f"http://{app.host}", **JSON}  # e.g. the /docs page of this server
    assert app("POST", "/api/v1/feedback", b"{}", own)[0] == 200
    assert app("GET", "/v2", headers={"Origin": "https://evil.example"})[0] == 200


# -- tokens ------------------------------------------------------------------------------

@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens.jsonl"
    made = {role: create_token(path, role)[0]
            for role in ("reader", "predictor", "writer", "admin")}
    return path, made


def _altered(token):
    """The token with its last digit changed: the right id, a wrong secret."""
    return token[:-1] + ("1" if token.endswith("0") else "0")


def _auth(token):
    return {"Authorization": f"Bearer {token}", **JSON}


def test_writes_need_a_writer_token(serve, tokens, caplog):
    path, made = tokens
    served = serve(token_file=str(path))
    answered = []

    def app(*args, **kwargs):
        found = served(*args, **kwargs)
        answered.append(json.dumps(found[1]) + str(found[2].getheaders()))
        return found

    with caplog.at_level(logging.DEBUG):
        status, body, answer = app("POST", "/api/v1/feedback", b"{}", JSON)
        assert status == 401 and answer.getheader("www-authenticate") == 'Bearer realm="mloop"'
        assert "Authorization: Bearer" in body["error"]
        for bad in ("Bearer nonsense", "Bearer " + _altered(made["writer"]), "Basic abc",
                    "bearer", made["writer"]):
            status, body, answer = app("POST", "/api/v1/feedback", b"{}",
                                       {"Authorization": bad, **JSON})
            assert status == 401, bad
            assert 'error="invalid_token"' in answer.getheader("www-authenticate") or \
                answer.getheader("www-authenticate") == 'Bearer realm="mloop"'
        for role in ("reader", "predictor"):
            status, body, answer = app("POST", "/api/v1/feedback", b"{}",
                                       _auth(made[role]))
            assert status == 403 and f"role {role!r}" in body["error"]
            assert 'error="insufficient_scope", scope="writer"' in \
                answer.getheader("www-authenticate")
        for role in ("writer", "admin"):
            status, body, _ = app("POST", "/api/v1/feedback", b"{}", _auth(made[role]))
            assert status == 200 and body["token_id"] == made[role][6:18]
        # with --protect writes, inference and reads stay open
        assert app("POST", "/predict", b"{}", JSON)[0] == 200
        assert app("GET", "/metrics")[0] == 200
        # a token does not excuse a text/plain body
        assert app("POST", "/api/v1/feedback", b"{}", {
            "Authorization": f"Bearer {made['writer']}", "Content-Type": "text/plain"})[0] \
            == 415
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "refused POST /api/v1/feedback" in logged
    assert len(answered) == 13
    for token in made.values():  # the secret part, and most of it (one bad token is 1 off)
        for text in (logged, *answered):
            assert token[18:] not in text and token[18:-1] not in text


def test_protect_inference_and_all(serve, tokens):
    path, made = tokens
    app = serve(token_file=str(path), protect="inference")
    assert app("POST", "/predict", b"{}", JSON)[0] == 401
    assert app("POST", "/v2/models/churn/infer", b"{}", _auth(made["reader"]))[0] == 403
    assert app("POST", "/v2/models/churn/infer", b"{}", _auth(made["predictor"]))[0] == 200
    assert app("POST", "/api/v1/feedback", b"{}", _auth(made["predictor"]))[0] == 403
    assert app("GET", "/v2/models/churn")[0] == 200
    app = serve(token_file=str(path), protect="all")
    assert app("GET", "/v2/models/churn")[0] == 401
    assert app("GET", "/metrics", headers=_auth(made["reader"]))[0] == 200
    assert app("GET", "/v2/health/live")[0] == 200  # probes never need a token
    assert app("POST", "/invocations", b"{}", _auth(made["reader"]))[0] == 403


def test_tokens_created_or_revoked_take_effect_at_once_and_expired_ones_fail(serve, tokens):
    path, made = tokens
    app = serve(token_file=str(path))
    late, _ = create_token(path, "writer")
    assert app("POST", "/api/v1/feedback", b"{}", _auth(late))[0] == 200
    revoke_token(path, made["writer"][6:18])
    assert app("POST", "/api/v1/feedback", b"{}", _auth(made["writer"]))[0] == 401
    gone, record = create_token(path, "writer", expires_ms=1)
    status, body, _ = app("POST", "/api/v1/feedback", b"{}", _auth(gone))
    assert status == 401 and f"{record.id} has expired" in body["error"]


def test_a_broken_token_file_refuses_everyone_and_says_why(serve, tokens, caplog):
    path, made = tokens
    app = serve(token_file=str(path))
    path.write_text("garbage\n")
    with caplog.at_level(logging.ERROR, logger="mloop.serving.security"):
        assert app("POST", "/api/v1/feedback", b"{}", _auth(made["admin"]))[0] == 401
    assert "the token file is unusable" in caplog.text and ":1: not a JSON" in caplog.text


def test_a_large_refused_body_is_answered_not_reset(serve):
    app = serve()
    status, _, _ = app("POST", "/api/v1/feedback", b"x" * (3 << 20),
                          {"Content-Type": "text/plain"})
    assert status == 415


# -- the same checks on arbitrary headers: a refusal or a pass, nothing else ---------------

_HEADER = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
       path=st.sampled_from(["/predict", "/v2/models/m/infer", "/api/v1/feedback", "/v2",
                             "/x/"]),
       headers=st.dictionaries(st.sampled_from(["host", "origin", "authorization",
                                                "content-type",
                                                "inference-header-content-length"]),
                               _HEADER))
def test_the_checks_refuse_or_pass_any_headers(tmp_path_factory, method, path, headers):
    path_file = tmp_path_factory.getbasetemp() / "fuzz-tokens.jsonl"
    if not path_file.exists():
        create_token(path_file, "writer")
    guard = S.Guard(lambda *a: None, S.Security(token_file=str(path_file), protect="all"))
    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]}
    refusal = _refusal(guard, scope)
    if refusal is not None:
        assert refusal.status in (400, 401, 403, 415, 421)
        sent = headers.get("authorization", "")
        # what was sent as a credential is not echoed (the host it may equal may be)
        echoed_elsewhere = any(sent in v for k, v in headers.items() if k != "authorization")
        assert len(sent) < 20 or echoed_elsewhere or sent not in refusal.message


def _refusal(guard, scope):
    """The check's refusal, or None when it passes; any other exception escapes."""
    try:
        guard.check(scope)
    except S.Refusal as refusal:
        return refusal
    return None


# -- how mloop serve builds the checks ----------------------------------------------------

def test_serve_resolves_flags_and_the_users_settings(tmp_path, monkeypatch, capsys):
    from mloop.cli.serve import _security
    from mloop.core.settings import load_settings, user_config_path
    from mloop.errors import ConfigError

    found = _security("127.0.0.1", ("a.example",), None, "writes")
    assert found.token_file is None and found.allowed_hosts == ["a.example"]
    assert capsys.readouterr().err == ""
    _security("0.0.0.0", (), None, "writes")  # every interface and no tokens: said so
    assert "without --token-file: anyone who can reach the port" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="No token file"):
        _security("127.0.0.1", (), str(tmp_path / "none.jsonl"), "writes")
    with pytest.raises(InvalidInputError, match="not a host name"):
        _security("127.0.0.1", ("bad host",), None, "writes")
    with pytest.raises(InvalidInputError, match="--protect all needs tokens"):
        _security("127.0.0.1", (), None, "all")
    path = tmp_path / "t.jsonl"
    create_token(path, "writer")
    monkeypatch.setenv("MLOOP_SERVE_TOKENS", str(path))
    user_config_path().parent.mkdir(parents=True)
    user_config_path().write_text('[serving]\nallowed_hosts = ["models.example.com"]\n')
    found = _security("0.0.0.0", ("b.example",), None, "inference")
    assert found.token_file == str(path) and found.protect == "inference"
    assert found.allowed_hosts == ["models.example.com", "b.example"]
    assert capsys.readouterr().err == ""
    # a cloned repository cannot widen the Host check or bring its own tokens
    project = tmp_path / "repo"
    (project / ".mloop").mkdir(parents=True)
    for line in ('allowed_hosts = ["*"]', 'tokens = "theirs.jsonl"'):
        (project / ".mloop" / "config.toml").write_text(f"[serving]\n{line}\n")
        with pytest.raises(ConfigError, match="cannot be set in a project's config"):
            load_settings(project)


def test_several_workers_rebuild_the_checks_from_the_environment(monkeypatch):
    from dataclasses import asdict

    from mloop.serving.server import CONFIG_ENV, ServeConfig, app_factory

    config = ServeConfig(["models:/m/1"], security=S.Security(
        host="10.0.0.5", allowed_hosts=["a.example"], protect="all"))
    monkeypatch.setenv(CONFIG_ENV, json.dumps(asdict(config)))
    app = app_factory()
    (guard,) = [m for m in app.user_middleware if m.cls is S.Guard]
    assert guard.kwargs["security"] == config.security


def test_the_bound_address_reaches_the_host_check(monkeypatch):
    import uvicorn

    from mloop.serving.server import ServeConfig, serve

    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
    serve(ServeConfig(["models:/m/1"]), host="10.0.0.5", port=1)
    (guard,) = [m for m in ran["app"].user_middleware if m.cls is S.Guard]
    assert guard.kwargs["security"].host == "10.0.0.5" and ran["host"] == "10.0.0.5"
