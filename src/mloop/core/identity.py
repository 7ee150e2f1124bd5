"""Who is acting: the identity a team server attaches to the request it is serving.

On a laptop the actor is the operating-system user. Behind ``mloop server`` it is the
token's holder: the server sets :data:`ACTING` for the duration of each request, and
everything that records "who" (:func:`mloop.core.process.current_user`: registry events,
approvals, deployment events, the audit log) reads it from there, so a client cannot
claim to be someone else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

# Ordered: each role may do what the ones before it may.
ROLES = ("reader", "predictor", "writer", "approver", "admin")


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: a name (the token's), its role, the token's id (not
    secret; ``None`` for the local user and an auth-less server)."""

    name: str
    role: str
    token_id: str | None = None

    def allows(self, need: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(need)


ACTING: ContextVar[Identity | None] = ContextVar("mloop_acting", default=None)


def acting() -> Identity | None:
    """The identity of the request being served, ``None`` outside a server."""
    return ACTING.get()


@contextlib.contextmanager
def acting_as(identity: Identity) -> Iterator[Identity]:
    """Run a block as ``identity`` (the server wraps each request in this)."""
    token = ACTING.set(identity)
    try:
        yield identity
    finally:
        ACTING.reset(token)
