"""The team server's bearer tokens: ``api_tokens``.

A row is everything about a token except its secret: the id (the public part of
``mloop_<id>_<secret>``), the SHA-256 of the secret, a name, a role, an expiry and a
revocation time. Revoking keeps the row (listings show it, the audit log names it).
At most one *active* token carries a name: :meth:`ApiTokens.add` refuses a second one
unless asked to rotate, which revokes the old one in the same transaction.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mloop.core.clock import now_ms
from mloop.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    from mloop.project import Project

__all__ = ["ApiToken", "ApiTokens", "SqlApiTokens", "TokenStatus"]


class TokenStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ApiToken:
    """One stored token (never its secret)."""

    id: str
    name: str
    role: str
    sha256: str
    created_ms: int
    expires_ms: int | None = None
    revoked_ms: int | None = None
    created_by: str = ""

    def status(self, at_ms: int | None = None) -> TokenStatus:
        """Revoked wins over expired; ``at_ms`` defaults to now."""
        if self.revoked_ms is not None:
            return TokenStatus.REVOKED
        if self.expires_ms is not None and (now_ms() if at_ms is None else at_ms) >= \
                self.expires_ms:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE

    def to_dict(self, at_ms: int | None = None) -> dict[str, Any]:
        """Every field but the digest, and the status (for listings: no secret, no hash)."""
        data = asdict(self)
        del data["sha256"]
        return data | {"status": str(self.status(at_ms))}


class ApiTokens(Protocol):
    """What the rest of mloop may ask of the token table."""

    def add(self, token: ApiToken, *, rotate: bool = False) -> list[ApiToken]:
        """Store ``token``. :class:`ConflictError` when an active token has its name,
        unless ``rotate``: then those are revoked in the same transaction and returned."""
        ...

    def get(self, token_id: str) -> ApiToken | None:
        """The token with this id, whatever its status."""
        ...

    def all(self) -> list[ApiToken]:
        """Every token, active or not, oldest first."""
        ...

    def find(self, name_or_id: str) -> list[ApiToken]:
        """The token with this id, else the active tokens with this name."""
        ...

    def end_session(self, nonce: str, token_id: str, expires_ms: int,
                    at_ms: int | None = None) -> None:
        """Record that the browser session ``nonce`` (of token ``token_id``, valid until
        ``expires_ms``) was logged out; ended sessions already past their expiry are
        forgotten."""
        ...

    def ended_sessions(self, at_ms: int | None = None) -> set[str]:
        """The nonces of sessions logged out and not yet expired."""
        ...

    def revoke(self, token_id: str, at_ms: int | None = None) -> ApiToken:
        """Mark the token revoked (again: no change); :class:`NotFoundError` when there is
        no such token. Returns the stored row after the change."""
        ...


# two creations of one name check and insert one after the other (PostgreSQL would
# otherwise let both see "no active token" and both insert)
_PG_LOCK_KEY = 0x6D6C6F6F70_0011


def _token(row: Row[Any]) -> ApiToken:
    return ApiToken(row.id, row.name, row.role, row.sha256, int(row.created_ms),
                    None if row.expires_ms is None else int(row.expires_ms),
                    None if row.revoked_ms is None else int(row.revoked_ms), row.created_by)


class SqlApiTokens:
    """Tokens in the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def add(self, token: ApiToken, *, rotate: bool = False) -> list[ApiToken]:
        from sqlalchemy import select, text, update

        from mloop.store.schema import api_tokens as t

        when = now_ms()
        store = self.project.store
        with store.write() as conn:
            if store.dialect == "postgresql":  # SQLite's writes are serial already
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            same = [_token(r) for r in conn.execute(select(t).where(t.c.name == token.name))]
            active = [s for s in same if s.status(when) is TokenStatus.ACTIVE]
            if active and not rotate:
                raise ConflictError(
                    f"An active token named {token.name!r} exists ({active[0].id}); "
                    "revoke it first, pick another name, or rotate it (--rotate).")
            if active:
                conn.execute(update(t).where(t.c.id.in_([a.id for a in active]))
                             .values(revoked_ms=when))
            conn.execute(t.insert().values(asdict(token)))
        return [ApiToken(**(asdict(a) | {"revoked_ms": when})) for a in active]

    def get(self, token_id: str) -> ApiToken | None:
        from sqlalchemy import select

        from mloop.store.schema import api_tokens as t

        with self.project.store.read() as conn:
            row = conn.execute(select(t).where(t.c.id == token_id)).first()
        return None if row is None else _token(row)

    def all(self) -> list[ApiToken]:
        from sqlalchemy import select

        from mloop.store.schema import api_tokens as t

        with self.project.store.read() as conn:
            rows = conn.execute(select(t).order_by(t.c.created_ms, t.c.id)).all()
        return [_token(r) for r in rows]

    def find(self, name_or_id: str) -> list[ApiToken]:
        from sqlalchemy import or_, select

        from mloop.store.schema import api_tokens as t

        with self.project.store.read() as conn:
            rows = [_token(r) for r in conn.execute(
                select(t).where(or_(t.c.id == name_or_id, t.c.name == name_or_id))
                .order_by(t.c.created_ms, t.c.id))]
        by_id = [r for r in rows if r.id == name_or_id]
        return by_id or [r for r in rows if r.status() is TokenStatus.ACTIVE]

    def end_session(self, nonce: str, token_id: str, expires_ms: int,
                    at_ms: int | None = None) -> None:
        from sqlalchemy import delete

        from mloop.store.schema import ended_sessions as e

        when = now_ms() if at_ms is None else at_ms
        store = self.project.store
        with store.write() as conn:
            conn.execute(delete(e).where(e.c.expires_ms <= when))
            conn.execute(store.insert(e).values(
                nonce=nonce, token_id=token_id, expires_ms=expires_ms,
                ended_ms=when).on_conflict_do_nothing())

    def ended_sessions(self, at_ms: int | None = None) -> set[str]:
        from sqlalchemy import select

        from mloop.store.schema import ended_sessions as e

        when = now_ms() if at_ms is None else at_ms
        with self.project.store.read() as conn:
            return set(conn.execute(select(e.c.nonce).where(e.c.expires_ms > when)).scalars())

    def revoke(self, token_id: str, at_ms: int | None = None) -> ApiToken:
        from sqlalchemy import select, update

        from mloop.store.schema import api_tokens as t

        when = now_ms() if at_ms is None else at_ms
        with self.project.store.write() as conn:
            conn.execute(update(t).where(t.c.id == token_id, t.c.revoked_ms.is_(None))
                         .values(revoked_ms=when))
            row = conn.execute(select(t).where(t.c.id == token_id)).first()
        if row is None:
            raise NotFoundError(f"No token {token_id!r}; see `mloop server token list`.")
        return _token(row)
