"""The prediction log's shared segments (``prediction_segments``).

On a store other than SQLite, replicas of ``mloop serve`` (and workers) on several hosts
share one metadata store and one object store, but each writes its prediction log on its
own disk. Each segment is therefore also put in the object store and listed here, so that
monitoring, feedback and a canary's analysis on any host read every replica's
predictions (:func:`mloop.serving.predlog.log_root` brings the missing ones home).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["PredictionSegments", "Segment", "SqlPredictionSegments"]


@dataclass(frozen=True, slots=True)
class Segment:
    """One Parquet segment of ``model`` at ``version``, named ``name`` on every host."""

    model: str
    version: int
    name: str
    digest: str
    rows: int
    written_at: int


class PredictionSegments(Protocol):
    """What the rest of mloop may ask of the shared segment list."""

    def add(self, segment: Segment) -> None:
        """List ``segment`` (listing it again is a no-op)."""
        ...

    def since(self, written_ms: int | None = None) -> list[Segment]:
        """The segments written at or after ``written_ms`` (all without it), oldest first."""
        ...

    def prune(self, before_ms: int) -> int:
        """Forget segments written before ``before_ms`` (their blobs become garbage)."""
        ...

    def digests(self) -> list[str]:
        """The blobs the listed segments keep (for ``mloop data gc``)."""
        ...


class SqlPredictionSegments:
    """:class:`PredictionSegments` over the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def add(self, segment: Segment) -> None:
        from mloop.store.schema import prediction_segments

        store = self.project.store
        with store.write() as conn:
            conn.execute(store.insert(prediction_segments).values(
                model=segment.model, version=segment.version, name=segment.name,
                digest=segment.digest, rows=segment.rows, written_at=segment.written_at,
            ).on_conflict_do_nothing())

    def since(self, written_ms: int | None = None) -> list[Segment]:
        from sqlalchemy import select

        from mloop.store.schema import prediction_segments as t

        query = select(t.c.model, t.c.version, t.c.name, t.c.digest, t.c.rows, t.c.written_at)
        if written_ms is not None:
            query = query.where(t.c.written_at >= written_ms)
        with self.project.store.read() as conn:
            rows = conn.execute(query.order_by(t.c.written_at, t.c.name)).all()
        return [Segment(m, int(v), n, d, int(r), int(w)) for m, v, n, d, r, w in rows]

    def prune(self, before_ms: int) -> int:
        from sqlalchemy import delete

        from mloop.store.schema import prediction_segments as t

        with self.project.store.write() as conn:
            gone = conn.execute(delete(t).where(t.c.written_at < before_ms))
        return int(gone.rowcount or 0)

    def digests(self) -> list[str]:
        from sqlalchemy import select

        from mloop.store.schema import prediction_segments as t

        with self.project.store.read() as conn:
            return [d for (d,) in conn.execute(select(t.c.digest).distinct())]
