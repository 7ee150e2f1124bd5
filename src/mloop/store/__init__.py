"""The metadata store: SQLAlchemy 2 Core over SQLite (embedded) or PostgreSQL (team).

Names are loaded on first use: importing SQLAlchemy costs ~0.2 s, and the CLI's read-only
commands (``mloop data status`` …) answer through :mod:`mloop.store.lite` without it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~12 ms of every command's start-up

if TYPE_CHECKING:
    from typing import Any

    from mloop.store.engine import Store
    from mloop.store.schema import metadata

__all__ = ["Store", "metadata"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from mloop.store.engine import Store

        return Store
    if name == "metadata":
        from mloop.store.schema import metadata

        return metadata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
