"""The team server's tokens, managed with direct access to its store.

``mloop server token create|list|revoke`` call these (the first admin token can only be
made this way: on the server's machine, with the store's credentials). A token is shown
once, by :func:`create`; the store keeps its id and the SHA-256 of its secret.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mloop.core.tokens import new_token
from mloop.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.api_tokens import ApiToken

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}")


def check_name(name: str) -> str:
    """A token's name: letters, digits and ``_ . @ + -``, up to 200 characters, so that it
    reads the same in listings, logs and the audit log."""
    if not _NAME.fullmatch(name or ""):
        raise InvalidInputError(f"{name[:50]!r} is not a token name: use letters, digits and "
                                "_ . @ + - (up to 200 characters), e.g. alice or ci-bot.")
    return name


def create(project: Project, name: str, role: str, *, expires_ms: int | None = None,
           rotate: bool = False, created_by: str | None = None
           ) -> tuple[str, ApiToken, list[ApiToken]]:
    """A new token named ``name``: ``(token, its row, the rows it rotated out)``.

    :class:`~mloop.errors.ConflictError` when an active token has the name, unless
    ``rotate`` (which revokes it in the same transaction)."""
    from mloop import repositories
    from mloop.core.process import current_user
    from mloop.repositories.api_tokens import ApiToken

    check_name(name)
    tokens = repositories.backend(project).api_tokens
    while True:
        token, record = new_token(role, expires_ms=expires_ms, name=name)
        if tokens.get(record.id) is None:  # 48 random bits: a clash is rare, never a merge
            break
    row = ApiToken(record.id, name, role, record.sha256, record.created_ms, expires_ms, None,
                   created_by or current_user() or "unknown")
    rotated = tokens.add(row, rotate=rotate)
    return token, row, rotated


def revoke(project: Project, name_or_id: str) -> list[ApiToken]:
    """Revoke the token with this id, else every active token with this name; the rows
    after the change. :class:`NotFoundError` when there is none."""
    from mloop import repositories

    tokens = repositories.backend(project).api_tokens
    found = tokens.find(name_or_id.strip())
    if not found:
        raise NotFoundError(f"No active token named {name_or_id[:50]!r} and no token with "
                            "that id; see `mloop server token list`.")
    return [tokens.revoke(row.id) for row in found]


def list_tokens(project: Project) -> list[ApiToken]:
    """Every token, active, expired or revoked, oldest first (never a secret)."""
    from mloop import repositories

    return repositories.backend(project).api_tokens.all()
