"""``mloop token …`` through the real entry point."""

import json
import os
import subprocess
import sys

from mloop.core.credentials import get_credentials
from tests.cli.test_cli import run_cli


def _run(*args, cwd, stdin="", env=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    return subprocess.run([sys.executable, "-m", "mloop", *args], input=stdin, cwd=cwd,
                          env=environ | (env or {}), capture_output=True, text=True,
                          timeout=60)


def test_create_prints_the_token_once_and_keeps_only_its_digest(tmp_path):
    out = run_cli("token", "create", "--role", "writer", "--name", "labeller", "--file",
                  "tokens.jsonl", cwd=tmp_path)  # outside any project: fine
    token = out.stdout.strip()
    assert token.startswith("mloop_") and len(token) == 83 and "\n" not in token
    assert "shown only this once" in out.stderr and token not in out.stderr
    assert token[18:] not in (tmp_path / "tokens.jsonl").read_text()
    listed = json.loads(run_cli("token", "list", "--file", "tokens.jsonl", "--json",
                                cwd=tmp_path).stdout)
    (entry,) = listed
    assert entry["id"] == token[6:18] and entry["role"] == "writer"
    assert entry["name"] == "labeller" and entry["expired"] is False
    lifetime = entry["expires_ms"] - entry["created_ms"]  # the default: 90 days from now
    assert abs(lifetime - 90 * 86_400_000) < 60_000
    text = run_cli("token", "list", "--file", "tokens.jsonl", cwd=tmp_path).stdout
    assert entry["id"] in text and "labeller" in text and token[18:] not in text
    env_file = {"MLOOP_SERVE_TOKENS": str(tmp_path / "tokens.jsonl")}
    out = _run("token", "create", "--role", "reader", "--expires", "never", cwd=tmp_path,
               env=env_file)
    assert out.returncode == 0, out.stderr
    assert "expires never" in out.stderr
    out = _run("token", "revoke", entry["id"], cwd=tmp_path, env=env_file)
    assert out.returncode == 0 and f"Revoked token {entry['id']} (writer)" in out.stdout
    again = _run("token", "revoke", entry["id"], cwd=tmp_path, env=env_file)
    assert again.returncode == 3 and "No token" in again.stderr


def test_token_mistakes_are_clear_errors(tmp_path):
    out = _run("token", "create", "--role", "writer", cwd=tmp_path)
    assert out.returncode == 2 and "Give --file PATH" in out.stderr
    out = _run("token", "create", "--role", "root", "--file", "t", cwd=tmp_path)
    assert out.returncode == 2 and "root" in out.stderr
    out = _run("token", "create", "--role", "writer", "--expires", "soon", "--file", "t",
               cwd=tmp_path)
    assert out.returncode == 2 and "Cannot read the duration" in out.stderr
    out = _run("token", "list", "--file", "missing.jsonl", cwd=tmp_path)
    assert out.returncode == 2 and "No token file" in out.stderr
    assert not (tmp_path / "t").exists()


def test_login_reads_the_token_from_stdin_never_the_command_line(tmp_path):
    token = run_cli("token", "create", "--role", "writer", "--file", "t.jsonl",
                    cwd=tmp_path).stdout.strip()
    out = _run("token", "login", "http://127.0.0.1:8080/", cwd=tmp_path, stdin=token + "\n")
    assert out.returncode == 0, out.stderr
    assert token not in out.stdout + out.stderr
    assert get_credentials("servers", "http://127.0.0.1:8080") == {"token": token}
    wrong = "not-a-token-but-a-password"
    out = _run("token", "login", "http://127.0.0.1:9090", cwd=tmp_path, stdin=wrong)
    assert out.returncode == 2 and "not an mloop token" in out.stderr
    assert wrong not in out.stdout + out.stderr
    assert get_credentials("servers", "http://127.0.0.1:9090") == {}
    out = _run("token", "logout", "http://127.0.0.1:8080", cwd=tmp_path)
    assert out.returncode == 0 and "Forgot" in out.stdout
    assert get_credentials("servers", "http://127.0.0.1:8080") == {}
    out = _run("token", "logout", "http://127.0.0.1:8080", cwd=tmp_path)
    assert "No token was kept" in out.stdout
