"""The Audit contract: batches stored once, read newest first, filtered, pruned."""

from __future__ import annotations

import pytest

from mloop import repositories
from mloop.project import Project
from mloop.repositories.audit import Audit, AuditEntry


@pytest.fixture
def audit(project: Project) -> Audit:
    return repositories.backend(project).audit


@pytest.fixture
def backend(server_only_backend: str) -> str:
    """Tokens and the audit log live in the server's store: SQLite and PostgreSQL only."""
    return server_only_backend


def _entry(at: int, actor: str = "alice", status: int = 200) -> AuditEntry:
    return AuditEntry(at, actor, "aaaaaaaaaaaa", "writer", "POST /api/v1/runs/create",
                      "exp-1", status)


def test_add_and_list_newest_first(audit: Audit) -> None:
    assert audit.list() == [] and audit.add([]) == 0
    batch = [_entry(1_000), _entry(3_000, "bob", 403), _entry(2_000)]
    assert audit.add(batch) == 3
    found = audit.list()
    assert [e.at_ms for e in found] == [3_000, 2_000, 1_000]
    assert found[0] == batch[1]
    assert [e.at_ms for e in audit.list(limit=2)] == [3_000, 2_000]
    assert [e.at_ms for e in audit.list(actor="alice")] == [2_000, 1_000]
    assert [e.at_ms for e in audit.list(since_ms=2_000)] == [3_000, 2_000]


def test_a_batch_sent_twice_is_stored_once(audit: Audit) -> None:
    batch = [_entry(1_000), _entry(2_000)]
    audit.add(batch)
    audit.add(batch)
    assert len(audit.list()) == 2


def test_prune(audit: Audit) -> None:
    audit.add([_entry(1_000), _entry(2_000), _entry(3_000)])
    assert audit.prune(2_500) == 2
    assert [e.at_ms for e in audit.list()] == [3_000]
