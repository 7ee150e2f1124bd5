"""How a failed write is classified decides what the writer does (store.failures)."""

import errno
import sqlite3

import pytest
import sqlalchemy.exc

from mloop.errors import DiskFullError, ServiceUnavailableError
from mloop.store.failures import Failure, classify, store_error


class _PgError(Exception):
    """A stand-in for a psycopg error: what matters is its SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("INSERT …", {}, orig)


@pytest.mark.parametrize(("exc", "kind"), [
    (sqlite3.OperationalError("database is locked"), Failure.TRANSIENT),
    (sqlite3.OperationalError("database or disk is full"), Failure.DISK_FULL),
    (sqlite3.IntegrityError("FOREIGN KEY constraint failed"), Failure.REFUSED),
    (sqlite3.OperationalError("attempt to write a readonly database"), Failure.FATAL),
    (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"), Failure.REFUSED),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), Failure.REFUSED),
    (OSError(errno.ENOSPC, "No space left on device"), Failure.DISK_FULL),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), Failure.DISK_FULL),
    (_PgError("53100"), Failure.DISK_FULL),
    (_PgError("08006"), Failure.TRANSIENT),  # connection failure
    (_PgError("40001"), Failure.TRANSIENT),  # serialization failure
    (_PgError("40P01"), Failure.TRANSIENT),  # deadlock
    (_PgError("57P01"), Failure.TRANSIENT),  # admin shutdown
    (_PgError("22021"), Failure.REFUSED),  # character not in repertoire (a NUL)
    (_PgError("22001"), Failure.REFUSED),  # value too long
    (_PgError("23503"), Failure.REFUSED),  # foreign key violation
    (_PgError("42P01"), Failure.FATAL),  # undefined table
    (_PgError("28P01"), Failure.FATAL),  # bad password
])
def test_classify(exc, kind):
    assert classify(exc) is kind
    assert classify(_wrapped(exc)) is kind  # as SQLAlchemy raises it


def test_a_dropped_connection_seen_by_sqlalchemy_is_transient():
    err = _wrapped(Exception("server closed the connection unexpectedly"))
    err.connection_invalidated = True
    assert classify(err) is Failure.TRANSIENT


def test_errors_the_caller_sees():
    full = store_error(_wrapped(_PgError("53100")), "the metadata store")
    assert isinstance(full, DiskFullError) and "No space left" in full.message
    other = store_error(_wrapped(_PgError("42P01")), "the metadata store")
    assert isinstance(other, ServiceUnavailableError) and "42P01" in other.message
