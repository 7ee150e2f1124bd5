"""Lineage edges: ``src --relation--> dst`` between mloop URIs (``lineage_edges``).

Edges are written by the operation that makes them (a run reading a dataset version, a
model registered from a run …) and never change; recording one twice is a no-op. The
graph walks and the phrasing are :mod:`mloop.lineage`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mloop.core.clock import now_ms
from mloop.project import Project

__all__ = ["Edge", "LineageEdges", "SqlLineageEdges"]


@dataclass(frozen=True, slots=True)
class Edge:
    src: str
    dst: str
    relation: str
    created_at: int


class LineageEdges(Protocol):
    """The lineage graph's edges."""

    def add(self, src: str, dst: str, relation: str) -> None:
        """Record ``src --relation--> dst`` (idempotent: the first record's time stays)."""
        ...

    def touching(self, uri: str) -> list[Edge]:
        """Every edge into or out of ``uri``, oldest first."""
        ...


class SqlLineageEdges:
    """:class:`LineageEdges` over the metadata store (SQLAlchemy Core)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def add(self, src: str, dst: str, relation: str) -> None:
        from mloop.store.schema import lineage_edges

        store = self.project.store
        with store.write() as conn:
            conn.execute(store.insert(lineage_edges).values(
                src=src, dst=dst, relation=relation,
                created_at=now_ms()).on_conflict_do_nothing())

    def touching(self, uri: str) -> list[Edge]:
        from sqlalchemy import or_, select

        from mloop.store.schema import lineage_edges

        query = select(lineage_edges).where(or_(lineage_edges.c.src == uri,
                                                lineage_edges.c.dst == uri))
        with self.project.store.read() as conn:
            rows = conn.execute(query.order_by(lineage_edges.c.created_at)).all()
        return [Edge(r.src, r.dst, r.relation, r.created_at) for r in rows]
