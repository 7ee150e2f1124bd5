"""Bringing a store's schema to the one this mloop expects, with Alembic.

Opening a store costs one ``SELECT`` when the schema is current; Alembic is only
imported when there is something to do. Upgrades run inside one write transaction that
holds SQLite's write lock (or a PostgreSQL advisory lock), so several processes opening a
new store at once build it exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from mloop.errors import SchemaError, SchemaTooNewError
from mloop.store.revisions import HEAD, REVISIONS

if TYPE_CHECKING:
    from mloop.store.engine import Store

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x6D6C6F6F70  # "mloop"


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in ``alembic_version``, or ``None`` for an empty store."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(store: Store, *, upgrade: bool = True) -> None:
    """Check the schema and upgrade it to HEAD when ``upgrade`` (raise otherwise)."""
    with store.read() as conn:
        rev = current_revision(conn)
    if rev == HEAD:
        return
    _check_known(rev)
    if not upgrade:
        raise SchemaError(
            f"The metadata store is at schema {rev or 'none'}, this mloop needs {HEAD}. "
            "Run `mloop init` in the project (it upgrades the store in place)."
        )
    with store.write() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        rev = current_revision(conn)  # another process may have upgraded meanwhile
        if rev != HEAD:
            _check_known(rev)
            _run_alembic(conn)


def _check_known(rev: str | None) -> None:
    if rev is not None and rev not in REVISIONS:
        raise SchemaTooNewError(
            f"The metadata store has schema revision {rev!r}, which this mloop does not know: "
            "it was written by a newer mloop. Upgrade mloop (pip install -U mloop); "
            "do not open this store with the older version."
        )


def _run_alembic(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def alembic_heads() -> list[str]:
    """Head revisions of the migration scripts (for the consistency test)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return list(ScriptDirectory.from_config(cfg).get_heads())
