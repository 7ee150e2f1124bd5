"""Ground-truth labels sent after a prediction, one per (request, row): ``feedback``.

SQLAlchemy Core on ``project.store`` (the server's feedback route, monitoring checks);
imported when first used. Reads answer in columns (:class:`LabelColumns`): a window can
hold many thousands of labels, which go straight into a table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mloop.core.clock import now_ms

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["Feedback", "FeedbackLabels", "LabelColumns", "SqlFeedbackLabels"]


@dataclass(frozen=True)
class Feedback:
    """One label to store: ``label`` is its JSON text."""

    request_id: str
    row: int
    label: str  # JSON text: what monitoring.feedback.entries makes of the label sent


@dataclass(frozen=True)
class LabelColumns:
    """Stored labels, column by column (row ``i`` of each list is one label)."""

    request_id: list[str] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    label: list[str] = field(default_factory=list)  # JSON text
    created_at: list[int] = field(default_factory=list)
    labelled_by: list[str | None] = field(default_factory=list)  # None: not known

    def __len__(self) -> int:
        return len(self.request_id)

    def columns(self) -> dict[str, list[Any]]:
        """``{"request_id": [...], "row": [...], "label": [...], "created_at": [...],
        "labelled_by": [...]}``."""
        return {"request_id": self.request_id, "row": self.row, "label": self.label,
                "created_at": self.created_at, "labelled_by": self.labelled_by}


class FeedbackLabels(Protocol):
    """What the rest of mloop may ask of the feedback table."""

    def save(self, items: Iterable[Feedback], now: int | None = None,
             initiated_by: str | None = None) -> list[tuple[str, int]]:
        """Store labels in one transaction (a repeated (request, row) is replaced, the
        last one given wins), given by ``initiated_by`` (a server names its caller);
        returns the (request_id, row) pairs stored."""
        ...

    def read(self, since_ms: int | None = None) -> LabelColumns:
        """Labels stored at or after ``since_ms`` (every label without it)."""
        ...

    def prune(self, before_ms: int) -> int:
        """Delete labels stored before ``before_ms``; how many."""
        ...


class SqlFeedbackLabels:
    """Feedback in the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def save(self, items: Iterable[Feedback], now: int | None = None,
             initiated_by: str | None = None) -> list[tuple[str, int]]:
        from mloop.store.schema import feedback

        when = now_ms() if now is None else now
        rows = {(f.request_id, f.row): {"request_id": f.request_id, "row": f.row,
                                        "label": f.label, "created_at": when,
                                        "labelled_by": initiated_by} for f in items}
        if not rows:
            return []
        store = self.project.store
        stmt = store.insert(feedback)
        stmt = stmt.on_conflict_do_update(index_elements=["request_id", "row"], set_={
            "label": stmt.excluded.label, "created_at": stmt.excluded.created_at,
            "labelled_by": stmt.excluded.labelled_by})
        with store.write() as conn:
            conn.execute(stmt, list(rows.values()))
        return list(rows)

    def read(self, since_ms: int | None = None) -> LabelColumns:
        from sqlalchemy import select

        from mloop.store.schema import feedback

        query = select(feedback.c.request_id, feedback.c.row, feedback.c.label,
                       feedback.c.created_at, feedback.c.labelled_by)
        if since_ms is not None:
            query = query.where(feedback.c.created_at >= since_ms)
        with self.project.store.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return LabelColumns()
        ids, numbers, labels, times, who = (list(c) for c in zip(*rows, strict=True))
        return LabelColumns(ids, [int(n) for n in numbers], labels, [int(t) for t in times],
                            who)

    def prune(self, before_ms: int) -> int:
        from sqlalchemy import delete

        from mloop.store.schema import feedback

        with self.project.store.write() as conn:
            gone = conn.execute(delete(feedback).where(feedback.c.created_at < before_ms))
        return int(gone.rowcount or 0)
