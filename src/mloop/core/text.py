"""Checking text before it is stored: what both databases can keep and give back unchanged.

PostgreSQL refuses a NUL character in any text value and a string longer than its
``VARCHAR(n)`` column; both databases refuse a lone surrogate (what Python makes of bytes
that are not UTF-8, e.g. a file name read with ``surrogateescape``). A value refused in
the background metric writer would fail a whole batch, so every string is checked where
it enters, and the caller gets an :class:`~mloop.errors.InvalidInputError` saying what to
change. Limits are counted in characters, as PostgreSQL counts ``VARCHAR(n)``.
"""

from __future__ import annotations

from mloop.errors import InvalidInputError

#: Keys of params, metrics and tags (``String(250)`` columns).
MAX_KEY = 250
#: Values of params and tags.
MAX_VALUE = 8000
#: Run names (``runs.name`` is ``String(250)``).
MAX_RUN_NAME = 250
#: Free text: messages and descriptions (``Text`` columns; a limit keeps rows sane).
MAX_TEXT = 65_536


def text_problem(value: object, max_chars: int, *, newlines: bool = True) -> str | None:
    """Why ``value`` cannot be stored as text (``None`` when it can)."""
    if not isinstance(value, str):
        return f"it is a {type(value).__name__}, not a string"
    if len(value) > max_chars:
        return f"it is {len(value)} characters long (at most {max_chars})"
    if "\x00" in value:
        return "it contains a NUL character (\\x00)"
    if not newlines and ("\n" in value or "\r" in value):
        return "it contains a line break"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"it is not valid Unicode (a lone surrogate {value[exc.start]!r} at position "
                f"{exc.start}, e.g. from bytes that are not UTF-8)")
    return None


def check_text(value: object, what: str, max_chars: int = MAX_TEXT, *,
               newlines: bool = True, empty: bool = True) -> str:
    """``value`` if it can be stored and read back identical, else InvalidInputError."""
    problem = text_problem(value, max_chars, newlines=newlines)
    if problem is None and not empty and not value:
        problem = "it is empty"
    if problem is not None:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        rule = "a non-empty string" if not empty else "a string"
        line = "" if newlines else " on one line"
        raise InvalidInputError(f"Invalid {what} {shown}: {problem}. Use {rule} of at most "
                                f"{max_chars} characters{line}, valid UTF-8, without NUL "
                                "characters.")
    assert isinstance(value, str)
    return value


def check_optional(value: str | None, what: str, max_chars: int = MAX_TEXT) -> str | None:
    """:func:`check_text` for a value that may be absent."""
    return None if value is None else check_text(value, what, max_chars)
