"""Alerts: dedup, cooldown, resolve, lineage, logs and the webhook (SQLite and PostgreSQL)."""

import http.server
import json
import logging
import threading

import pytest

import mloop
from mloop import lineage
from mloop.errors import InvalidInputError, NotFoundError
from mloop.monitoring import alerting as A

HOUR = 3_600_000
T0 = 1_700_000_000_000


def _firing(rule="data-drift", subject="models:/churn/1", severity="warning", value=1.0,
            cooldown_ms=HOUR, message="drift.dataset = 1 (>= 1)"):
    return A.Firing(rule, "drift.dataset", subject, severity, value, 1.0, message, cooldown_ms)


def test_fire_dedup_clear_cooldown_and_a_new_alert(project, caplog):
    caplog.set_level(logging.WARNING, logger="mloop.monitoring")
    alert, new = A.fire(project, _firing(), now=T0)
    assert new is True
    assert (alert.status, alert.count, alert.opened_at, alert.last_seen_at) == (
        "open", 1, T0, T0)
    assert (alert.rule, alert.signal, alert.subject, alert.severity) == (
        "data-drift", "drift.dataset", "models:/churn/1", "warning")
    assert alert.value == 1.0 and alert.threshold == 1.0 and alert.resolved_at is None
    assert alert.uri == f"alerts:/{alert.id}" and alert.to_dict()["uri"] == alert.uri
    # the lineage graph: the model version --alert--> the alert
    _, out = lineage.neighbours(project, "models:/churn/1")
    assert [(e.dst, e.relation) for e in out] == [(alert.uri, "alert")]
    into, _ = lineage.neighbours(project, alert.uri)
    assert [e.src for e in into] == ["models:/churn/1"]
    # announced once, in the log
    records = [r for r in caplog.records if r.name == "mloop.monitoring"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert alert.id in records[0].getMessage() and "data-drift" in records[0].getMessage()

    again, new = A.fire(project, _firing(value=2.0, message="worse"), now=T0 + 1000)
    assert new is False
    assert (again.id, again.count, again.status) == (alert.id, 2, "open")
    assert (again.value, again.message, again.last_seen_at) == (2.0, "worse", T0 + 1000)
    assert again.opened_at == T0
    assert len([r for r in caplog.records if r.name == "mloop.monitoring"]) == 1

    assert A.clear(project, "data-drift", "models:/churn/1", now=T0 + 2000) == 1
    assert A.clear(project, "data-drift", "models:/churn/1", now=T0 + 3000) == 0  # not open
    (resolved,) = A.list_alerts(project)
    assert (resolved.status, resolved.resolved_at) == ("resolved", T0 + 2000)

    # within the cooldown (counted from when it opened): the same alert, reopened, quietly
    reopened, new = A.fire(project, _firing(), now=T0 + HOUR - 1)
    assert new is False
    assert (reopened.id, reopened.status, reopened.count) == (alert.id, "open", 3)
    assert reopened.resolved_at is None
    assert len([r for r in caplog.records if r.name == "mloop.monitoring"]) == 1
    assert A.clear(project, "data-drift", "models:/churn/1", now=T0 + HOUR) == 1

    # after the cooldown: a new alert, announced again, with its own lineage edge
    fresh, new = A.fire(project, _firing(), now=T0 + HOUR + 1)
    assert new is True and fresh.id != alert.id and fresh.count == 1
    assert len([r for r in caplog.records if r.name == "mloop.monitoring"]) == 2
    _, out = lineage.neighbours(project, "models:/churn/1")
    assert {e.dst for e in out} == {alert.uri, fresh.uri}
    assert [a.id for a in A.list_alerts(project)] == [fresh.id, alert.id]  # newest first
    assert [a.id for a in A.list_alerts(project, open_only=True)] == [fresh.id]


def test_an_open_alert_is_updated_whatever_its_age(sqlite_project):
    first, _ = A.fire(sqlite_project, _firing(cooldown_ms=1), now=T0)
    later, new = A.fire(sqlite_project, _firing(cooldown_ms=1), now=T0 + 30 * 24 * HOUR)
    assert new is False and later.id == first.id and later.count == 2


def test_rules_and_subjects_are_separate_alerts(project):
    a, _ = A.fire(project, _firing(), now=T0)
    b, new_b = A.fire(project, _firing(rule="other"), now=T0)
    c, new_c = A.fire(project, _firing(subject="models:/churn/2"), now=T0)
    assert new_b and new_c and len({a.id, b.id, c.id}) == 3
    assert A.clear(project, "other", "models:/churn/1") == 1
    assert {x.rule for x in A.list_alerts(project, open_only=True)} == {"data-drift"}


def test_resolve_by_hand_and_unknown_id(project):
    alert, _ = A.fire(project, _firing(), now=T0)
    done = mloop.monitoring.resolve_alert(alert.id)
    assert done.status == "resolved" and done.resolved_at is not None
    assert A.resolve(project, alert.id).resolved_at == done.resolved_at  # idempotent
    with pytest.raises(NotFoundError, match="No alert 'nope'"):
        A.resolve(project, "nope")
    with pytest.raises(NotFoundError):
        mloop.monitoring.resolve_alert("0" * 32)


def test_open_counts_and_listing_by_model(project):
    assert A.open_counts(project) == {"info": 0, "warning": 0, "critical": 0}
    A.fire(project, _firing(rule="r1", severity="critical"), now=T0)
    A.fire(project, _firing(rule="r2", severity="critical"), now=T0)
    A.fire(project, _firing(rule="r3", severity="info", subject="models:/fraud/3"), now=T0)
    done, _ = A.fire(project, _firing(rule="r4"), now=T0)
    A.resolve(project, done.id)
    assert A.open_counts(project) == {"info": 1, "warning": 0, "critical": 2}
    assert {a.rule for a in mloop.monitoring.alerts(model="fraud")} == {"r3"}
    assert {a.rule for a in mloop.monitoring.alerts(model="models:/churn/1")} == {
        "r1", "r2", "r4"}
    assert {a.rule for a in mloop.monitoring.alerts(model="churn", open_only=True)} == {
        "r1", "r2"}
    assert len(mloop.monitoring.alerts(limit=2)) == 2
    assert mloop.monitoring.alerts(model="chur") == []  # a name, not a prefix of one


def test_listing_by_model_matches_the_name_exactly(project):
    A.fire(project, _firing(rule="mine", subject="models:/a_b/1"), now=T0)
    A.fire(project, _firing(rule="theirs", subject="models:/axb/1"), now=T0)
    assert {a.rule for a in mloop.monitoring.alerts(model="a_b")} == {"mine"}


def test_listing_by_version_matches_the_version_exactly(sqlite_project):
    A.fire(sqlite_project, _firing(rule="ten", subject="models:/churn/10"), now=T0)
    assert mloop.monitoring.alerts(model="models:/churn/1") == []


def test_concurrent_firings_open_one_alert_on_postgres(tmp_path, pg_uri):
    from mloop.project import Project

    proj = Project.init(tmp_path / "pg", store_uri=pg_uri)
    try:
        for round_ in range(5):
            subject = f"models:/race/{round_ + 1}"
            barrier = threading.Barrier(8)

            def go(subject=subject, barrier=barrier):
                barrier.wait()
                A.fire(proj, _firing(subject=subject), now=T0)

            threads = [threading.Thread(target=go) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            alerts = A.list_alerts(proj, subject=subject)
            assert len(alerts) == 1 and alerts[0].count == 8
    finally:
        proj.close()


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        length = int(self.headers["content-length"])
        self.received.append((self.path, self.headers["content-type"],
                              json.loads(self.rfile.read(length))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("MLOOP_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")  # loopback needs allowing
    _Hook.received = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Hook.received
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_notify_posts_the_alert_as_json(sqlite_project, hook):
    base, received = hook
    alert, _ = A.fire(sqlite_project, _firing(severity="critical", message="accuracy fell"),
                      now=T0)
    A.notify(f"{base}/services/T000/B000", alert, wait=True)
    ((path, ctype, body),) = received
    assert path == "/services/T000/B000" and ctype == "application/json"
    assert body["alert"] == json.loads(json.dumps(alert.to_dict()))
    assert body["alert"]["uri"] == alert.uri
    assert body["text"] == "[critical] data-drift on models:/churn/1: accuracy fell"


def test_fire_calls_the_webhook_for_new_alerts_only(sqlite_project, hook, monkeypatch):
    base, received = hook
    calls = []
    real = A.notify
    monkeypatch.setattr(A, "notify", lambda url, alert, **kw: calls.append(alert.id)
                        or real(url, alert, wait=True))
    first, _ = A.fire(sqlite_project, _firing(), webhook=f"{base}/hook", now=T0)
    A.fire(sqlite_project, _firing(), webhook=f"{base}/hook", now=T0 + 1)
    assert calls == [first.id]
    assert [b["alert"]["id"] for _, _, b in received] == [first.id]


def test_a_failing_webhook_never_logs_its_token(sqlite_project, caplog):
    caplog.set_level(logging.DEBUG)
    with socket_closed() as port:
        url = f"http://127.0.0.1:{port}/services/T000/SECRET-TOKEN-123?key=hunter2"
        alert, _ = A.fire(sqlite_project, _firing(), now=T0)
        A.notify(url, alert, wait=True)  # refused: a loopback address, not allowed
    failures = [r for r in caplog.records if "webhook" in r.getMessage()]
    assert len(failures) == 1 and alert.id in failures[0].getMessage()
    assert "127.0.0.1" in failures[0].getMessage()
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "SECRET-TOKEN-123" not in text and "hunter2" not in text


def test_check_webhook_is_the_config_time_check():
    assert A.check_webhook("http://h/x") == "http://h/x"
    for bad in ("ftp://h/x", "hooks.example.com/x", "https://", "file:///etc/passwd"):
        with pytest.raises(InvalidInputError, match="http"):
            A.check_webhook(bad)
    with pytest.raises(InvalidInputError) as err:
        A.check_webhook("ftp://h/SECRET")
    assert "SECRET" not in err.value.message


class socket_closed:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""

    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()
