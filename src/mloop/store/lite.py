"""Plain SQL that does not import SQLAlchemy: the CLI's hot paths.

Importing SQLAlchemy costs ~0.2 s, most of what ``mloop data status`` or a checkout may
take in total. Statements on such paths are written once, in portable SQL with ``:name``
parameters (both the stdlib ``sqlite3`` driver and SQLAlchemy's ``text()`` understand
them; upserts use ``ON CONFLICT … DO UPDATE``, which SQLite and PostgreSQL share), and run

* on the embedded store, through ``sqlite3`` directly, with the same pragmas and the
  same transaction discipline as the Store (``BEGIN IMMEDIATE`` for writers);
* anywhere else (PostgreSQL), or when the SQLite store is missing or not at this
  release's schema, through the full :class:`~mloop.store.Store`, which creates,
  migrates or refuses the store exactly as every other command does.

Only simple statements belong here (lookups, upserts of caches); anything richer goes
through the Store.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mloop.store.failures import disk_full, is_disk_full
from mloop.store.revisions import HEAD

if TYPE_CHECKING:
    from mloop.project import Project

Row = dict[str, Any]


class Query(Protocol):
    """One transaction: run SQL text, get rows as dicts; ``many`` runs it per row."""

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]: ...

    def many(self, sql: str, rows: list[dict[str, Any]]) -> None: ...


def in_list(prefix: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``(":p0, :p1, …", {"p0": v0, …})`` for an ``IN (…)`` clause over ``values``."""
    params = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in params) or "NULL", params


class _SqliteQuery:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        cur = self._conn.execute(sql, dict(params or {}))
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        self._conn.executemany(sql, rows)


class _StoreQuery:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        from sqlalchemy import text

        result = self._conn.execute(text(sql), dict(params or {}))
        return [dict(r) for r in result.mappings()] if result.returns_rows else []

    def many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        from sqlalchemy import text

        if rows:
            self._conn.execute(text(sql), rows)


class LiteSQL:
    """Transactions for one project, over ``sqlite3`` when the store allows it."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[Query]:
        """A consistent read snapshot (one transaction)."""
        conn = self._connection()
        if conn is None:
            with self._project.store.read() as store_conn:
                yield _StoreQuery(store_conn)
            return
        with self._lock:
            conn.execute("BEGIN")
            try:
                yield _SqliteQuery(conn)
            finally:
                conn.execute("ROLLBACK")  # nothing was written

    @contextmanager
    def write(self) -> Iterator[Query]:
        """A write transaction, committed on exit and rolled back on an exception."""
        conn = self._connection()
        if conn is None:
            with self._project.store.write() as store_conn:
                yield _StoreQuery(store_conn)
            return
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")  # as the Store: wait for the write lock up front
            try:
                yield _SqliteQuery(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error | OSError) and is_disk_full(exc):
                    raise disk_full(exc, f"the metadata store {self._project.root}") from exc
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if "store" in self._project.__dict__:  # the full store is open anyway: use it
            return None
        settings = self._project.settings
        path = sqlite_path(settings.store_uri)
        if path is None or not path.is_file():
            return None
        with self._lock:
            if self._conn is None:
                self._conn = _open(path, settings.busy_timeout_ms, settings.sqlite_synchronous)
        return self._conn


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///…`` URL (``None`` for other databases and memory)."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///"):]
    return Path(path) if path and path != ":memory:" else None


def _open(path: Path, busy_timeout_ms: int, synchronous: str) -> sqlite3.Connection | None:
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                           check_same_thread=False)
    try:  # the Store's pragmas (the file is in WAL mode already: the Store created it)
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA case_sensitive_like=ON")
        conn.execute("PRAGMA mmap_size=268435456")
        rev = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        rev = None
    if rev is None or rev[0] != HEAD:  # new, old or newer schema: the Store decides
        conn.close()
        return None
    return conn


def lite(project: Project) -> LiteSQL:
    """The project's plain-SQL access (one per project)."""
    if project.remote:
        from mloop.errors import InternalError

        raise InternalError("A project whose store is an mloop server has no SQL access; "
                            "this path should go through mloop.repositories.backend().")
    sql: LiteSQL = project.component("lite-sql", LiteSQL)
    return sql
