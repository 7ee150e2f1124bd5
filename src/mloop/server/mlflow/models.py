"""MLflow 3.x logged models, held by mloop as folders of their source run.

A logged model (``m-<run id>-<suffix>``) is a folder of run artifacts in its source run
(a run is created for a model logged outside one), and its record (name, status, tags,
params, the step it was output at) is a hidden run tag ``mlflow.loggedModel.<model id>``.
So ``mloop runs show`` lists its files, and once the model is finalized or registered
the folder also holds an ``mloop-model.json`` of flavor ``mlflow``: mloop loads it only
with ``allow_pickle`` (:mod:`mloop.server.mlflow.mlmodel`).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.paths import safe_relpath
from mloop.core.text import MAX_VALUE
from mloop.errors import InvalidInputError, NotFoundError, RunNotFoundError
from mloop.repositories import backend
from mloop.repositories.runs import NewRun, RunStatus, SearchQuery
from mloop.server.mlflow import convert, filters, mlmodel, wire
from mloop.server.mlflow.routing import Args, Routes
from mloop.server.mlflow.tracking import API, get_experiment, run_id_of, user_of
from mloop.tracking import records

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.runs import Run

_ID = re.compile(r"^m-([0-9a-f]{32})-([0-9a-f]{8})$")
_STATUS = {"1": "LOGGED_MODEL_PENDING", "2": "LOGGED_MODEL_READY",
           "3": "LOGGED_MODEL_UPLOAD_FAILED"}


def _no_model(model_id: str) -> NotFoundError:
    return NotFoundError(f"Logged model with ID '{model_id}' not found.")


def find(project: Project, model_id: str) -> tuple[Run, dict[str, Any]]:
    """The source run of a logged model and its record."""
    match = _ID.match(model_id)
    if match is None:
        raise _no_model(model_id)
    try:
        run = backend(project).runs.get(records.resolve_run_id(project, match.group(1)))
    except RunNotFoundError:
        raise _no_model(model_id) from None
    try:
        record = json.loads(run.tags[convert.MODEL_TAG + model_id])
    except (KeyError, ValueError):
        raise _no_model(model_id) from None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        raise _no_model(model_id)
    return run, record


def save(project: Project, run_id: str, model_id: str, record: dict[str, Any]) -> None:
    record["updated"] = now_ms()
    text = json.dumps(record, sort_keys=True)
    if len(text) > MAX_VALUE:  # params copied from a big run: keep the record storable
        record["params"] = {}
        text = json.dumps(record, sort_keys=True)
    backend(project).runs.set_tags(run_id, {convert.MODEL_TAG + model_id: text})


def model(run: Run, model_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """A logged model as MLflow answers it."""
    info = wire.clean({
        "model_id": model_id, "experiment_id": run.experiment_id, "name": record["name"],
        "artifact_uri": f"{convert.artifact_root(run.experiment_id, run.id)}/{record['path']}",
        "creation_timestamp_ms": record["created"], "last_updated_timestamp_ms":
        record.get("updated", record["created"]), "status": record["status"],
        "model_type": record.get("model_type"), "source_run_id": record.get("source_run_id"),
        "tags": wire.pairs(record.get("tags") or {}),
    })
    data = wire.clean({"params": wire.pairs(record.get("params") or {})})
    return {"info": info, "data": data}


def _folder(run: Run, name: str, model_id: str) -> str:
    """Where a new logged model's files go: its name, unless the run already holds a
    model or files there."""
    path = safe_relpath(name)
    taken = {json.loads(v).get("path") for k, v in run.tags.items()
             if k.startswith(convert.MODEL_TAG)}
    used = any(a.path == path or a.path.startswith(path + "/") for a in run.artifacts)
    return f"{path}-{model_id[-8:]}" if path in taken or used else path


def _holder_run(project: Project, args: Args, experiment_id: str, name: str) -> str:
    """A run for a model logged outside any run (mloop keeps files with runs)."""
    run_id = new_id()
    backend(project).runs.create(NewRun(
        id=run_id, experiment_id=experiment_id, name=name, start_time=now_ms(),
        parent_id=None, user=user_of(args, None), command=None, seed=None,
        git_commit=None, git_branch=None, git_dirty=None, git_diff_digest=None,
        environment_id=None), None, tags={"mlflow.runName": name,
                                          "mloop.mlflow.loggedModelHolder": "true"})
    backend(project).runs.set_status(run_id, RunStatus.FINISHED)
    return run_id


def _values(record: dict[str, Any], model_id: str) -> dict[str, str]:
    return {"name": record["name"], "source_run_id": record.get("source_run_id") or "",
            "model_id": model_id, "status": record["status"]}


def register(routes: Routes) -> None:
    """Add the logged-model routes and ``runs/outputs``."""
    project = routes.project
    runs = backend(project).runs
    base = f"{API}/logged-models"

    @routes.post(base)
    def create(args: Args) -> Args:
        exp = get_experiment(project, wire.need(args, "experiment_id"))
        name = wire.text(args, "name", required=False) or "model"
        source = wire.text(args, "source_run_id", required=False)
        run_id = (records.resolve_run_id(project, source) if source
                  else _holder_run(project, args, exp.id, name))
        run = runs.get(run_id)
        model_id = f"m-{run_id}-{new_id()[-8:]}"
        now = now_ms()
        record = {"name": name, "path": _folder(run, name, model_id), "created": now,
                  "status": "LOGGED_MODEL_PENDING", "source_run_id": source,
                  "model_type": wire.text(args, "model_type", required=False),
                  "tags": records.stringify_tags(wire.key_values(args, "tags")),
                  "params": records.stringify_params(wire.key_values(args, "params"))}
        save(project, run_id, model_id, record)
        return {"model": model(runs.get(run_id), model_id, record)}

    @routes.get(base + "/{model_id}")
    def get(args: Args) -> Args:
        model_id = wire.need(args, "model_id")
        run, record = find(project, model_id)
        return {"model": model(run, model_id, record)}

    @routes.patch(base + "/{model_id}")
    def finalize(args: Args) -> Args:
        model_id = wire.need(args, "model_id")
        run, record = find(project, model_id)
        status = str(args.get("status") or "")
        status = _STATUS.get(status, status)
        if status not in _STATUS.values():
            raise wire.invalid(f"Invalid logged model status {status!r}.")
        if status == "LOGGED_MODEL_READY":
            try:
                mlmodel.write_manifest(project, run.id, record["path"], model_id)
            except InvalidInputError as exc:  # no MLmodel: not a model mloop can load
                wire.log.info("logged model %s has no mloop manifest: %s", model_id,
                              exc.message)
        record["status"] = status
        save(project, run.id, model_id, record)
        return {"model": model(runs.get(run.id), model_id, record)}

    @routes.patch(base + "/{model_id}/tags")
    def set_tags(args: Args) -> Args:
        model_id = wire.need(args, "model_id")
        run, record = find(project, model_id)
        record.setdefault("tags", {}).update(
            records.stringify_tags(wire.key_values(args, "tags")))
        save(project, run.id, model_id, record)
        return {}

    @routes.delete(base + "/{model_id}/tags/{tag_key}")
    def delete_tag(args: Args) -> Args:
        model_id = wire.need(args, "model_id")
        run, record = find(project, model_id)
        (record.get("tags") or {}).pop(wire.need(args, "tag_key"), None)
        save(project, run.id, model_id, record)
        return {}

    @routes.post(base + "/search", "reader")
    def search(args: Args) -> Args:
        ids = tuple(get_experiment(project, e).id for e in wire.strings(args, "experiment_ids"))
        conditions = filters.clauses(wire.text(args, "filter", required=False),
                                     ("name", "source_run_id", "model_id", "status"))
        limit = wire.integer(args, "max_results", 100) or 100
        page = runs.search(SearchQuery(experiment_ids=ids or None))
        found = []
        for _run_id, key, _value in page.kv.get("tags", []):
            if key.startswith(convert.MODEL_TAG):
                model_id = key[len(convert.MODEL_TAG):]
                run, record = find(project, model_id)
                if filters.keep(conditions, _values(record, model_id)):
                    found.append(model(run, model_id, record))
        found.sort(key=lambda m: -m["info"]["creation_timestamp_ms"])
        return wire.clean({"models": found[:limit]})

    @routes.post(f"{API}/runs/outputs")
    def outputs(args: Args) -> Args:
        run_id = run_id_of(project, args)
        for item in wire.items(args, "models"):
            model_id = wire.need(item, "model_id")
            run, record = find(project, model_id)
            if run.id != run_id:
                raise wire.invalid(f"Logged model {model_id} was not logged by run {run_id}.")
            record["output_step"] = wire.integer(item, "step", 0)
            save(project, run.id, model_id, record)
        return {}
