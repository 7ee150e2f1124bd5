"""The repository layer: every stored thing's SQL, in one module per thing.

A repository owns its tables: nothing else in mloop reads or writes them (a test fails
when SQL text or a database driver appears outside ``mloop/repositories/`` and the store's
own machinery in ``mloop/store/``). Each module holds, for its stored thing,

* the typed records it returns (frozen dataclasses) and its statuses (``enum.StrEnum``);
* a ``Protocol``: what the rest of mloop may ask of it;
* the SQL implementation, for both access paths. Hot paths (CLI commands answering in
  ~0.1 s, model loading) use portable SQL text through :func:`mloop.store.lite.lite`,
  which itself decides, in one place, between the stdlib ``sqlite3`` driver (the
  embedded store at this release's schema) and the SQLAlchemy ``Store`` (PostgreSQL, or
  a store to create or migrate); richer statements use SQLAlchemy Core on
  ``project.store``. Driver errors are translated into :mod:`mloop.errors` here, so
  callers never import a driver.

:class:`~mloop.repositories.backends.Backend` gathers the repositories behind one
protocol; :func:`backend` gives a project's: the SQL one, or the team server's HTTP
client (:mod:`mloop.server.client`) when the store URI is ``http(s)://``, which
implements the same protocol and passes the same contract suite (``tests/repositories``).

A new stored thing goes here: its module (records, protocol, SQL), its Alembic migration
(``mloop/store/migrations``) and table (``mloop/store/schema.py``), its property on the
Backend, and its contract tests in ``tests/repositories/test_<thing>.py``, run on SQLite
and PostgreSQL.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs the no-op pipeline run ~3 ms (mloop.quick)
if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.backends import Backend

__all__ = ["backend"]


def backend(project: Project) -> Backend:
    """The project's repositories (one per project, created on first use)."""
    if project.remote:
        from mloop.server.client import HttpBackend

        remote: Backend = project.component("backend", HttpBackend)
        return remote
    from mloop.repositories.backends import SqlBackend

    found: Backend = project.component("backend", SqlBackend)
    return found
