"""Webhooks: refused for private addresses unless allowed, retried, delivered before exit,
never blocking the caller, never logged with their secret path; against a real HTTP
receiver on 127.0.0.1."""

import http.server
import ipaddress
import json
import logging
import socket
import threading

import pytest

from mloop.errors import ConfigError, InvalidInputError
from mloop.monitoring import webhooks as W
from tests.cli.test_cli import run_cli
from tests.monitoring.test_runner import SERVE, Served, X

TOKEN = "T0K3N-path-secret"
BODY = json.dumps({"alert": {"id": "a1"}}).encode()


class Receiver:
    """A real HTTP server on 127.0.0.1 that records POSTs and answers as told."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        self.statuses: list[int] = []  # answered in turn, then 204
        self.location = ""
        self.gate = threading.Event()
        self.gate.set()
        self.delay = 0.0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                owner.gate.wait(10)
                if owner.delay:
                    threading.Event().wait(owner.delay)
                status = owner.statuses.pop(0) if owner.statuses else 204
                if status < 300:
                    owner.received.append((self.path, body))
                self.send_response(status)
                if owner.location:
                    self.send_header("location", owner.location)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/{TOKEN}?key=hunter2"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def allowed(monkeypatch):
    monkeypatch.setenv("MLOOP_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")


def _no_secret(text):
    assert TOKEN not in text and "hunter2" not in text, text


# --- the address policy ----------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.0.9", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
    "169.254.169.254", "fe80::1", "fc00::1", "fd12::9", "0.0.0.0", "::", "100.64.0.1",
    "224.0.0.1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "192.0.2.1", "240.0.0.1",
])
def test_non_public_addresses_are_refused(address):
    with pytest.raises(W.WebhookRefused, match="allow_hosts"):
        W.check_addresses("h.example", [ipaddress.ip_address(address)], W.AllowList.parse([]))


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    W.check_addresses("h.example", [ipaddress.ip_address(address)], W.AllowList.parse([]))


def test_the_allow_list_takes_names_and_networks():
    allow = W.AllowList.parse(["Alerts.Internal.", "10.0.0.0/8", "::1", "192.168.1.7"])
    ten, ip6 = ipaddress.ip_address("10.9.9.9"), ipaddress.ip_address("::1")
    W.check_addresses("alerts.internal", [ipaddress.ip_address("172.16.0.1")], allow)
    W.check_addresses("x", [ten, ip6, ipaddress.ip_address("192.168.1.7")], allow)
    with pytest.raises(W.WebhookRefused):
        W.check_addresses("x", [ipaddress.ip_address("192.168.1.8")], allow)


def test_every_resolved_address_is_checked(monkeypatch, receiver, allowed):
    """A name resolving to a public and a private address is refused as a whole."""
    real = socket.getaddrinfo

    def fake(host, *args, **kw):
        if host == "mixed.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, receiver.port))
                    for a in ("8.8.8.8", "10.0.0.7")]
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(W.WebhookRefused, match=r"10\.0\.0\.7"):
        W.post(f"http://mixed.example:{receiver.port}/x", BODY)
    assert receiver.received == []


@pytest.mark.parametrize("host", ["localhost", "2130706433", "127.1"])
def test_loopback_behind_a_name_or_another_spelling_is_refused(receiver, host):
    url = f"http://{host}:{receiver.port}/hooks/{TOKEN}"
    with pytest.raises(W.WebhookRefused) as err:
        W.post(url, BODY)
    assert receiver.received == []
    _no_secret(err.value.message)


def test_the_project_config_cannot_allow_hosts(sqlite_project):
    from mloop.core.settings import load_settings

    cfg = sqlite_project.root / ".mloop" / "config.toml"
    cfg.write_text(cfg.read_text() + '\n[webhooks]\nallow_hosts = ["127.0.0.1"]\n')
    with pytest.raises(ConfigError, match="cannot be set in a project's config"):
        load_settings(sqlite_project.root)


def test_the_user_config_allows_hosts(receiver, tmp_path):
    from mloop.core.settings import user_config_dir

    user_config_dir().mkdir(parents=True, exist_ok=True)
    (user_config_dir() / "config.toml").write_text(
        '[webhooks]\nallow_hosts = ["127.0.0.0/8"]\n')
    assert W.post(receiver.url, BODY) == 204
    assert receiver.received == [(f"/hooks/{TOKEN}?key=hunter2", {"alert": {"id": "a1"}})]


# --- delivery ----------------------------------------------------------------------------

def test_refused_by_default_and_logged_without_the_url(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    assert W.deliver(receiver.url, BODY, "alert a1") is False
    assert receiver.received == []
    (record,) = [r for r in caplog.records if "webhook" in r.getMessage()]
    message = record.getMessage()
    assert "refused" in message and "loopback" in message
    assert f"http://127.0.0.1:{receiver.port}/…" in message
    assert "MLOOP_WEBHOOK_ALLOW_HOSTS" in message
    _no_secret(caplog.text)


def test_delivered_when_allowed(receiver, allowed):
    assert W.deliver(receiver.url, BODY, "alert a1") is True
    assert receiver.received == [(f"/hooks/{TOKEN}?key=hunter2", {"alert": {"id": "a1"}})]


def test_retries_with_backoff_then_succeeds(receiver, allowed, caplog):
    receiver.statuses = [503, 500]
    assert W.deliver(receiver.url, BODY, "alert a1", backoff=0.01) is True
    assert len(receiver.received) == 1


def test_gives_up_after_the_attempts_and_says_so(receiver, allowed, caplog):
    caplog.set_level(logging.WARNING)
    receiver.statuses = [500, 502, 503, 504]
    assert W.deliver(receiver.url, BODY, "alert a1", backoff=0.01) is False
    assert receiver.statuses == [504]  # three attempts, no more
    assert "after 3 attempt(s): HTTP 503" in caplog.text
    _no_secret(caplog.text)


def test_a_client_error_is_not_retried(receiver, allowed, caplog):
    caplog.set_level(logging.WARNING)
    receiver.statuses = [404, 404]
    assert W.deliver(receiver.url, BODY, "alert a1", backoff=0.01) is False
    assert receiver.statuses == [404]
    assert "HTTP 404" in caplog.text


def test_redirects_are_not_followed(receiver, allowed, caplog):
    caplog.set_level(logging.WARNING)
    target = Receiver()
    try:
        receiver.statuses = [302]
        receiver.location = f"http://127.0.0.1:{target.port}/elsewhere"
        assert W.deliver(receiver.url, BODY, "alert a1") is False
        assert target.received == [] and receiver.received == []
        assert "redirect" in caplog.text
        _no_secret(caplog.text)
    finally:
        target.close()


def test_a_closed_port_is_retried_then_logged(allowed, caplog):
    caplog.set_level(logging.WARNING)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    try:
        url = f"http://user:hunter2@127.0.0.1:{sock.getsockname()[1]}/hooks/{TOKEN}"
        assert W.deliver(url, BODY, "alert a1", backoff=0.01) is False
    finally:
        sock.close()
    assert "ConnectionRefusedError" in caplog.text
    _no_secret(caplog.text)


def test_sending_never_blocks_the_caller(receiver, allowed):
    outbox = W.Outbox()
    receiver.gate.clear()  # the receiver holds every request until released
    for i in range(3):
        outbox.submit(receiver.url, BODY, f"alert {i}")  # returns while it is held
    assert receiver.received == []
    receiver.gate.set()
    assert outbox.flush(10) == 0
    assert len(receiver.received) == 3 and outbox.delivered == 3


def test_flush_is_bounded(receiver, allowed, caplog):
    outbox = W.Outbox()
    receiver.gate.clear()  # never answers within the flush
    outbox.submit(receiver.url, BODY, "alert slow")
    left = outbox.flush(0.3)  # returns though the receiver never answers
    assert left + outbox.failed == 1 and outbox.delivered == 0 and receiver.received == []
    assert "still pending" in caplog.text or "timed out" in caplog.text


def test_check_webhook_refuses_other_schemes_without_the_path():
    assert W.check_webhook("http://h/x") == "http://h/x"
    for bad in ("ftp://h/SECRET", "hooks.example.com/SECRET", "https://", "file:///SECRET",
                "http://h:port/SECRET"):
        with pytest.raises(InvalidInputError, match="http") as err:
            W.check_webhook(bad)
        assert "SECRET" not in err.value.message


# --- through the real CLI --------------------------------------------------------------

@pytest.fixture
def firing_project(sqlite_project):
    """A served model with logged predictions and 8 rules that all fire."""
    s = Served(sqlite_project)
    s.log(X.iloc[SERVE[:40]])
    return sqlite_project


def _monitoring_yaml(root, url):
    rules = "".join(f"  - {{name: r{i}, signal: predictions.count, op: '>=', threshold: 1}}\n"
                    for i in range(8))
    (root / ".mloop" / "monitoring.yaml").write_text(f"webhook: '{url}'\nrules:\n{rules}")


def test_monitor_run_once_delivers_every_alert_before_it_exits(firing_project, receiver,
                                                                monkeypatch):
    root = firing_project.root
    _monitoring_yaml(root, receiver.url)
    receiver.delay = 0.2  # a receiver slower than the process's exit
    monkeypatch.setenv("MLOOP_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    out = run_cli("monitor", "run", "--once", "--json", cwd=root)
    (result,) = json.loads(out.stdout)
    assert len(result["fired"]) == 8
    assert sorted(b["alert"]["rule"] for _, b in receiver.received) == [
        f"r{i}" for i in range(8)]
    _no_secret(out.stdout + out.stderr)


def test_monitor_run_once_refuses_a_loopback_webhook_by_default(firing_project, receiver):
    root = firing_project.root
    _monitoring_yaml(root, receiver.url)
    out = run_cli("monitor", "run", "--once", cwd=root)
    assert receiver.received == []
    assert "refused" in out.stderr and "MLOOP_WEBHOOK_ALLOW_HOSTS" in out.stderr
    _no_secret(out.stdout + out.stderr)
