"""``mloop serve --token-file … --allowed-host …`` as a real process: the write route is
protected, limited and honest about labels it cannot match yet."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import mloop
from mloop.core.tokens import create_token
from tests.cli.test_cli import run_cli
from tests.serving.test_security import _altered, request
from tests.serving.test_server import X, Y, _free_port

JSON = {"Content-Type": "application/json"}


class Server:
    def __init__(self, project, tmp_path, *extra, env=None):
        self.project, self.port = project, _free_port()
        self.tokens = tmp_path / "tokens.jsonl"
        self.made = {role: create_token(self.tokens, role)[0] for role in ("reader", "writer")}
        self.log_path = tmp_path / "serve.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mloop", "serve", "models:/churn/1", "--port",
             str(self.port), "--token-file", str(self.tokens), "--allowed-host",
             "models.example.com", "--monitor-every", "0", *extra],
            cwd=project.root, env=environ | (env or {}), stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/v2/health/ready")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"server did not become ready: {self.log_path.read_text()}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def call(self, method, path, body=None, headers=None, host=None, role=None):
        raw = body if isinstance(body, bytes) else (b"" if body is None else
                                                    json.dumps(body).encode())
        headers = dict(headers if headers is not None else JSON)
        if role is not None:
            headers["Authorization"] = f"Bearer {self.made[role]}"
        return request(self.port, method, path, raw, headers,
                       host or f"127.0.0.1:{self.port}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One protected server for the module (starting one costs seconds)."""
    from mloop.project import Project, set_project

    home = tmp_path_factory.mktemp("protected")
    with pytest.MonkeyPatch.context() as patch:  # as tests/conftest.py's _isolate does
        for key in [k for k in os.environ if k.startswith("MLOOP_")]:
            patch.delenv(key)
        patch.setenv("XDG_CONFIG_HOME", str(home / "user-config"))
        patch.setenv("MLOOP_CAPTURE_PACKAGES", "0")
        project = Project.init(home / "proj")
        set_project(project)
        with mloop.start_run():
            mloop.log_model(LogisticRegression(max_iter=5000).fit(X, Y),
                            input_example=X[:5], registered_name="churn", onnx=False)
        set_project(None)
        server = Server(project, home, env={"MLOOP_FEEDBACK_MAX_LABEL_BYTES": "1000"})
    yield server
    server.stop()


def test_feedback_must_be_json(served):
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=b"):
        status, body, _ = served.call("POST", "/api/v1/feedback",
                                      b'{"request_id": "r1", "label": 1}',
                                      {"Content-Type": content_type}, role="writer")
        assert status == 415 and "application/json" in body["error"], content_type
    status, body, _ = served.call("POST", "/api/v1/feedback", b"request_id=r1&label=1",
                                  {"Content-Type": "application/x-www-form-urlencoded"},
                                  role="writer")
    assert status == 415


def test_the_host_must_name_the_server(served):
    one = {"request_id": "host-check", "label": 1}
    assert served.call("POST", "/api/v1/feedback", one, host="rebind.attacker.example",
                       role="writer")[0] == 421
    assert served.call("GET", "/v2", host="rebind.attacker.example")[0] == 421
    for good in (f"localhost:{served.port}", "models.example.com", f"[::1]:{served.port}"):
        assert served.call("POST", "/api/v1/feedback", one, host=good, role="writer")[0] \
            == 200, good


def test_sizes_and_counts_are_limited_and_the_limit_is_named(served):
    many = {"items": [{"request_id": f"r{i}", "label": 1} for i in range(100_001)]}
    status, body, _ = served.call("POST", "/api/v1/feedback", many, role="writer")
    assert status == 413 and body["limit"] == "feedback_max_items" and body["value"] == 10000
    assert "feedback_max_items = 10000" in body["error"]
    listed = {"request_id": "r-list", "label": [1] * 10_001}  # each element is a label
    status, body, _ = served.call("POST", "/api/v1/feedback", listed, role="writer")
    assert status == 413 and body["limit"] == "feedback_max_items"
    exactly = {"items": [{"request_id": f"ok{i}", "label": i % 2} for i in range(10_000)]}
    status, body, _ = served.call("POST", "/api/v1/feedback", exactly, role="writer")
    assert (status, body) == (200, {"stored": 10_000, "unmatched": 10_000})
    # the label limit comes from the settings (MLOOP_FEEDBACK_MAX_LABEL_BYTES=1000 here)
    big = {"items": [{"request_id": "a", "label": 1}, {"request_id": "b", "label": "x" * 999}]}
    status, body, _ = served.call("POST", "/api/v1/feedback", big, role="writer")
    assert status == 413 and body["limit"] == "feedback_max_label_bytes"
    assert "items[1]: a label of 1,001 bytes" in body["error"] and body["value"] == 1000
    fits = {"request_id": "fits", "label": "x" * 998}  # 1000 bytes with its quotes
    assert served.call("POST", "/api/v1/feedback", fits, role="writer")[0] == 200
    stored = served.call("POST", "/api/v1/feedback", {"request_id": "big", "label":
                                                      "y" * 5_000_000}, role="writer")
    assert stored[0] == 413


