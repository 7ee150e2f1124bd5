"""MLflow's model registry routes over mloop's registry (:mod:`mloop.registry.models`).

mloop creates a registered model with its first version, so ``registered-models/create``
only checks the name (and answers ``RESOURCE_ALREADY_EXISTS`` for a model that has
versions, which the mlflow client expects before it creates the next version). Moving or
removing an alias needs the ``approver`` role: aliases are what deployments follow.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.uris import check_name
from mloop.errors import InvalidInputError, ModelNotFoundError
from mloop.registry import models as registry
from mloop.repositories import backend
from mloop.server.mlflow import convert, filters, mlmodel, wire
from mloop.server.mlflow import models as logged
from mloop.server.mlflow.artifacts import split
from mloop.server.mlflow.routing import Args, Routes
from mloop.server.mlflow.tracking import API
from mloop.tracking import records

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.models import ModelVersion

_PROXY = "mlflow-artifacts:/"


def _model_id(project: Project, v: ModelVersion) -> str | None:
    """The mlflow logged model a version was registered from, if any."""
    if v.flavor != "mlflow" or v.run_id is None:
        return None
    try:
        manifest = json.loads(project.objects.get_bytes(v.manifest))
    except (ValueError, InvalidInputError):
        return None
    found = (manifest.get("metadata") or {}).get("mlflow_model_id")
    return str(found) if found else None


def download_uri(project: Project, v: ModelVersion) -> str:
    assert v.run_id is not None
    run = backend(project).runs.get(v.run_id)
    return f"{convert.artifact_root(run.experiment_id, run.id)}/{v.artifact_path}"


def version(project: Project, v: ModelVersion) -> dict[str, Any]:
    """A registered version as MLflow answers it (versions are strings)."""
    model_id = _model_id(project, v)
    return wire.clean({
        "name": v.name, "version": str(v.version), "creation_timestamp": v.created_at,
        "last_updated_timestamp": v.created_at, "user_id": v.user or "",
        "current_stage": "None", "description": v.description or "",
        "source": f"models:/{model_id}" if model_id else download_uri(project, v),
        "run_id": v.run_id or "", "status": "READY", "tags": wire.pairs(v.tags),
        "aliases": list(v.aliases), "model_id": model_id,
    })


def registered_model(project: Project, name: str) -> dict[str, Any]:
    versions = registry.list_versions(project, name)
    if not versions:
        raise ModelNotFoundError(f"Registered Model with name={name} not found")
    latest = versions[0]
    aliases = [{"alias": a, "version": str(v.version)} for v in versions for a in v.aliases]
    return wire.clean({
        "name": name, "creation_timestamp": versions[-1].created_at,
        "last_updated_timestamp": latest.created_at, "description": latest.description,
        "latest_versions": [version(project, latest)],
        "aliases": sorted(aliases, key=lambda a: a["alias"]),
    })


def _exists(project: Project, name: str) -> bool:
    try:
        return bool(registry.list_versions(project, name))
    except ModelNotFoundError:
        return False


def _number(args: Args) -> int:
    raw = wire.need(args, "version")
    if not raw.isascii() or not raw.isdigit():
        raise wire.invalid(f"Model version must be an integer, got {raw!r}.")
    return int(raw)


def _get(project: Project, args: Args) -> ModelVersion:
    return registry.get_version(project, f"{wire.need(args, 'name')}/{_number(args)}")


def _source(project: Project, source: str, model_id: str | None) -> tuple[str, str, str]:
    """(run id, folder, logged model id or "") of a ``model-versions/create`` source."""
    if model_id or source.startswith("models:/m-"):
        model_id = model_id or source[len("models:/"):]
        run, record = logged.find(project, model_id)
        return run.id, record["path"], model_id
    if source.startswith(_PROXY):
        run_id, rel = split(project, source[len(_PROXY):].lstrip("/"))
        return run_id, rel, ""
    if source.startswith("runs:/"):
        run_part, _, rel = source[len("runs:/"):].partition("/")
        return records.resolve_run_id(project, run_part), rel, ""
    raise wire.invalid(f"Unsupported model source {source!r}: register a logged model "
                       "(models:/<model_id>) or a run's folder (runs:/<run_id>/<path>).")


def _names(project: Project, found: list[filters.Clause]) -> list[str]:
    """Registered model names passing the ``name`` clauses."""
    names = sorted({v.name for v in registry.list_models(project)})
    return [n for n in names if filters.keep(found, {"name": n})]


def _clauses(text: str | None) -> list[filters.Clause]:
    return filters.clauses(text, ("name", "run_id"), filters.PROMPT)


def _page(items: list[Any], args: Args, default: int) -> tuple[list[Any], str | None]:
    limit = wire.integer(args, "max_results", default) or default
    token = wire.text(args, "page_token", required=False)
    offset = int(token) if token and token.isdigit() else 0
    page = items[offset:offset + limit]
    return page, str(offset + limit) if offset + limit < len(items) else None


def register(routes: Routes) -> None:
    """Add the registry routes."""
    project = routes.project
    base = f"{API}/registered-models"

    @routes.post(f"{base}/create")
    def create_model(args: Args) -> Args:
        name = check_name(wire.need(args, "name"), "model name")
        if _exists(project, name):
            raise wire.exists(f"Registered Model (name={name}) already exists.")
        now = now_ms()
        return {"registered_model": {"name": name, "creation_timestamp": now,
                                     "last_updated_timestamp": now}}

    @routes.get(f"{base}/get")
    def get_model(args: Args) -> Args:
        return {"registered_model": registered_model(project, wire.need(args, "name"))}

    @routes.get(f"{base}/search")
    def search_models(args: Args) -> Args:
        clauses = _clauses(wire.text(args, "filter", required=False))
        names, token = _page(_names(project, clauses), args, 100)
        return wire.clean({"registered_models": [registered_model(project, n) for n in names],
                           "next_page_token": token})

    def latest_versions(args: Args) -> Args:
        found = registry.list_versions(project, wire.need(args, "name"))
        return wire.clean({"model_versions": [version(project, v) for v in found[:1]]})

    routes.add("POST", f"{base}/get-latest-versions", "reader", latest_versions)
    routes.add("GET", f"{base}/get-latest-versions", "reader", latest_versions)

    @routes.post(f"{base}/alias", "approver")
    def set_alias(args: Args) -> Args:
        registry.set_alias(project, wire.need(args, "name"), wire.need(args, "alias"),
                           _number(args))
        return {}

    @routes.delete(f"{base}/alias", "approver")
    def delete_alias(args: Args) -> Args:
        registry.delete_alias(project, wire.need(args, "name"), wire.need(args, "alias"))
        return {}

    @routes.get(f"{base}/alias")
    def get_by_alias(args: Args) -> Args:
        found = registry.get_version(project,
                                     f"{wire.need(args, 'name')}@{wire.need(args, 'alias')}")
        return {"model_version": version(project, found)}

    versions = f"{API}/model-versions"

    @routes.post(f"{versions}/create")
    def create_version(args: Args) -> Args:
        name = check_name(wire.need(args, "name"), "model name")
        run_id, folder, model_id = _source(project, wire.need(args, "source"),
                                           wire.text(args, "model_id", required=False))
        mlmodel.write_manifest(project, run_id, folder, model_id)
        created = registry.register_model(
            project, f"runs:/{run_id}/{folder}", name,
            description=wire.text(args, "description", required=False))
        for key, value in wire.key_values(args, "tags").items():
            created = registry.set_tag(project, created.uri, key, value)
        return {"model_version": version(project, created)}

    @routes.get(f"{versions}/get")
    def get_version(args: Args) -> Args:
        return {"model_version": version(project, _get(project, args))}

    @routes.get(f"{versions}/search")
    def search_versions(args: Args) -> Args:
        clauses = _clauses(wire.text(args, "filter", required=False))
        found = [v for n in _names(project, clauses) for v in registry.list_versions(project, n)
                 if filters.keep(clauses, {"run_id": v.run_id or ""})]
        page, token = _page(found, args, 1000)
        return wire.clean({"model_versions": [version(project, v) for v in page],
                           "next_page_token": token})

    @routes.post(f"{versions}/set-tag")
    def set_version_tag(args: Args) -> Args:
        found = _get(project, args)
        registry.set_tag(project, found.uri, wire.need(args, "key"),
                         str(args.get("value", "")))
        return {}

    @routes.get(f"{versions}/get-download-uri")
    def get_download_uri(args: Args) -> Args:
        return {"artifact_uri": download_uri(project, _get(project, args))}

    @routes.delete(f"{versions}/delete")
    def delete_version(args: Args) -> Args:
        registry.delete_version(project, _get(project, args).uri)
        return {}
