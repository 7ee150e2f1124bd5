"""Opening the metadata store: engine set-up, SQLite pragmas, transactions, migrations."""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from mloop.core.redact import redact
from mloop.errors import (
    ConfigError,
    IntegrityError,
    MloopError,
    SchemaError,
    ServiceUnavailableError,
)
from mloop.store import failures, migrate

_WRITE = "mloop_write"


class Store:
    """One metadata store. ``read()`` and ``write()`` give transactions.

    On SQLite, write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction
    that reads and then writes can fail at once with SQLITE_BUSY when another process
    wrote in between (busy_timeout does not help there), whereas an immediate one waits
    its turn. Reads stay deferred so they never block writers in WAL mode.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "normal",
                 busy_timeout_ms: int = 30_000, upgrade: bool = True) -> None:
        self.url = url
        self.engine = _create_engine(url, sqlite_synchronous, busy_timeout_ms)
        self.dialect: str = self.engine.dialect.name
        self._writer = self.engine.execution_options(**{_WRITE: True})
        self._statements: dict[str, Any] = {}
        migrate.ensure_schema(self, upgrade=upgrade)

    def __repr__(self) -> str:
        return f"Store({redact(self.url)!r})"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on both databases).

        A value PostgreSQL refuses (a data exception: an integer beyond a column's range,
        a negative LIMIT) is the caller's :class:`~mloop.errors.InvalidInputError`.
        """
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except DBAPIError as exc:
            refused = failures.refused_value(exc)
            if refused is not None:
                raise refused from exc
            raise

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on exit and rolled back on an exception.

        A full disk (SQLITE_FULL, PostgreSQL's disk_full, ENOSPC) is raised as
        :class:`~mloop.errors.DiskFullError`, the one line the CLI prints; a value
        PostgreSQL refuses (a data exception, SQLSTATE class 22) is the caller's
        :class:`~mloop.errors.InvalidInputError` (caused by the database's error, which
        :func:`~mloop.store.failures.classify` still finds); every other failure is the
        database's own.
        """
        try:
            with self._writer.begin() as conn:
                yield conn
        except (DBAPIError, OSError) as exc:
            if failures.is_disk_full(exc):
                raise failures.disk_full(exc, f"the metadata store {redact(self.url)}"
                                         ) from exc
            refused = failures.refused_value(exc)
            if refused is not None:
                raise refused from exc
            raise

    def insert(self, table: Any) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_nothing/do_update``."""
        # Imported here: loading the PostgreSQL dialect costs ~80 ms of CLI start-up.
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def statement(self, key: str, build: Callable[[Store], Any]) -> Any:
        """A statement built once per store and reused.

        Hot paths (metric flushes, run creation) execute the same statement thousands of
        times; building it anew each time costs more than executing it on SQLite.
        """
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = build(self)
        return stmt

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _create_engine(url: str, synchronous: str, busy_timeout_ms: int) -> Engine:
    try:
        if url.startswith("sqlite"):
            return _sqlite_engine(url, synchronous, busy_timeout_ms)
        if url.startswith("postgresql"):
            _check_userinfo(url)
            engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8)
            event.listen(engine, "handle_error", _connection_errors(url))
            return engine
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"Cannot open the metadata store {redact(url)}: {exc}") from exc
    raise ConfigError(
        f"Unsupported metadata store {redact(url)}: use sqlite:///path/to/mloop.db or "
        "postgresql+psycopg://user@host:5432/db (pip install 'mloop[postgres]')."
    )


def _check_userinfo(url: str) -> None:
    """A raw ``@`` in the password makes the driver read the rest as the host name, and
    its error then quotes part of the password: refuse such a URI before connecting."""
    authority = url.partition("://")[2].split("/", 1)[0]
    if authority.count("@") > 1:
        raise ConfigError(
            f"The metadata store URI {redact(url)} has more than one '@' before its host: "
            "percent-encode the user name and password (@ → %40, : → %3A, / → %2F), "
            "e.g. with urllib.parse.quote(password, safe='').")


# What the server says when it was reached but refuses the URI's role, password, database
# or options: the URI is wrong (exit 2), where waiting will not help.
_REFUSED_BY_SERVER = ("does not exist", "password authentication failed",
                      "no password supplied", "not permitted to log in", "authentication",
                      "invalid sslmode", "invalid connection option", "invalid integer value",
                      "pg_hba.conf")


