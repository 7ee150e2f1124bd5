"""``mloop login URL`` / ``mloop logout URL`` through the real entry point."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mloop.core.credentials import credentials_path, get_credentials, server_token
from mloop.project import Project
from mloop.server import tokens
from mloop.server.auth import TokenAuth
from tests.server.live import LiveServer
from tests.server.test_auth import make_app


def _run(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    return subprocess.run([sys.executable, "-m", "mloop", *args], input=stdin, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def server(sqlite_project: Project) -> Iterator[tuple[Project, str]]:
    auth = TokenAuth(sqlite_project)
    with LiveServer(make_app(sqlite_project, auth)) as served:
        yield sqlite_project, served.url
    auth.close()


def test_login_checks_the_token_and_keeps_it_private(server: tuple[Project, str],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    project, url = server
    token, _, _ = tokens.create(project, "alice", "writer")
    out = _run("login", url + "/", cwd=tmp_path, stdin=token + "\n")
    assert out.returncode == 0, out.stderr
    assert "knows this token as alice (writer)" in out.stderr
    assert token not in out.stdout + out.stderr
    assert get_credentials("servers", url) == {"token": token}
    assert stat.S_IMODE(credentials_path().stat().st_mode) == 0o600
    assert server_token(url.upper().replace("HTTP", "http")) == token
    # MLOOP_TOKEN wins over the file
    monkeypatch.setenv("MLOOP_TOKEN", "from-env")
    assert server_token(url) == "from-env"
    monkeypatch.delenv("MLOOP_TOKEN")
    out = _run("logout", url, cwd=tmp_path)
    assert out.returncode == 0 and "Forgot" in out.stdout
    assert server_token(url) is None


def test_a_token_the_server_refuses_is_not_saved(server: tuple[Project, str],
                                                 tmp_path: Path) -> None:
    project, url = server
    token, _, _ = tokens.create(project, "bob", "writer")
    tokens.revoke(project, "bob")
    out = _run("login", url, cwd=tmp_path, stdin=token)
    assert out.returncode == 2 and "revoked" in out.stderr
    assert token not in out.stdout + out.stderr
    assert get_credentials("servers", url) == {}


def test_an_unreachable_server_is_reported_and_the_token_saved(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    token = "mloop_" + "a" * 12 + "_" + "b" * 64
    out = _run("login", url, cwd=tmp_path, stdin=token)
    assert out.returncode == 0 and "Could not check the token" in out.stderr
    assert get_credentials("servers", url) == {"token": token}
    out = _run("login", "--no-check", "http://127.0.0.1:1", cwd=tmp_path, stdin=token)
    assert out.returncode == 0 and "Could not check" not in out.stderr


def test_login_never_takes_the_token_from_argv(tmp_path: Path) -> None:
    token = "mloop_" + "a" * 12 + "_" + "b" * 64
    out = _run("login", "http://127.0.0.1:5000", token, cwd=tmp_path)
    assert out.returncode == 2 and "never from the command line" in out.stderr
    assert token not in out.stdout + out.stderr
    assert get_credentials("servers", "http://127.0.0.1:5000") == {}
    out = _run("login", "http://127.0.0.1:5000", cwd=tmp_path, stdin="hunter2\n")
    assert out.returncode == 2 and "not an mloop token" in out.stderr
    assert "hunter2" not in out.stdout + out.stderr
