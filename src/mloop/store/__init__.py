"""The metadata store: SQLAlchemy 2 Core over SQLite (embedded) or PostgreSQL (team)."""

from mloop.store.engine import Store
from mloop.store.schema import metadata

__all__ = ["Store", "metadata"]
