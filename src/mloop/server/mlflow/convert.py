"""mloop's records in MLflow's wire form: experiments, runs, their data and inputs.

Things MLflow keeps that mloop has no column for are kept as run tags under prefixes
the mlflow client never shows (:data:`HIDDEN`): a run's dataset inputs
(``mlflow.datasetInput.<digest>``) and the logged models it produced
(``mlflow.loggedModel.<model_id>``). mloop's own API and CLI see them as tags.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from mloop.server.mlflow import wire

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.experiments import Experiment
    from mloop.repositories.runs import NewRun, Run

DEFAULT_ID = "0"  # the experiment the mlflow client uses when none was set
DEFAULT_NAME = "default"  # mloop's own default experiment, which "0" stands for
INPUT_TAG = "mlflow.datasetInput."
MODEL_TAG = "mlflow.loggedModel."
HIDDEN = (INPUT_TAG, MODEL_TAG)


def artifact_root(experiment_id: str, run_id: str) -> str:
    """A run's ``artifact_uri``: the artifact proxy's path, resolved by the client
    against the tracking host."""
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


def experiment(exp: Experiment) -> dict[str, Any]:
    tags = [{"key": "mlflow.note.content", "value": exp.description}] if exp.description else []
    return wire.clean({
        "experiment_id": exp.id, "name": exp.name,
        "artifact_location": f"mlflow-artifacts:/{exp.id}", "lifecycle_stage": "active",
        "creation_time": exp.created_at, "last_update_time": exp.created_at, "tags": tags,
    })


def run_tags(run: Run) -> dict[str, str]:
    """The tags the mlflow client sees: the run's, less the hidden ones, plus the system
    tags it expects (run name, parent, user) from mloop's columns."""
    tags = {k: v for k, v in run.tags.items() if not k.startswith(HIDDEN)}
    tags.setdefault("mlflow.runName", run.name)
    if run.parent_id:
        tags.setdefault("mlflow.parentRunId", run.parent_id)
    if run.user:
        tags.setdefault("mlflow.user", run.user)
    return tags


def run_info(run: Run) -> dict[str, Any]:
    return wire.clean({
        "run_id": run.id, "run_uuid": run.id, "run_name": run.name,
        "experiment_id": run.experiment_id, "user_id": run.user or "",
        "status": str(run.status), "start_time": run.start_time, "end_time": run.end_time,
        "artifact_uri": artifact_root(run.experiment_id, run.id),
        "lifecycle_stage": "deleted" if run.deleted else "active",
    })


def new_run(run: NewRun, tags: dict[str, str]) -> dict[str, Any]:
    """A run just created, as ``runs/create`` answers it (without reading it back)."""
    info = wire.clean({
        "run_id": run.id, "run_uuid": run.id, "run_name": run.name,
        "experiment_id": run.experiment_id, "user_id": run.user or "", "status": "RUNNING",
        "start_time": run.start_time, "artifact_uri": artifact_root(run.experiment_id, run.id),
        "lifecycle_stage": "active"})
    shown = {k: v for k, v in tags.items() if not k.startswith(HIDDEN)}
    if run.user:
        shown.setdefault("mlflow.user", run.user)
    return {"info": info, "data": wire.clean({"tags": wire.pairs(shown)}), "inputs": {}}


def dataset_inputs(tags: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for key in sorted(tags):
        if key.startswith(INPUT_TAG):
            try:
                out.append(json.loads(tags[key]))
            except ValueError:
                continue
    return out


def model_outputs(tags: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for key in sorted(tags):
        if key.startswith(MODEL_TAG):
            try:
                record = json.loads(tags[key])
            except ValueError:
                continue
            if record.get("output_step") is not None:
                out.append({"model_id": key[len(MODEL_TAG):], "step": record["output_step"]})
    return out


def run(project: Project, found: Run, *, latest: bool = True) -> dict[str, Any]:
    """A run as ``runs/get`` answers it. ``latest``: each metric's last step and time
    (one look-up per key); otherwise step and time 0 (as in search results)."""
    from mloop.repositories import backend

    metrics = []
    for key, value in sorted(found.metrics.items()):
        step, timestamp = 0, 0
        if latest:
            history = backend(project).runs.metric_history(found.id, key)
            if history:
                step, timestamp = max((p[0], p[1]) for p in history)
        metrics.append({"key": key, "value": wire.double(value), "timestamp": timestamp,
                        "step": step})
    data = wire.clean({"metrics": metrics, "params": wire.pairs(found.params),
                       "tags": wire.pairs(run_tags(found))})
    inputs = wire.clean({"dataset_inputs": dataset_inputs(found.tags)})
    outputs = wire.clean({"model_outputs": model_outputs(found.tags)})
    return {"info": run_info(found), "data": data, "inputs": inputs, "outputs": outputs}


def input_tag(dataset: dict[str, Any]) -> str:
    """The hidden tag a dataset input is kept under: one per (name, digest, context)."""
    inner = dataset.get("dataset") or {}
    context = next((t.get("value") for t in dataset.get("tags") or []
                    if t.get("key") == "mlflow.data.context"), "")
    ident = json.dumps([inner.get("name"), inner.get("digest"), context])
    return INPUT_TAG + hashlib.sha256(ident.encode()).hexdigest()[:16]
