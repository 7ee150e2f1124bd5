"""The HTTP client of mloop servers: where the token comes from, what is sent, errors."""

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mloop.core.client import ServerClient, normalize_url, server_token
from mloop.core.credentials import set_credentials
from mloop.core.tokens import ForbiddenError, TokenError
from mloop.errors import InvalidInputError, NotFoundError, ServiceUnavailableError

TOKEN = "mloop_" + "1" * 12 + "_" + "2" * 64


class _Recorder(BaseHTTPRequestHandler):
    """Answers by path (/ok, /401, /403, /404, /500, /redirect) and records each request."""

    seen: list = []
    target = ""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        type(self).seen.append((self.command, self.path, dict(self.headers),
                                self.rfile.read(length)))
        status = {"/ok": 200, "/401": 401, "/403": 403, "/404": 404, "/500": 500,
                  "/redirect": 302}[self.path]
        body = json.dumps({"ok": True} if status == 200 else {"error": f"said {status}"})
        self.send_response(status)
        if status == 302:
            self.send_header("location", type(self).target + "/ok")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    started = []
    for _ in range(2):
        handler = type("Handler", (_Recorder,), {"seen": []})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append((httpd, handler, f"http://127.0.0.1:{httpd.server_address[1]}"))
    started[0][1].target = started[1][2]  # /redirect points at the other server
    yield started
    for httpd, *_ in started:
        httpd.shutdown()
        httpd.server_close()


def test_the_token_comes_from_the_env_then_the_credentials_file(monkeypatch):
    assert server_token("http://127.0.0.1:8080") is None
    set_credentials("servers", "http://127.0.0.1:8080", {"token": TOKEN})
    assert server_token("HTTP://127.0.0.1:8080/") == TOKEN  # the same server, spelt so
    assert server_token("http://127.0.0.1:9090") is None
    monkeypatch.setenv("MLOOP_TOKEN", " other ")
    assert server_token("http://127.0.0.1:8080") == "other"


def test_urls_are_checked():
    assert normalize_url(" HTTPS://Models.Example.com:8443/api/ ") == \
        "https://models.example.com:8443/api"
    for bad in ("ftp://x", "x:8080", "http://", "http://user:pw@host", "http://tok@host"):
        with pytest.raises(InvalidInputError):
            normalize_url(bad)


def test_json_and_the_bearer_token_are_sent(servers):
    _, handler, url = servers[0]
    assert ServerClient(url, token=TOKEN).post("/ok", {"a": 1}) == {"ok": True}
    method, path, headers, body = handler.seen[-1]
    assert (method, path, json.loads(body)) == ("POST", "/ok", {"a": 1})
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert ServerClient(url).get("/ok") == {"ok": True}  # no token known: none sent
    assert "Authorization" not in handler.seen[-1][2]


def test_redirects_are_not_followed_so_the_token_stays_home(servers):
    (_, _, url), (_, other, _) = servers
    with pytest.raises(InvalidInputError, match=r"redirected to .*/ok; use that URL"):
        ServerClient(url, token=TOKEN).post("/redirect", {})
    assert other.seen == []


def test_answers_become_mloop_errors_without_the_token(servers):
    _, _, url = servers[0]
    client = ServerClient(url, token=TOKEN)
    with pytest.raises(TokenError, match=r"token was refused \(said 401\).*MLOOP_TOKEN") \
            as caught:
        client.post("/401", {})
    assert TOKEN not in caught.value.message and "mloop login" in caught.value.message
    with pytest.raises(TokenError, match="This server needs a token"):
        ServerClient(url).post("/401", {})
    with pytest.raises(ForbiddenError, match="said 403"):
        client.post("/403", {})
    with pytest.raises(NotFoundError, match="answered 404: said 404"):
        client.get("/404")
    with pytest.raises(ServiceUnavailableError, match="answered 500"):
        client.get("/500")


def test_an_unreachable_server_is_a_service_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServiceUnavailableError, match="Cannot reach the mloop server"):
        ServerClient(f"http://127.0.0.1:{port}", token=TOKEN, timeout=5).get("/ok")


def test_a_token_over_plain_http_to_another_host_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="mloop.client"):
        ServerClient("http://127.0.0.1:1", token=TOKEN)
        assert caplog.records == []
        ServerClient("http://models.example.com", token=TOKEN)
    assert "over plain HTTP" in caplog.text and TOKEN not in caplog.text
