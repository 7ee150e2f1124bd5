"""Precomputed predictions keyed by entity, and the batches that wrote them:
``precompute_batches``, ``precomputed``.

SQLAlchemy Core on ``project.store`` (``mloop batch``); imported when first used. Rows
are written with bulk upserts keyed by (table, model version, entity key).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.errors import NotFoundError

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["BatchStatus", "PrecomputeBatch", "PrecomputeTables", "Precomputed",
           "SqlPrecomputeTables"]


class BatchStatus(enum.StrEnum):
    """A batch is running until all its rows are written."""

    RUNNING = "running"
    COMPLETE = "complete"


@dataclass(frozen=True)
class PrecomputeBatch:
    """One scoring of a table by a model version."""

    id: str
    table: str
    model_uri: str
    source: str
    status: BatchStatus
    rows: int
    started_at: int
    finished_at: int | None


@dataclass(frozen=True)
class Precomputed:
    """One stored prediction (``prediction``: JSON text ``{"prediction", "proba"?}``)."""

    table: str
    model_uri: str
    key: str
    batch_id: str
    prediction: str
    created_at: int


class PrecomputeTables(Protocol):
    """What the rest of mloop may ask of the precompute tables."""

    def start(self, table: str, model_uri: str, source: str) -> PrecomputeBatch:
        """Record a batch that starts now (running)."""
        ...

    def finish(self, batch_id: str, rows: int) -> PrecomputeBatch:
        """Mark a batch complete with the rows it wrote."""
        ...

    def batch(self, batch_id: str) -> PrecomputeBatch:
        """One batch (NotFoundError if none)."""
        ...

    def scored_keys(self, table: str, model_uri: str) -> list[str]:
        """The keys ``model_uri`` has a prediction for in ``table``."""
        ...

    def put(self, table: str, model_uri: str, batch_id: str,
            rows: Iterable[tuple[str, str]]) -> int:
        """Store (key, prediction JSON) rows, replacing a key's earlier prediction by the
        same model version; how many."""
        ...

    def newest_model(self, table: str) -> str:
        """The model version of the newest complete batch of ``table`` (NotFoundError if
        none is complete)."""
        ...

    def get(self, table: str, model_uri: str, key: str | int) -> Precomputed:
        """The stored prediction for ``key`` (NotFoundError if none)."""
        ...


class SqlPrecomputeTables:
    """Precomputed predictions in the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def start(self, table: str, model_uri: str, source: str) -> PrecomputeBatch:
        from mloop.store.schema import precompute_batches

        batch = PrecomputeBatch(new_id(), table, model_uri, source, BatchStatus.RUNNING, 0,
                                now_ms(), None)
        with self.project.store.write() as conn:
            conn.execute(precompute_batches.insert().values(
                id=batch.id, table_name=table, model_uri=model_uri, source=source,
                status=batch.status.value, rows=0, started_at=batch.started_at))
        return batch

    def finish(self, batch_id: str, rows: int) -> PrecomputeBatch:
        from mloop.store.schema import precompute_batches

        with self.project.store.write() as conn:
            conn.execute(precompute_batches.update()
                         .where(precompute_batches.c.id == batch_id)
                         .values(status=BatchStatus.COMPLETE.value, rows=rows,
                                 finished_at=now_ms()))
        return self.batch(batch_id)

    def batch(self, batch_id: str) -> PrecomputeBatch:
        from sqlalchemy import select

        from mloop.store.schema import precompute_batches

        with self.project.store.read() as conn:
            r = conn.execute(select(precompute_batches).where(
                precompute_batches.c.id == batch_id)).first()
        if r is None:
            raise NotFoundError(f"No precompute batch {batch_id!r}.")
        return PrecomputeBatch(r.id, r.table_name, r.model_uri, r.source,
                               BatchStatus(r.status), int(r.rows), int(r.started_at),
                               None if r.finished_at is None else int(r.finished_at))

    def scored_keys(self, table: str, model_uri: str) -> list[str]:
        from sqlalchemy import select

        from mloop.store.schema import precomputed

        with self.project.store.read() as conn:
            return list(conn.execute(select(precomputed.c.key).where(
                precomputed.c.table_name == table,
                precomputed.c.model_uri == model_uri)).scalars())

    def put(self, table: str, model_uri: str, batch_id: str,
            rows: Iterable[tuple[str, str]]) -> int:
        from mloop.store.schema import precomputed

        now = now_ms()
        values = [{"table_name": table, "model_uri": model_uri, "key": k,
                   "batch_id": batch_id, "prediction": p, "created_at": now} for k, p in rows]
        if not values:
            return 0
        store = self.project.store
        stmt = store.insert(precomputed)
        stmt = stmt.on_conflict_do_update(
            index_elements=["table_name", "model_uri", "key"],
            set_={"batch_id": stmt.excluded.batch_id, "prediction": stmt.excluded.prediction,
                  "created_at": stmt.excluded.created_at})
        with store.write() as conn:
            conn.execute(stmt, values)
        return len(values)

    def newest_model(self, table: str) -> str:
        from sqlalchemy import select

        from mloop.store.schema import precompute_batches

        with self.project.store.read() as conn:
            model = conn.execute(
                select(precompute_batches.c.model_uri)
                .where(precompute_batches.c.table_name == table,
                       precompute_batches.c.status == BatchStatus.COMPLETE.value)
                .order_by(precompute_batches.c.finished_at.desc()).limit(1)).scalar()
        if model is None:
            raise NotFoundError(f"No complete batch for table {table!r}; run `mloop batch "
                                f"predict MODEL --input FILE --key COLUMN --table {table}`.")
        return str(model)

    def get(self, table: str, model_uri: str, key: str | int) -> Precomputed:
        from sqlalchemy import select

        from mloop.store.schema import precomputed

        with self.project.store.read() as conn:
            r = conn.execute(select(precomputed).where(
                precomputed.c.table_name == table, precomputed.c.model_uri == model_uri,
                precomputed.c.key == str(key))).first()
        if r is None:
            raise NotFoundError(f"No precomputed prediction for key {key!r} in {table!r} "
                                f"({model_uri}).")
        return Precomputed(r.table_name, r.model_uri, r.key, r.batch_id, r.prediction,
                           int(r.created_at))
