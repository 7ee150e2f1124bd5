"""``mloop server token …`` and ``mloop server audit`` (the click objects the server group
adds), run in a project folder and against an explicit --store."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mloop import repositories
from mloop.cli.server_admin import audit, token
from mloop.core.identity import Identity
from mloop.errors import ConflictError, NotFoundError
from mloop.project import Project
from mloop.server.audit import AuditLog


@click.group()
def server() -> None:
    """Stands in for the lead's `mloop server` group."""


server.add_command(token)
server.add_command(audit)


def _cli(*args: str, ok: bool = True) -> click.testing.Result:
    result = CliRunner().invoke(server, list(args), catch_exceptions=True)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def here(sqlite_project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(sqlite_project.root)
    return sqlite_project


def test_create_list_revoke(here: Project) -> None:
    first = _cli("token", "create", "--role", "admin", "--name", "root")
    secret = first.stdout.strip()
    assert secret.startswith("mloop_") and len(secret) == 83
    assert "shown only this once" in first.stderr and secret not in first.stderr
    _cli("token", "create", "--name", "alice", "--role", "writer", "--expires", "90d")
    listed = json.loads(_cli("token", "list", "--json").stdout)
    assert [(t["name"], t["role"], t["status"]) for t in listed] == \
        [("root", "admin", "active"), ("alice", "writer", "active")]
    assert all("sha256" not in t for t in listed)
    text = _cli("token", "list").stdout
    assert "alice" in text and secret[18:] not in text
    out = _cli("token", "revoke", "alice").stdout
    assert "Revoked token" in out and "alice" in out
    listed = json.loads(_cli("token", "list", "--json").stdout)
    assert listed[1]["status"] == "revoked" and listed[1]["revoked_ms"]
    # revoked by id too; an unknown one is a clear 404
    _cli("token", "revoke", listed[0]["id"])
    missing = _cli("token", "revoke", "nobody", ok=False)
    assert isinstance(missing.exception, NotFoundError)


def test_a_name_has_one_active_token_unless_rotated(here: Project) -> None:
    old = _cli("token", "create", "--name", "ci", "--role", "writer").stdout.strip()
    again = _cli("token", "create", "--name", "ci", "--role", "writer", ok=False)
    assert isinstance(again.exception, ConflictError)
    assert again.exception.http_status == 409 and "--rotate" in again.exception.message
    rotated = _cli("token", "create", "--name", "ci", "--role", "writer", "--rotate")
    assert f"Revoked the previous token {old[6:18]}" in rotated.stderr
    listed = json.loads(_cli("token", "list", "--json").stdout)
    assert [t["status"] for t in listed] == ["revoked", "active"]


def test_expired_tokens_are_listed_as_expired(here: Project) -> None:
    from mloop.server import tokens

    tokens.create(here, "old", "reader", expires_ms=1)
    (row,) = json.loads(_cli("token", "list", "--json").stdout)
    assert row["status"] == "expired"


def test_bad_input(here: Project) -> None:
    assert _cli("token", "create", "--role", "root", ok=False).exit_code == 2
    bad = _cli("token", "create", "--role", "writer", "--name", "a b", ok=False)
    assert "not a token name" in bad.exception.message  # type: ignore[union-attr]


def test_an_explicit_store_outside_any_project(sqlite_project: Project, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    store = sqlite_project.settings.store_uri
    _cli("token", "create", "--role", "admin", "--store", store)
    assert [t.role for t in repositories.backend(sqlite_project).api_tokens.all()] == \
        ["admin"]
    assert not (elsewhere / ".mloop").exists()
    no_project = _cli("token", "list", ok=False)
    assert "--store" in no_project.exception.message  # type: ignore[union-attr]


def test_audit_lists_the_writes(here: Project) -> None:
    log = AuditLog(repositories.backend(here).audit)
    log.record(Identity("alice", "writer", "a" * 12), "POST /api/v1/runs/create", "exp", 200)
    log.record(Identity("bob", "admin", "b" * 12), "POST /api/v1/models/register",
               "[red]churn[/red]", 409)
    log.close()
    entries = json.loads(_cli("audit", "--json").stdout)
    assert [e["actor"] for e in entries] == ["bob", "alice"]
    assert entries[0]["status"] == 409 and entries[0]["token_id"] == "b" * 12
    only = json.loads(_cli("audit", "--actor", "alice", "--json").stdout)
    assert [e["action"] for e in only] == ["POST /api/v1/runs/create"]
    assert len(json.loads(_cli("audit", "--limit", "1", "--json").stdout)) == 1
    text = _cli("audit").stdout
    assert "[red]churn[/red]" in text  # user text is printed as text, not markup
