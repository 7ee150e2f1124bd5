"""The ApiTokens contract: one active token per name, revocation kept, never a secret."""

from __future__ import annotations

import pytest

from mloop import repositories
from mloop.errors import ConflictError, NotFoundError
from mloop.project import Project
from mloop.repositories.api_tokens import ApiToken, ApiTokens, TokenStatus


@pytest.fixture
def tokens(project: Project) -> ApiTokens:
    return repositories.backend(project).api_tokens


@pytest.fixture
def backend(server_only_backend: str) -> str:
    """Tokens and the audit log live in the server's store: SQLite and PostgreSQL only."""
    return server_only_backend


def _token(token_id: str, name: str = "alice", *, created: int = 1_000,
           expires: int | None = None) -> ApiToken:
    return ApiToken(token_id, name, "writer", "ab" * 32, created, expires, None, "admin")


def test_add_get_list(tokens: ApiTokens) -> None:
    assert tokens.all() == [] and tokens.get("0" * 12) is None
    assert tokens.add(_token("aaaaaaaaaaaa")) == []
    tokens.add(_token("bbbbbbbbbbbb", "bob", created=2_000, expires=10_000))
    assert tokens.get("aaaaaaaaaaaa") == _token("aaaaaaaaaaaa")
    assert [t.id for t in tokens.all()] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    bob = tokens.get("bbbbbbbbbbbb")
    assert bob is not None and bob.status(9_999) is TokenStatus.ACTIVE
    assert bob.status(10_000) is TokenStatus.EXPIRED
    listed = bob.to_dict(9_999)
    assert "sha256" not in listed and listed["status"] == "active"


def test_a_name_has_one_active_token_unless_rotated(tokens: ApiTokens) -> None:
    tokens.add(_token("aaaaaaaaaaaa"))
    with pytest.raises(ConflictError, match="alice"):
        tokens.add(_token("bbbbbbbbbbbb"))
    assert tokens.get("bbbbbbbbbbbb") is None
    (old,) = tokens.add(_token("bbbbbbbbbbbb"), rotate=True)
    assert old.id == "aaaaaaaaaaaa" and old.status() is TokenStatus.REVOKED
    stored = tokens.get("aaaaaaaaaaaa")
    assert stored is not None and stored.revoked_ms is not None
    assert [t.id for t in tokens.find("alice")] == ["bbbbbbbbbbbb"]  # only the active one
    # an expired token does not hold its name
    tokens.add(_token("cccccccccccc", "carol", expires=2_000))
    assert tokens.add(_token("dddddddddddd", "carol")) == []


def test_revoke_by_id_keeps_the_row(tokens: ApiTokens) -> None:
    tokens.add(_token("aaaaaaaaaaaa"))
    first = tokens.revoke("aaaaaaaaaaaa", at_ms=5_000)
    assert first.revoked_ms == 5_000 and first.status() is TokenStatus.REVOKED
    again = tokens.revoke("aaaaaaaaaaaa", at_ms=6_000)
    assert again.revoked_ms == 5_000  # revoked once: the first time is kept
    assert [t.id for t in tokens.find("aaaaaaaaaaaa")] == ["aaaaaaaaaaaa"]
    assert tokens.find("alice") == []  # no active token of that name
    with pytest.raises(NotFoundError):
        tokens.revoke("ffffffffffff")


def test_creating_one_name_at_once_keeps_one_active(tokens: ApiTokens) -> None:
    import threading

    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def create(n: int) -> None:
        barrier.wait()
        try:
            tokens.add(_token(f"{n:012x}", "racer"))
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "ok"]
    assert len(tokens.find("racer")) == 1


def test_ended_sessions_are_kept_until_they_expire(tokens: ApiTokens) -> None:
    assert tokens.ended_sessions(1_000) == set()
    tokens.end_session("n" * 22, "aaaaaaaaaaaa", 5_000, at_ms=1_000)
    tokens.end_session("n" * 22, "aaaaaaaaaaaa", 5_000, at_ms=1_500)  # twice: no conflict
    tokens.end_session("m" * 22, "aaaaaaaaaaaa", 9_000, at_ms=2_000)
    assert tokens.ended_sessions(4_999) == {"n" * 22, "m" * 22}
    assert tokens.ended_sessions(5_000) == {"m" * 22}  # expired: no longer worth refusing
    tokens.end_session("o" * 22, "bbbbbbbbbbbb", 20_000, at_ms=10_000)  # prunes the rest
    assert tokens.ended_sessions(0) == {"o" * 22}