def test_unknown_request_ids_are_stored_as_not_yet_matched(served):
    status, body, _ = served.call("POST", "/api/v1/feedback",
                                  {"request_id": "nonexistent", "label": 1}, role="writer")
    assert (status, body) == (200, {"stored": 1, "unmatched": 1})
    status, body, _ = served.call("POST", "/predict",
                                  {"records": X[:2].to_dict(orient="records")})
    assert status == 200
    rid = body["request_id"]
    # sent at once (the log is written a second later) and after: matched both times
    for _ in range(2):
        status, body, _ = served.call("POST", "/api/v1/feedback", {"items": [
            {"request_id": rid, "label": [1, 0]}, {"request_id": rid, "row": 2,
                                                   "label": 1}]}, role="writer")
        assert (status, body) == (200, {"stored": 3, "unmatched": 1})  # there is no row 2
        time.sleep(1.5)


def test_writes_need_a_writer_token_and_the_token_is_never_shown(served):
    label = {"request_id": "tok", "label": 1}
    status, body, answer = served.call("POST", "/api/v1/feedback", label)
    assert status == 401 and answer.getheader("www-authenticate") == 'Bearer realm="mloop"'
    status, body, answer = served.call("POST", "/api/v1/feedback", label, role="reader")
    assert status == 403 and "'writer'" in body["error"]
    bad = {**JSON, "Authorization": "Bearer " + _altered(served.made["writer"])}
    status, body, answer = served.call("POST", "/api/v1/feedback", label, bad)
    assert status == 401 and 'error="invalid_token"' in answer.getheader("www-authenticate")
    assert served.call("POST", "/api/v1/feedback", label, role="writer")[0] == 200
    # inference and reads stay open with --protect writes (the default)
    assert served.call("POST", "/predict", {"records": X[:1].to_dict(orient="records")}
                       )[0] == 200
    assert served.call("GET", "/v2/models/churn")[0] == 200
    for token in served.made.values():
        assert token[18:] not in served.log_path.read_text()
    assert "refused POST /api/v1/feedback" in served.log_path.read_text()


def test_the_python_api_and_the_cli_send_labels_with_the_users_token(served, monkeypatch,
                                                                     tmp_path):
    from mloop.core.tokens import TokenError

    with pytest.raises(TokenError, match="This server needs a token"):
        mloop.log_feedback("api-1", 1, server=served.url)
    monkeypatch.setenv("MLOOP_TOKEN", served.made["writer"])
    got = mloop.log_feedback("api-1", [1, 0], server=served.url)
    assert (got.stored, got.unmatched) == (2, 2)
    monkeypatch.delenv("MLOOP_TOKEN")
    cli = ("monitor", "feedback", "cli-1", "1", "--server", served.url)
    out = run_cli(*cli, cwd=tmp_path, check=False)  # outside any project: fine
    assert out.returncode == 2 and "needs a token" in out.stderr and "Traceback" not in \
        out.stderr
    login = subprocess.run([sys.executable, "-m", "mloop", "token", "login", served.url],
                           input=served.made["writer"] + "\n", capture_output=True,
                           text=True, cwd=tmp_path, timeout=60)
    assert login.returncode == 0, login.stderr
    assert served.made["writer"] not in login.stdout + login.stderr
    creds = Path(os.environ["XDG_CONFIG_HOME"]) / "mloop" / "credentials.toml"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    out = run_cli(*cli, "--json", cwd=tmp_path)
    assert json.loads(out.stdout) == {"stored": 1, "unmatched": 1}
    (tmp_path / "labels.csv").write_text("request_id,label\nf1,1\nf2,0\n")
    out = run_cli("monitor", "feedback", "--file", "labels.csv", "--server", served.url,
                  cwd=tmp_path)
    assert out.stdout.startswith("Stored 2 labels, 2 not yet matched")
    stored = mloop.monitoring.feedback.read(served.project, 0)
    assert {"api-1", "cli-1", "f1", "f2"} <= set(stored.request_id)
