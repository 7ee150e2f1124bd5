"""Recorded evaluations of models: the decision and the digest of the full report
(``evaluations``).

SQLAlchemy Core on ``project.store`` (``mloop test``/``evaluate``, model cards, live
performance criteria); imported when first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["Evaluation", "Evaluations", "SqlEvaluations"]


@dataclass(frozen=True)
class Evaluation:
    """One recorded test of a model (``model_uri``: ``models:/n/v`` or ``runs:/…``)."""

    id: str
    model_uri: str
    run_id: str | None  # the active run it was recorded with, if any
    data: str
    suite: str
    passed: bool
    report: str  # object-store digest of the JSON report
    user: str | None
    created_at: int

    def summary(self) -> dict[str, Any]:
        """The decision and its context: id, passed, suite, data, user, created_at,
        report (``mloop models show --json``'s ``evaluation``)."""
        return {"id": self.id, "passed": self.passed, "suite": self.suite, "data": self.data,
                "user": self.user, "created_at": self.created_at, "report": self.report}


class Evaluations(Protocol):
    """What the rest of mloop may ask of the evaluations table."""

    def add(self, evaluation: Evaluation) -> None:
        """Record an evaluation (ConflictError if its id is taken)."""
        ...

    def latest(self, model_uri: str) -> Evaluation | None:
        """The newest evaluation of ``model_uri`` (None: never evaluated)."""
        ...

    def of_models(self, model_uris: list[str], *, limit: int = 50) -> list[Evaluation]:
        """The evaluations of any of ``model_uris``, newest first."""
        ...


def _record(r: Any) -> Evaluation:
    return Evaluation(r.id, r.model_uri, r.run_id, r.data, r.suite, bool(r.passed), r.report,
                      r.user, int(r.created_at))


class SqlEvaluations:
    """Evaluations in the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def add(self, evaluation: Evaluation) -> None:
        from sqlalchemy.exc import IntegrityError

        from mloop.errors import ConflictError
        from mloop.store.schema import evaluations

        try:
            with self.project.store.write() as conn:
                conn.execute(evaluations.insert().values(
                    id=evaluation.id, model_uri=evaluation.model_uri,
                    run_id=evaluation.run_id, data=evaluation.data, suite=evaluation.suite,
                    passed=evaluation.passed, report=evaluation.report, user=evaluation.user,
                    created_at=evaluation.created_at))
        except IntegrityError as exc:
            raise ConflictError(f"An evaluation {evaluation.id!r} is already recorded.") \
                from exc

    def latest(self, model_uri: str) -> Evaluation | None:
        from sqlalchemy import select

        from mloop.store.schema import evaluations

        with self.project.store.read() as conn:
            row = conn.execute(select(evaluations).where(evaluations.c.model_uri == model_uri)
                               .order_by(evaluations.c.created_at.desc()).limit(1)).first()
        return None if row is None else _record(row)

    def of_models(self, model_uris: list[str], *, limit: int = 50) -> list[Evaluation]:
        from sqlalchemy import select

        from mloop.core.limits import check_limit

        check_limit(limit)

        from mloop.store.schema import evaluations

        with self.project.store.read() as conn:
            rows = conn.execute(select(evaluations)
                                .where(evaluations.c.model_uri.in_(model_uris))
                                .order_by(evaluations.c.created_at.desc()).limit(limit)).all()
        return [_record(r) for r in rows]
