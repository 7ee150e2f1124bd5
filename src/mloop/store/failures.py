"""What a failed database write means, and so what the writer that got it should do.

=============  ===========================================================  ================
kind           examples                                                     what to do
=============  ===========================================================  ================
TRANSIENT      SQLite busy/locked; PostgreSQL connection lost (class 08),   retry, backing
               serialization failure, deadlock, too many connections,       off
               server shutting down
DISK_FULL      SQLITE_FULL; PostgreSQL 53100; ``OSError`` ENOSPC/EDQUOT     DiskFullError
REFUSED        PostgreSQL data exceptions (class 22: NUL in text, value     split the batch:
               too long, out of range) and integrity violations (class 23:  only the values
               a run that does not exist); a value the driver cannot        are at fault
               encode (a lone surrogate, an int beyond 64 bits)
FATAL          anything else: a read-only file, a missing table, a bad      stop and say so
               password — no retry helps
=============  ===========================================================  ================

Imports neither SQLAlchemy nor a driver: the plain-SQL path (:mod:`.lite`) uses it too.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from enum import StrEnum

from mloop.core.disk import DISK_ERRNOS, disk_full_error
from mloop.errors import (
    ConflictError,
    DiskFullError,
    InvalidInputError,
    MloopError,
    ServiceUnavailableError,
)


class Failure(StrEnum):
    TRANSIENT = "transient"
    DISK_FULL = "disk_full"
    REFUSED = "refused"
    FATAL = "fatal"


_SQLITE_TRANSIENT = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_SQLITE_REFUSED = (sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH)
_PG_TRANSIENT = {"40001", "40P01", "53300", "53200", "55P03", "57P01", "57P02", "57P03"}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped (``orig``), and its causes."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


def _one(e: BaseException) -> Failure | None:
    if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
        return Failure.DISK_FULL
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        base = code & 0xFF if isinstance(code, int) else None
        text = str(e).lower()
        if base == sqlite3.SQLITE_FULL or "disk is full" in text:
            return Failure.DISK_FULL
        if base in _SQLITE_TRANSIENT or "locked" in text or "busy" in text:
            return Failure.TRANSIENT
        if base in _SQLITE_REFUSED or isinstance(e, sqlite3.IntegrityError | sqlite3.DataError):
            return Failure.REFUSED
        return None
    if isinstance(e, UnicodeError | OverflowError):  # the driver could not encode a value
        return Failure.REFUSED
    state = getattr(e, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5:  # psycopg: the server's SQLSTATE
        if state == "53100":
            return Failure.DISK_FULL
        if state in _PG_TRANSIENT or state.startswith("08"):
            return Failure.TRANSIENT
        if state[:2] in ("22", "23"):
            return Failure.REFUSED
        return Failure.FATAL
    if getattr(e, "connection_invalidated", False):  # SQLAlchemy saw the connection drop
        return Failure.TRANSIENT
    kind = type(e)
    if kind.__module__.startswith("psycopg"):
        if kind.__name__ in ("OperationalError", "InterfaceError"):  # no SQLSTATE: the link
            return Failure.TRANSIENT
        if kind.__name__ in ("DataError", "IntegrityError"):
            return Failure.REFUSED
    return None


def classify(exc: BaseException) -> Failure:
    """What ``exc`` (raised by a write) means; see the module docstring."""
    if isinstance(exc, DiskFullError):
        return Failure.DISK_FULL
    for e in _chain(exc):
        found = _one(e)
        if found is not None:
            return found
    if isinstance(exc, ValueError | TypeError):  # e.g. a value the driver cannot bind
        return Failure.REFUSED
    return Failure.FATAL


def is_disk_full(exc: BaseException) -> bool:
    return classify(exc) is Failure.DISK_FULL


def disk_full(exc: BaseException, where: str) -> DiskFullError:
    """The one-line error for a full disk under ``where`` (the store, a folder)."""
    return exc if isinstance(exc, DiskFullError) else disk_full_error(where)


def store_error(exc: BaseException, where: str) -> MloopError:
    """A write that failed for good, as the error the caller sees."""
    if isinstance(exc, MloopError):
        return exc
    kind = classify(exc)
    if kind is Failure.DISK_FULL:
        return disk_full(exc, where)
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return ServiceUnavailableError(
        f"Writing to {where} failed ({type(exc).__name__}: "
        f"{detail[0] if detail else 'no detail'}). Check that the database is reachable and "
        "writable, then try again.")


# SQLite's extended result codes and PostgreSQL's SQLSTATEs of the integrity violations
_SQLITE_VIOLATIONS = {2067: "unique", 1555: "unique", 787: "foreign_key", 1299: "not_null",
                      275: "check"}
_PG_VIOLATIONS = {"23505": "unique", "23503": "foreign_key", "23502": "not_null",
                  "23514": "check"}


def violation(exc: BaseException) -> str | None:
    """Which integrity constraint a refused write broke: ``unique`` (a duplicate key),
    ``foreign_key`` (a reference to a row that does not exist), ``not_null``, ``check``;
    None when ``exc`` is not an integrity violation."""
    for e in _chain(exc):
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(e, sqlite3.IntegrityError):
            found = _SQLITE_VIOLATIONS.get(code) if isinstance(code, int) else None
            text = str(e).upper()
            return found or next((kind for word, kind in (
                ("UNIQUE", "unique"), ("PRIMARY KEY", "unique"), ("FOREIGN KEY", "foreign_key"),
                ("NOT NULL", "not_null"), ("CHECK", "check")) if word in text), "check")
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str) and state in _PG_VIOLATIONS:
            return _PG_VIOLATIONS[state]
    return None


@contextlib.contextmanager
def unique_or_conflict(message: str) -> Iterator[None]:
    """A write inside that breaks a unique key (a duplicate id) raises
    :class:`~mloop.errors.ConflictError` with ``message``, not the database's error."""
    try:
        yield
    except Exception as exc:
        if violation(exc) == "unique":
            raise ConflictError(message) from None
        raise


def refused_value(exc: BaseException) -> InvalidInputError | None:
    """The caller's error for a statement PostgreSQL refused because of a value it was
    given (SQLSTATE class 22, a data exception: an integer beyond a column's range, a
    negative LIMIT, a character the encoding lacks); None for any other failure."""
    for e in _chain(exc):
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str) and state.startswith("22"):
            lines = str(e).strip().splitlines()
            return InvalidInputError(f"The store refused a value of this request "
                                     f"({lines[0] if lines else state}).")
    return None
