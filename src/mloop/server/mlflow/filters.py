"""The small filter language of MLflow's experiment, registry and logged-model searches.

``field = 'value'``, ``!=``, ``LIKE`` and ``ILIKE`` (``%`` any text, ``_`` one character)
joined by AND, over the fields a search names. A filter mloop cannot honour is refused
with ``INVALID_PARAMETER_VALUE``, never ignored: a search must not answer more than was
asked. (Run search has a language of its own: :mod:`mloop.tracking.filter`.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mloop.server.mlflow import wire

Clause = tuple[str, str, str]  # field, operator (lower case), value

_CLAUSE = re.compile(r"^\s*(?:attributes?\.)?`?([a-z_]+)`?\s*(=|!=|like|ilike)\s*'([^']*)'\s*$",
                     re.IGNORECASE)
# The mlflow client adds this to registry searches; mloop has no prompts, so every model
# passes it.
PROMPT = re.compile(r"^\s*tags?\.`?mlflow\.prompt\.is_prompt`?\s*!=\s*'true'\s*$",
                    re.IGNORECASE)


def clauses(text: str | None, fields: tuple[str, ...],
            ignore: re.Pattern[str] | None = None) -> list[Clause]:
    """The clauses of ``text`` (``[]``: no filter); ``ignore`` matches clauses to drop."""
    if not text or not text.strip():
        return []
    out = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        if ignore is not None and ignore.match(part):
            continue
        found = _CLAUSE.match(part)
        if found is None or found.group(1).lower() not in fields:
            raise wire.invalid(f"Unsupported filter {part!r}: mloop server supports "
                               f"{', '.join(fields)} compared with =, !=, LIKE or ILIKE to "
                               "a quoted value, joined by AND.")
        out.append((found.group(1).lower(), found.group(2).lower(), found.group(3)))
    return out


def like(pattern: str, text: str, *, fold: bool = False) -> bool:
    """SQL's LIKE (``%``, ``_``), case-insensitive when ``fold``."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL if fold else re.DOTALL) \
        is not None


def keep(found: list[Clause], values: Mapping[str, str]) -> bool:
    """Whether a thing with these field values passes every clause (fields it lacks are
    skipped: a caller narrows the clauses it checks)."""
    for field, op, value in found:
        if field not in values:
            continue
        text = values[field]
        if (op == "=" and text != value) or (op == "!=" and text == value):
            return False
        if op in ("like", "ilike") and not like(value, text, fold=op == "ilike"):
            return False
    return True