def _connection_errors(url: str) -> Callable[[Any], None]:
    """A ``handle_error`` hook: a PostgreSQL server that cannot be reached (refused, no
    such host, timed out, gone mid-session) is a ServiceUnavailableError (exit 69); one
    that refuses the URI's role, password or database a ConfigError (exit 2). Both name
    the store with its password hidden, in one line instead of a driver traceback."""
    shown = redact(url)

    def hook(ctx: Any) -> None:
        if getattr(ctx, "is_pre_ping", False):
            return  # the pool handles a stale connection itself by reconnecting
        connecting = ctx.connection is None
        if not (connecting or ctx.is_disconnect):
            return  # a statement's own error (constraint, data): the caller handles it
        detail = " ".join(str(ctx.original_exception).split())
        if connecting and any(s in detail for s in _REFUSED_BY_SERVER):
            raise ConfigError(f"The metadata store {shown} refused the connection: "
                              f"{detail}. Fix the role, password or database in the store "
                              "URI (MLOOP_STORE_URI or [store] uri).") from ctx.original_exception
        raise ServiceUnavailableError(
            f"The metadata store {shown} cannot be reached: {detail}. Check that the server "
            "runs and the host and port are right, then try again.") from ctx.original_exception

    return hook


# SQLite's words for a file that is not (or no longer) a sound database
_DAMAGED = ("file is not a database", "database disk image is malformed")


def _sqlite_failure(path: str, exc: BaseException) -> MloopError:
    """What a failure to open or read the SQLite file means: a damaged file (exit 5), a
    file or disk that cannot be used (exit 69), or WAL mode unavailable (exit 6)."""
    text = str(exc)
    if any(s in text for s in _DAMAGED):
        return IntegrityError(f"The metadata store {path} is damaged ({text}). Restore "
                              ".mloop/mloop.db from a backup or a copy; the data objects "
                              "are not in it and stay intact.")
    if any(s in text for s in ("readonly", "read-only", "unable to open", "disk I/O")):
        return ServiceUnavailableError(f"The metadata store {path} cannot be used ({text}): "
                                       "check that its folder is writable and the disk is "
                                       "available.")
    return SchemaError(f"Cannot switch {path} to WAL mode: {text}")


def _damaged_file(path: str) -> Callable[[Any], None]:
    """A ``handle_error`` hook: SQLite finding the file damaged mid-statement is an
    IntegrityError (exit 5); every other error stays as it is (the writer retries
    "database is locked" itself)."""
    def hook(ctx: Any) -> None:
        if any(s in str(ctx.original_exception) for s in _DAMAGED):
            raise _sqlite_failure(path, ctx.original_exception) from ctx.original_exception

    return hook


def _sqlite_engine(url: str, synchronous: str, busy_timeout_ms: int) -> Engine:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # A pool, not a fresh connection per transaction: closing the last connection to a
    # WAL database checkpoints it (an fsync), which made every commit ~10x slower.
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=4, max_overflow=8,
    )
    # A forked child (multiprocessing, DataLoader workers) must not reuse the parent's
    # connections; it opens its own on first use.
    ref = weakref.ref(engine)

    def _after_fork() -> None:
        forked = ref()
        if forked is not None:
            forked.dispose(close=False)

    os.register_at_fork(after_in_child=_after_fork)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take BEGIN out of the driver's hands so we can choose IMMEDIATE for writers.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # Switching to WAL needs a moment alone with the file: several processes opening a
        # new store at once can get "database is locked" here without the busy handler
        # being consulted, so wait for our turn as a writer would.
        deadline = time.monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                cur.execute("PRAGMA journal_mode=WAL")
                break
            except Exception as exc:  # e.g. a read-only or network file system
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                raise _sqlite_failure(path, exc) from exc
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA case_sensitive_like=ON")  # LIKE behaves as on PostgreSQL
        # Reads through a memory map and a 64 MiB page cache: searches over 1e5 runs touch
        # tens of MB, and the default 2 MiB cache re-reads them through syscalls.
        cur.execute("PRAGMA mmap_size=268435456")
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    event.listen(engine, "handle_error", _damaged_file(path))

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE)
                             else "BEGIN")

    return engine
