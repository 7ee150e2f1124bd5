"""Ground truth that arrives after the prediction, joined to it by request id.

A served prediction answers with its ``request_id`` (the ``x-request-id`` header and the
body of ``/predict``). When the true outcome is known, send it back — ``mloop.log_feedback
(request_id, label)``, ``POST /api/v1/feedback`` or ``mloop monitor feedback`` — one label
per predicted row (a list for a request of several rows). Labels are stored once per
(request, row); sending one again replaces it.

A label may arrive before its prediction is in the log (the server writes the log about a
second late) or carry a request id no prediction has. It is stored all the same, *not yet
matched*: every save says how many labels it matched (``FeedbackResult``), metrics only
ever count labels joined to a logged prediction, and the join happens whenever the
prediction appears. Labels that never match go with the log's retention (``mloop monitor
prune``); ``mloop monitor feedback`` without arguments lists how many wait.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.core.humanize import plural
from mloop.core.ids import id_time_ms
from mloop.errors import InvalidInputError, ServiceUnavailableError
from mloop.repositories.feedback import Feedback

if TYPE_CHECKING:
    import pandas as pd

    from mloop.project import Project
    from mloop.repositories.feedback import FeedbackLabels

__all__ = ["QUEUE_MODES", "Feedback", "FeedbackResult", "FeedbackStatus", "LabelQueue",
           "LimitError", "QueueItem", "decode", "entries", "frame_entries", "label",
           "label_queue", "label_value", "log_feedback", "log_frame", "read",
           "request_entries", "save", "send", "status", "unmatched"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# an id made by mloop.core.ids.new_id (UUIDv7: the server's request ids, worker job ids)
_TIMED_ID = re.compile(r"^[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$")
# a segment is written within seconds of its rows; an hour covers a backlog
_LOG_DELAY_MS = 3_600_000


@dataclass(frozen=True)
class FeedbackResult:
    """What a save did: labels stored, and how many of them no logged prediction has yet."""

    stored: int
    unmatched: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"stored": self.stored, "unmatched": self.unmatched}

    def message(self) -> str:
        """One line for people: "Stored 3 labels, 1 not yet matched: …"."""
        if not self.stored:
            return "Stored no labels."
        if not self.unmatched:
            return f"Stored {plural(self.stored, 'label')}, all matched to logged predictions."
        return (f"Stored {plural(self.stored, 'label')}, {self.unmatched:,} not yet matched: no "
                "logged prediction has that request id and row (yet). They are joined when "
                "the prediction is logged, and pruned with the log if it never is; check "
                "the request ids.")


@dataclass
class FeedbackStatus:
    """Every stored label, matched to the prediction log or waiting."""

    labels: int
    matched: dict[str, int] = field(default_factory=dict)  # model -> labels matched
    unmatched: int = 0
    oldest_unmatched_ms: int | None = None
    examples: list[str] = field(default_factory=list)  # a few unmatched request ids

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "matched": self.matched, "unmatched": self.unmatched,
                "oldest_unmatched_ms": self.oldest_unmatched_ms,
                "unmatched_examples": self.examples}


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


class LimitError(InvalidInputError):
    """A feedback request over one of the ``[serving]`` limits (HTTP 413)."""

    http_status, code = 413, "too_large"

    def __init__(self, message: str, limit: str, value: int) -> None:
        super().__init__(message)
        self.limit, self.value = limit, value


def request_entries(body: Any, *, max_items: int, max_label_bytes: int) -> list[Feedback]:
    """The feedback rows of a ``POST /api/v1/feedback`` body (``{request_id, label, row?}``
    or ``{items: [...]}``): ``PayloadError`` for its shape, :class:`InvalidInputError`
    for a value, :class:`LimitError` past ``feedback_max_items`` labels (a list label
    counts each element) or a label longer than ``feedback_max_label_bytes`` as JSON."""
    from mloop.serving.protocol import PayloadError

    if not isinstance(body, dict):
        raise PayloadError("$", "send {request_id, label, row?} or {items: [...]}")
    listed = "items" in body
    items = body["items"] if listed else [body]
    if not isinstance(items, list) or not items:
        raise PayloadError("items", "a non-empty list of {request_id, label, row?}")
    too_many = (f"more than {max_items:,} labels in one request (feedback_max_items = "
                f"{max_items}; send them in several requests, or raise [serving] "
                "feedback_max_items / MLOOP_FEEDBACK_MAX_ITEMS)")
    if len(items) > max_items:
        raise LimitError(too_many[0].upper() + too_many[1:] + ".", "feedback_max_items",
                         max_items)
    out: list[Feedback] = []
    for i, item in enumerate(items):
        where = f"items[{i}]" if listed else "$"
        if not isinstance(item, dict) or "request_id" not in item or "label" not in item:
            raise PayloadError(where, "needs request_id and label (and optionally row)")
        found = entries(item["request_id"], item["label"], item.get("row"))
        for f in found:
            if len(f.label) > max_label_bytes:
                raise LimitError(
                    f"{where}: a label of {len(f.label):,} bytes as JSON is larger than "
                    f"feedback_max_label_bytes = {max_label_bytes} (raise [serving] "
                    "feedback_max_label_bytes / MLOOP_FEEDBACK_MAX_LABEL_BYTES).",
                    "feedback_max_label_bytes", max_label_bytes)
        out.extend(found)
        if len(out) > max_items:
            raise LimitError(f"{where}: {too_many}.", "feedback_max_items", max_items)
    return out


def save(project: Project, items: Iterable[Feedback], *,
         unwritten: Callable[[Iterable[str]], Mapping[str, int]] | None = None,
         labelled_by: str | None = None) -> FeedbackResult:
    """Store feedback rows in one transaction (a repeated (request, row) is replaced) and
    count those no logged prediction has yet. ``unwritten`` names requests a running
    server has answered but not yet logged (they count as matched); ``labelled_by`` who
    gave the labels, when known."""
    stored = _labels(project).save(items, initiated_by=labelled_by)
    if not stored:
        return FeedbackResult(0)
    return FeedbackResult(len(stored), len(unmatched(project, stored, unwritten)))


def _labels(project: Project) -> FeedbackLabels:
    from mloop.repositories import backend

    return backend(project).feedback


def unmatched(project: Project, pairs: Iterable[tuple[str, int]],
              unwritten: Callable[[Iterable[str]], Mapping[str, int]] | None = None
              ) -> set[tuple[str, int]]:
    """The (request_id, row) pairs that no logged prediction has. Ids made by mloop carry
    their time, so only the log segments written after it are read."""
    from mloop.serving.predlog import find_requests

    waiting = set(pairs)
    if unwritten is not None and waiting:
        known = unwritten({rid for rid, _ in waiting})
        waiting = {(rid, row) for rid, row in waiting if not 0 <= row < known.get(rid, 0)}
    ids = {rid for rid, _ in waiting}
    if not ids:
        return waiting
    since = until = None
    if all(_TIMED_ID.match(rid) for rid in ids):
        times = [id_time_ms(rid) for rid in ids]
        since, until = min(times) - 2_000, max(times) + _LOG_DELAY_MS
    found = find_requests(_log_root(project), ids, written_since=since, written_until=until)
    return waiting - set(zip(found["request_id"], found["row"].astype(int), strict=True))


def status(project: Project, *, examples: int = 5) -> FeedbackStatus:
    """How many stored labels are matched to logged predictions (per model) and how many
    wait, the oldest waiting one and a few of their request ids (oldest first)."""
    import pandas as pd

    from mloop.serving.predlog import find_requests

    stored = _labels(project).read()
    frame = pd.DataFrame(list(zip(stored.request_id, stored.row, stored.created_at,
                                  strict=True)),
                         columns=["request_id", "row", "created_at"])  # empty: object columns
    if frame.empty:
        return FeedbackStatus(0)
    found = find_requests(_log_root(project), frame["request_id"].unique()).drop_duplicates()
    merged = frame.merge(found, on=["request_id", "row"], how="left")
    matched = merged.dropna(subset=["model"]).groupby("model").size()
    waiting = merged[merged["model"].isna()].sort_values("created_at")
    return FeedbackStatus(
        len(frame), {str(m): int(n) for m, n in matched.items()}, len(waiting),
        int(waiting["created_at"].iloc[0]) if len(waiting) else None,
        waiting["request_id"].drop_duplicates().head(examples).tolist())


def _log_root(project: Project) -> Any:
    from mloop.serving.predlog import log_root

    return log_root(project)


def log_feedback(project: Project, request_id: str, label: Any, *,
                 row: int | None = None) -> FeedbackResult:
    """Record the true outcome of a served prediction."""
    return save(project, entries(request_id, label, row))


def send(server: str, items: list[Feedback], *, chunk: int | None = None) -> FeedbackResult:
    """Send feedback rows to a running server's ``POST /api/v1/feedback``, in requests of
    at most ``chunk`` labels (default: the ``feedback_max_items`` setting)."""
    from mloop.core.client import ServerClient
    from mloop.core.settings import user_setting

    size = chunk or int(user_setting("feedback_max_items"))
    client = ServerClient(server)
    stored = waiting = 0
    for start in range(0, len(items), size):
        answer = client.post("/api/v1/feedback", {"items": [
            {"request_id": f.request_id, "row": f.row, "label": json.loads(f.label)}
            for f in items[start:start + size]]})
        if not isinstance(answer, dict) or not isinstance(answer.get("stored"), int):
            raise ServiceUnavailableError(f"{client.url} did not answer as an mloop server "
                                          "does to feedback; is it `mloop serve`?")
        stored += answer["stored"]
        waiting += int(answer.get("unmatched") or 0)
    return FeedbackResult(stored, waiting)


def log_frame(project: Project, frame: pd.DataFrame) -> FeedbackResult:
    """Feedback from a table with columns ``request_id``, ``label`` and optionally ``row``."""
    return save(project, frame_entries(frame))


def frame_entries(frame: pd.DataFrame) -> list[Feedback]:
    """Validated feedback rows of a table (request_id, label[, row])."""
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
    return [e for rid, lab, r in zip(ids, labels, rows, strict=True)
            for e in entries(rid, lab, r)]


def read(project: Project, since_ms: int) -> pd.DataFrame:
    """Feedback stored at or after ``since_ms``: request_id, row, label (decoded)."""
    import pandas as pd

    stored = _labels(project).read(since_ms)
    frame = pd.DataFrame(list(zip(stored.request_id, stored.row, stored.label, strict=True)),
                         columns=["request_id", "row", "label"])  # empty: object columns
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


# ── the labelling queue ────────────────────────────────────────────────────────────────

QUEUE_MODES = ("uncertainty", "random")


@dataclass(frozen=True)
class QueueItem:
    """One logged prediction waiting for its label: its inputs as the model saw them, its
    answer, the probabilities by class, and the margin (top probability minus the next:
    small means the model hesitated; None without probabilities)."""

    request_id: str
    row: int
    version: int
    time_ms: int
    prediction: Any
    margin: float | None
    inputs: dict[str, Any]
    probabilities: dict[str, float]


@dataclass(frozen=True)
class LabelQueue:
    """Logged predictions of a model in a window: how many there are, how many have a
    label, and the unlabelled ones in the order to label them."""

    model: str
    mode: str
    total: int
    labelled: int
    items: list[QueueItem]
    offset: int = 0
    note: str | None = None

    @property
    def waiting(self) -> int:
        return self.total - self.labelled


def label_queue(project: Project, model: str, *, mode: str = "uncertainty",
                version: int | None = None, since_ms: int | None = None, limit: int = 10,
                offset: int = 0) -> LabelQueue:
    """The logged predictions of ``model`` (one ``version``; all without) since
    ``since_ms`` that have no label yet, from ``offset``, at most ``limit``.

    ``mode``: ``uncertainty`` — lowest margin between the two most probable classes first
    (what active learning labels first: the rows the model is least sure of); ``random``
    — a uniform sample, in an order fixed by a hash of (request id, row) so that the queue
    does not reshuffle between two looks. Without probabilities (a regressor) the
    uncertainty mode falls back to the random order and says so in ``note``."""
    import numpy as np
    import pandas as pd

    from mloop.serving.predlog import read_predictions

    if mode not in QUEUE_MODES:
        raise InvalidInputError(f"Unknown labelling order {mode!r}; use "
                                f"{' or '.join(QUEUE_MODES)}.")
    if limit < 1 or offset < 0:
        raise InvalidInputError("limit must be at least 1 and offset at least 0.")
    rows = read_predictions(_log_root(project), model, since_ms=since_ms)
    if version is not None:
        rows = rows[rows["version"] == version]
    rows = rows.drop_duplicates(["request_id", "row"]).reset_index(drop=True)
    if rows.empty:
        return LabelQueue(model, mode, 0, 0, [], offset)
    oldest = int(rows["time_ms"].min())
    stored = _labels(project).read(max(oldest - _LOG_DELAY_MS, 0))
    have = pd.DataFrame({"request_id": pd.Series(stored.request_id, dtype=object),
                         "row": pd.Series(stored.row, dtype="int64")})
    keys = pd.MultiIndex.from_frame(rows[["request_id", "row"]].astype({"row": "int64"}))
    done = keys.isin(pd.MultiIndex.from_frame(have)) if len(have) else \
        np.zeros(len(rows), dtype=bool)
    waiting = rows[~done]
    proba = sorted((c for c in rows.columns if c.startswith("proba.")),
                   key=lambda c: int(c.split(".", 1)[1]))
    margin = _margins(waiting[proba].to_numpy(dtype=float)) if len(proba) >= 2 else None
    if margin is not None and not np.isfinite(margin).any():
        margin = None  # another version's probabilities: none for these rows
    order_note = None
    # a stable pseudo-random order: a hash of the key, not of this run's RNG
    shuffled = pd.util.hash_pandas_object(waiting[["request_id", "row"]], index=False,
                                          hash_key="mloop-labelling1").to_numpy()
    if mode == "uncertainty" and margin is not None:
        order = np.lexsort((shuffled, np.nan_to_num(margin, nan=np.inf)))
    else:
        if mode == "uncertainty":
            order_note = ("these predictions have no probabilities, so no margin: shown "
                          "in random order")
        order = np.argsort(shuffled, kind="stable")
    chosen = order[offset:offset + limit]
    page = waiting.iloc[chosen]
    classes = _class_names(project, model, page["version"], len(proba))
    items = [_item(record, proba, classes, None if margin is None else margin[i])
             for i, record in zip(chosen, page.to_dict("records"), strict=True)]
    return LabelQueue(model, mode, len(rows), int(done.sum()), items, offset, order_note)


def _margins(proba: Any) -> Any:
    """Top probability minus the second, per row (NaN where a probability is missing)."""
    import numpy as np

    top2 = np.sort(proba, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def _class_names(project: Project, model: str, versions: Any, n: int) -> dict[int, list[str]]:
    """Per version on the page, the class of each probability column (its index when the
    version does not say)."""
    from mloop.monitoring.live import model_classes

    out = {}
    for version in sorted({int(v) for v in versions}):
        known = model_classes(project, f"models:/{model}/{version}")
        out[version] = ([str(c) for c in known] if known is not None and len(known) == n
                        else [str(k) for k in range(n)])
    return out


def _item(record: dict[str, Any], proba: list[str], classes: dict[int, list[str]],
          margin: float | None) -> QueueItem:
    import math

    version = int(record["version"])
    names = classes.get(version, [])
    probabilities = {names[k] if k < len(names) else str(k): float(record[c])
                     for k, c in enumerate(proba) if record.get(c) is not None
                     and math.isfinite(float(record[c]))}
    inputs = {c[3:]: _plain(v) for c, v in record.items() if c.startswith("in.")}
    return QueueItem(str(record["request_id"]), int(record["row"]), version,
                     int(record["time_ms"]), _plain(record.get("prediction")),
                     None if margin is None or not math.isfinite(margin) else float(margin),
                     inputs, probabilities)


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value (NaN as None)."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def label_value(text: str) -> Any:
    """A label as typed: JSON when it parses as a scalar (``1``, ``0.5``, ``true``,
    ``"yes"``), else the text itself (``malignant``)."""
    text = text.strip()
    if not text:
        raise InvalidInputError("The label is empty; type the true outcome (e.g. 1 or "
                                "malignant).")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, (bool, int, float, str)) else text


def label(project: Project, request_id: str, value: Any, *, row: int = 0) -> FeedbackResult:
    """A label given by a person (the labelling queue): stored as feedback for
    (``request_id``, ``row``), with who gave it (the user acting, see
    :func:`mloop.core.process.current_user`) and when; it counts toward live performance
    like any other feedback."""
    from mloop.core.process import current_user

    return save(project, entries(request_id, value, row), labelled_by=current_user())
