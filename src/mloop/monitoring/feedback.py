"""Ground truth that arrives after the prediction, joined to it by request id.

A served prediction answers with its ``request_id`` (the ``x-request-id`` header and the
body of ``/predict``). When the true outcome is known, send it back — ``mloop.log_feedback
(request_id, label)``, ``POST /api/v1/feedback`` or ``mloop monitor feedback`` — one label
per predicted row (a list for a request of several rows). Labels are stored once per
(request, row); sending one again replaces it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from mloop.project import Project

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class Feedback:
    request_id: str
    row: int
    label: Any


def _label(value: Any, where: str) -> str:
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()  # NumPy scalars
    if isinstance(value, (bool, int, str)):
        return json.dumps(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: a label must be a finite number, not {value}.")
        return json.dumps(value)
    raise InvalidInputError(f"{where}: a label is a number, a string or a boolean, not "
                            f"{type(value).__name__}.")


def entries(request_id: str, label: Any, row: int | None = None) -> list[Feedback]:
    """Validated feedback rows: a list label gives one row per element (rows 0, 1, …)."""
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise InvalidInputError(f"request_id {request_id!r}: use the id the server answered "
                                "with (letters, digits, '_', '-', '.', ':'; up to 64).")
    if hasattr(label, "ndim") and getattr(label, "ndim", 0) >= 1:
        label = label.tolist()  # a NumPy array (or Series) of labels: one per row
    if isinstance(label, (list, tuple)):
        if row is not None:
            raise InvalidInputError("Give either a list of labels (one per row) or row=, "
                                    "not both.")
        if not label:
            raise InvalidInputError(f"request {request_id}: the list of labels is empty.")
        return [Feedback(request_id, i, _label(v, f"request {request_id} row {i}"))
                for i, v in enumerate(label)]
    if row is not None and (not isinstance(row, int) or isinstance(row, bool) or row < 0):
        raise InvalidInputError(f"row must be a non-negative integer, not {row!r}.")
    return [Feedback(request_id, row or 0, _label(label, f"request {request_id}"))]


def save(project: Project, items: Iterable[Feedback]) -> int:
    """Store feedback rows in one transaction (a repeated (request, row) is replaced)."""
    from mloop.store.schema import feedback

    now = now_ms()
    rows = [{"request_id": f.request_id, "row": f.row, "label": f.label, "created_at": now}
            for f in items]
    if not rows:
        return 0
    store = project.store
    stmt = store.insert(feedback)
    stmt = stmt.on_conflict_do_update(index_elements=["request_id", "row"], set_={
        "label": stmt.excluded.label, "created_at": stmt.excluded.created_at})
    with store.write() as conn:
        conn.execute(stmt, rows)
    return len(rows)


def log_feedback(project: Project, request_id: str, label: Any, *,
                 row: int | None = None) -> int:
    """Record the true outcome of a served prediction; returns the rows stored."""
    return save(project, entries(request_id, label, row))


def log_frame(project: Project, frame: pd.DataFrame) -> int:
    """Feedback from a table with columns ``request_id``, ``label`` and optionally ``row``."""
    missing = {"request_id", "label"} - set(frame.columns)
    if missing:
        raise InvalidInputError(f"The feedback table needs the columns request_id and label "
                                f"(and optionally row); missing: {', '.join(sorted(missing))}.")
    for column in ("request_id", "label", "row"):
        if column in frame.columns and frame[column].isna().any():
            first = int(frame[column].isna().to_numpy().argmax())
            raise InvalidInputError(f"The feedback table has an empty {column} (data row "
                                    f"{first + 1}); fill it or drop the row.")
    ids = frame["request_id"].astype(str).tolist()
    labels = frame["label"].tolist()
    if "row" in frame.columns:
        import pandas as pd

        numbers = pd.to_numeric(frame["row"], errors="coerce")
        if numbers.isna().any() or (numbers % 1 != 0).any() or (numbers < 0).any():
            raise InvalidInputError("The feedback table's row column must hold whole "
                                    "numbers from 0 (a row of the request).")
        rows = numbers.astype(int).tolist()
    else:
        rows = [0] * len(ids)
    items = [e for rid, lab, r in zip(ids, labels, rows, strict=True)
             for e in entries(rid, lab, r)]
    return save(project, items)


def read(project: Project, since_ms: int) -> pd.DataFrame:
    """Feedback stored at or after ``since_ms``: request_id, row, label (decoded)."""
    import pandas as pd
    from sqlalchemy import select

    from mloop.store.schema import feedback

    query = select(feedback.c.request_id, feedback.c.row, feedback.c.label).where(
        feedback.c.created_at >= since_ms)
    with project.store.read() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["request_id", "row", "label"])
    frame["label"] = decode(frame["label"])
    return frame


def decode(raw: pd.Series) -> pd.Series:
    """JSON-encoded scalar labels → values, column-wise: strings lose their quotes,
    ``true``/``false`` become booleans, the rest numbers."""
    import pandas as pd

    if raw.empty:
        return raw.astype(object)
    text = raw.astype(str)
    if text.str.startswith('"').all():
        if text.str.contains("\\", regex=False).any():  # escapes: let JSON read them
            return pd.Series([json.loads(t) for t in text], index=raw.index)
        return text.str.slice(1, -1)
    if text.isin(["true", "false"]).all():
        return text == "true"
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        return numbers
    return pd.Series([json.loads(t) for t in text], index=raw.index)
