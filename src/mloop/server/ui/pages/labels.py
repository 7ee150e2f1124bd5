"""The labelling queue: logged predictions without feedback, the least certain first (or at
random), shown one at a time with their inputs for a writer to label. A label goes to the
feedback store with who gave it and when, and counts toward live performance and the
next retraining like any other feedback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mloop.server.ui.app import View, as_caller, audit, back, change, project_of
from mloop.server.ui.render import PREFIX, Column, Context, Table, page

if TYPE_CHECKING:
    from mloop.monitoring.feedback import LabelQueue, QueueItem

router = APIRouter()
ROLE = "writer"  # feedback.save in mloop.server.methods
UPCOMING = 10  # queue entries listed after the one shown


def _models(ctx: Context) -> list[str]:
    from mloop.monitoring.rules import load_config
    from mloop.monitoring.runner import monitored_models

    project = project_of(ctx.request)
    return monitored_models(project, load_config(project.root))


@router.get("/labels")
def labels(ctx: Context = View, model: str | None = None, mode: str = "uncertainty",
           version: int | None = None, offset: int = 0) -> Response:
    from mloop.monitoring.feedback import label_queue

    project = project_of(ctx.request)
    if not model:
        rows = []
        for name in _models(ctx):
            queue = label_queue(project, name, limit=1)
            rows.append({"model": name, "model_href": ctx.url("labels", model=name),
                         "total": queue.total, "labelled": queue.labelled,
                         "waiting": queue.waiting})
        table = Table("models", [Column("model", "Model", "link"),
                                 Column("total", "Logged predictions", "num"),
                                 Column("labelled", "Labelled", "num"),
                                 Column("waiting", "Waiting", "num")], rows,
                      empty="No predictions logged yet: serve a model and send it requests.")
        return page(ctx, "labels.html", title="Labelling queue", tables=[table])
    from mloop.registry.models import get_version

    name = get_version(project, model).name  # an unknown model: the 404 page
    queue = label_queue(project, name, mode=mode, version=version, offset=max(offset, 0),
                        limit=UPCOMING + 1)
    item = queue.items[0] if queue.items else None
    tables = [_upcoming(ctx, queue)]
    if item is not None:
        tables.append(_inputs(item))
    return page(ctx, "labels_item.html", title=f"Label {name}", tables=tables,
                model=name, queue=queue, item=item, shown=version,
                facts=_facts(item) if item is not None else [],
                choices=sorted(item.probabilities) if item is not None else [],
                share=queue.labelled / queue.total if queue.total else 0.0)


def _facts(item: QueueItem) -> list[tuple[str, Any]]:
    """The prediction to label, as (label, value) pairs: its answer and how sure it was."""
    from mloop.server.ui.render import iso_time, number

    return [("Request", item.request_id), ("Row", item.row),
            ("Model version", item.version), ("Predicted", iso_time(item.time_ms)),
            ("Prediction", item.prediction),
            ("Margin", number(item.margin) if item.margin is not None
             else "no probabilities"),
            *((f"P({cls})", number(p)) for cls, p in sorted(item.probabilities.items()))]


def _upcoming(ctx: Context, queue: LabelQueue) -> Table:
    rows = [{"at": queue.offset + i + 1, "at_href": ctx.here(offset=queue.offset + i),
             "request_id": it.request_id, "row": it.row, "version": it.version,
             "prediction": it.prediction, "margin": it.margin, "time": it.time_ms}
            for i, it in enumerate(queue.items)]
    return Table("queue", [
        Column("at", "Place", "link"), Column("request_id", "Request"),
        Column("row", "Row", "num"), Column("version", "Version", "num"),
        Column("prediction", "Prediction"), Column("margin", "Margin", "num"),
        Column("time", "Predicted", "time")], rows,
        empty="Nothing left to label here.")


def _inputs(item: QueueItem) -> Table:
    rows: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in item.inputs.items()]
    return Table("inputs", [Column("name", "Input"), Column("value", "Value", "num")], rows,
                 caption=f"Request {item.request_id}, row {item.row}")


@router.post("/labels")
async def give(request: Request) -> Response:
    from mloop.errors import InvalidInputError
    from mloop.monitoring.feedback import label, label_value
    from mloop.server.ui.render import quote

    identity, fields = await change(request, ROLE)
    request_id = fields.get("request_id", "")
    try:
        row = int(fields.get("row", "0"))
    except ValueError:
        raise InvalidInputError("row must be a whole number (the row of the request).") \
            from None
    chosen = fields.get("choice") or fields.get("label") or ""
    value = label_value(chosen)
    project = project_of(request)
    result = await as_caller(identity, lambda: label(project, request_id, value, row=row))
    audit(request, identity, "feedback.label", request_id)
    query = "&".join(f"{k}={quote(fields[k])}" for k in ("model", "mode", "version",
                                                         "offset") if fields.get(k))
    note = "" if not result.unmatched else " (no logged prediction has it yet)"
    return back(request, {}, f"{PREFIX}/labels" + (f"?{query}" if query else ""),
                f"Labelled request {request_id} row {row} as {value!r}{note}.")
