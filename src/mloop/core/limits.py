"""Checking a page size given by a caller (a repository's ``limit``) before it reaches SQL.

SQLite reads a negative LIMIT as "no limit" and PostgreSQL refuses it: the same call would
answer differently on the two stores, so a negative one is the caller's mistake on both.
"""

from __future__ import annotations

from mloop.errors import InvalidInputError


def check_limit(limit: int, what: str = "limit") -> int:
    """``limit`` if it is a count (an integer >= 0), else InvalidInputError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInputError(f"Invalid {what} {limit!r}: use a whole number >= 0.")
    return limit
