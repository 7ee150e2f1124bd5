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

:class:`~mloop.repositories.backend.Backend` gathers the repositories behind one
protocol; :func:`backend` gives a project's (the SQL one today; the team server's HTTP
client implements the same protocol and passes the same contract suite,
``tests/repositories``).

A new stored thing goes here: its module (records, protocol, SQL), its Alembic migration
(``mloop/store/migrations``) and table (``mloop/store/schema.py``), its property on the
Backend, and its contract tests in ``tests/repositories/test_<thing>.py``, run on SQLite
and PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.backend import Backend

__all__ = ["backend"]

# Imported first: importing a submodule binds it as the package's attribute, which would
# otherwise replace the function ``backend`` below with the module ``backend`` once anything
# imported it (``from mloop.repositories import backend`` then gave the module).
import mloop.repositories.backend as _backend_module  # noqa: F401


def backend(project: Project) -> Backend:
    """The project's repositories (one per project, created on first use)."""
    from mloop.repositories.backend import SqlBackend

    found: Backend = project.component("backend", SqlBackend)
    return found
