"""Where a registered version's files are: the model-loading path of the registry's tables.

``mloop.load_model`` in a fresh process needs only this: a ref resolved to the run, folder
and manifest digest of a version, in plain SQL text through :func:`mloop.store.lite.lite`
(stdlib ``sqlite3`` on the embedded store, the Store elsewhere). It is kept apart from
:mod:`mloop.repositories.models` (whose protocol serves it as ``Models.source``) so that
loading imports no SQLAlchemy and builds none of the registry's other records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from mloop.core.uris import ModelURI, check_name, parse_uri
from mloop.errors import ModelNotFoundError

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["ModelSource", "no_alias", "no_model", "no_version", "parse_model_ref", "source"]


class ModelSource(NamedTuple):
    """Where a version's files are, and its URI for messages (a named tuple: the loading
    path builds no dataclass)."""

    run_id: str
    artifact_path: str
    manifest: str
    uri: str


def parse_model_ref(ref: str) -> ModelURI | tuple[str, None]:
    """``models:/churn/1``, ``models:/churn@champion``, ``churn/1``, ``churn@x``, ``churn``."""
    if ref.startswith("models:/"):
        parsed = parse_uri(ref)
        assert isinstance(parsed, ModelURI)
        return parsed
    if "@" in ref or "/" in ref:
        parsed = parse_uri(f"models:/{ref}")
        assert isinstance(parsed, ModelURI)
        return parsed
    return check_name(ref, "model name"), None


def no_model(name: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"No registered model named {name!r}. See `mloop models list`, "
                              "or register one with log_model(..., registered_name=...).")


def no_alias(name: str, alias: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"Model {name!r} has no alias {alias!r}. Set one with "
                              f"`mloop models alias {name} {alias} VERSION`.")


def no_version(name: str, ref: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"Model {name!r} has no such version ({ref}). See "
                              f"`mloop models versions {name}`.")


def source(project: Project, ref: str) -> ModelSource:
    """Where the version ``ref`` names was logged (ModelNotFoundError: no such model,
    alias or version, or a version without a source run)."""
    from mloop.store.lite import lite

    if project.remote:
        from mloop.repositories import backend

        return backend(project).models.source(ref)
    parsed = parse_model_ref(ref)
    name = parsed.name if isinstance(parsed, ModelURI) else parsed[0]
    with lite(project).read() as q:
        ids = q.all("SELECT id FROM registered_models WHERE name = :name", {"name": name})
        if not ids:
            raise no_model(name)
        model_id = ids[0]["id"]
        version: Any = None
        if isinstance(parsed, ModelURI) and parsed.alias is not None:
            rows = q.all("SELECT version FROM model_aliases WHERE model_id = :m AND "
                         "alias = :alias", {"m": model_id, "alias": parsed.alias})
            if not rows:
                raise no_alias(name, parsed.alias)
            version = rows[0]["version"]
        elif isinstance(parsed, ModelURI):
            version = parsed.version
        cols = "SELECT version, run_id, artifact_path, manifest FROM model_versions"
        found = (q.all(f"{cols} WHERE model_id = :m AND version = :v",
                       {"m": model_id, "v": version}) if version is not None else
                 q.all(f"{cols} WHERE model_id = :m ORDER BY version DESC LIMIT 1",
                       {"m": model_id}))
    if not found:
        raise no_version(name, ref)
    row = found[0]
    uri = f"models:/{name}/{row['version']}"
    if row["run_id"] is None:
        raise ModelNotFoundError(f"{uri} has no source run.")
    return ModelSource(str(row["run_id"]), str(row["artifact_path"]), str(row["manifest"]), uri)
