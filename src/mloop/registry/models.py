"""Logging models with runs, the registry of named versions, and loading them back.

A logged model is a folder of run artifacts: the flavor's files, ``mloop-model.json``
(flavor, signature, input example, library versions, optional ONNX twin) and nothing
else. A registered version points at such a folder; its manifest digest pins the exact
bytes. Loading downloads every file verified against the object store, then hands it
to the flavor, and only after :mod:`mloop.registry.safety` agreed: a file whose format
runs code when read (a pickle) loads only when the caller opted in.
"""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from mloop import lineage
from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.paths import safe_relpath
from mloop.core.process import current_user
from mloop.core.text import MAX_VALUE, check_optional, check_text
from mloop.core.uris import ModelURI, RunURI, check_name, parse_uri
from mloop.errors import (
    ConflictError,
    InvalidInputError,
    InvalidURIError,
)
from mloop.project import Project
from mloop.registry import signature as sig
from mloop.registry.flavors import flavor_for
from mloop.registry.loading import (  # re-exported: loading needs no SQLAlchemy
    ENGINES,
    MANIFEST,
    LoadedModel,
    ModelNotFoundError,
    check_model,
    files_digest,
    load_model,
    manifest_digest,
    parse_model_ref,
    resolve,
)
from mloop.store.schema import (
    model_aliases,
    model_events,
    model_tags,
    model_versions,
    registered_models,
)
from mloop.tracking import artifacts as _artifacts
from mloop.tracking.records import resolve_run_id

__all__ = ["ENGINES", "LoadedModel", "check_model", "files_digest", "load_model"]  # and the rest

STATUSES = ("registered", "approved", "archived")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    run_id: str | None
    artifact_path: str
    flavor: str
    status: str
    manifest: str
    description: str | None
    user: str | None
    created_at: int
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def source(self) -> str:
        return f"runs:/{self.run_id}/{self.artifact_path}"

    def to_dict(self) -> dict[str, Any]:
        from mloop.core.clock import ms_to_datetime

        created = ms_to_datetime(self.created_at)
        return {"name": self.name, "version": self.version, "uri": self.uri,
                "source": self.source, "flavor": self.flavor, "status": self.status,
                "aliases": list(self.aliases), "tags": dict(self.tags),
                "description": self.description, "user": self.user,
                "created_at": created.isoformat(timespec="milliseconds") if created else None,
                "manifest": self.manifest}


@dataclass(frozen=True)
class ModelInfo:
    """What ``log_model`` returns."""

    run_id: str
    artifact_path: str
    flavor: str
    signature: sig.Signature | None
    onnx: bool
    onnx_note: str | None
    registered: ModelVersion | None

    @property
    def uri(self) -> str:
        return f"runs:/{self.run_id}/{self.artifact_path}"


@dataclass(frozen=True)
class ModelEvent:
    version: int | None
    action: str
    user: str | None
    message: str | None
    created_at: int


# -- logging --------------------------------------------------------------------------


def save_model(model: Any, folder: Path, *, input_example: Any = None, onnx: bool | None = None,
               metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``model`` and its manifest into ``folder``; returns the manifest.

    ``onnx``: ``None`` converts a scikit-learn model when skl2onnx is installed and the
    conversion reproduces it on the input example; ``True`` requires that; ``False``
    skips it.
    """
    flavor = flavor_for(model)
    folder.mkdir(parents=True, exist_ok=True)
    flavor_meta = flavor.save(model, folder)
    example = sig.as_table(input_example)
    signature = sig.infer(example)
    manifest: dict[str, Any] = {
        "format": 1, "flavor": flavor.name, "flavor_meta": flavor_meta,
        "signature": signature.to_dict() if signature else None,
        "python": platform.python_version(), "metadata": metadata or {},
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "onnx": None, "onnx_note": None,
    }
    classes = getattr(model, "classes_", None)  # a classifier's labels, for live metrics
    if classes is not None and np.ndim(classes) == 1:
        manifest["classes"] = np.asarray(classes).tolist()
    if example is not None:
        records = (example.head(20).to_dict(orient="split") if hasattr(example, "to_dict")
                   else {"data": np.asarray(example)[:20].tolist()})
        (folder / "input_example.json").write_text(json.dumps(records, default=str))
        manifest["input_example"] = "input_example.json"
    if flavor.name == "sklearn" and onnx is not False:
        from mloop.registry.onnx import convert

        data, note = (convert(model, example) if example is not None else
                      (None, "ONNX export needs an input example"))
        if data is not None:
            (folder / "model.onnx").write_bytes(data)
            manifest["onnx"] = "model.onnx"
        elif onnx:
            raise InvalidInputError(f"Cannot export this model to ONNX: {note}.")
        manifest["onnx_note"] = note
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
    return manifest


def log_model(project: Project, run_id: str, model: Any, name: str = "model", *,
              input_example: Any = None, registered_name: str | None = None,
              onnx: bool | None = None, metadata: dict[str, Any] | None = None,
              description: str | None = None) -> ModelInfo:
    """Save ``model`` as artifacts of a run under ``name/`` (and register it)."""
    path = safe_relpath(name)
    if registered_name is not None:
        check_name(registered_name, "model name")
    with tempfile.TemporaryDirectory(prefix="mloop-model-") as tmp:
        manifest = save_model(model, Path(tmp), input_example=input_example, onnx=onnx,
                              metadata=metadata)
        _artifacts.log_path(project, run_id, tmp, path, contents_only=True)
    registered = (register_model(project, f"runs:/{run_id}/{path}", registered_name,
                                 description=description)
                  if registered_name is not None else None)
    signature = sig.Signature.from_dict(manifest["signature"]) if manifest["signature"] else None
    return ModelInfo(run_id, path, manifest["flavor"], signature, manifest["onnx"] is not None,
                     manifest["onnx_note"], registered)


# -- the registry ---------------------------------------------------------------------


def _manifest_of(project: Project, run_id: str, path: str) -> tuple[str, dict[str, Any]]:
    digest = manifest_digest(project, run_id, path)
    return digest, json.loads(project.objects.get_bytes(digest))


def _event(conn: Any, model_id: str, version: int | None, action: str,
           message: str | None) -> None:
    conn.execute(model_events.insert().values(
        id=new_id(), model_id=model_id, version=version, action=action, user=current_user(),
        message=message, created_at=now_ms()))


def register_model(project: Project, source: str, name: str, *,
                   description: str | None = None) -> ModelVersion:
    """A new version of model ``name`` from a logged model (``runs:/<run>/<path>``)."""
    check_name(name, "model name")
    check_optional(description, "model description")
    parsed = parse_uri(source)
    if not isinstance(parsed, RunURI) or not parsed.path:
        raise InvalidURIError(f"{source!r}: register a logged model, e.g. runs:/<run_id>/model.")
    run_id = resolve_run_id(project, parsed.run_id)
    digest, manifest = _manifest_of(project, run_id, parsed.path)
    store = project.store
    for attempt in range(5):  # PostgreSQL: two registrations can race for a number
        try:
            with store.write() as conn:
                conn.execute(store.insert(registered_models).values(
                    id=new_id(), name=name, created_at=now_ms()).on_conflict_do_nothing())
                model_id = conn.execute(select(registered_models.c.id).where(
                    registered_models.c.name == name)).scalar_one()
                last = conn.execute(select(func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model_id)).scalar()
                version = (last or 0) + 1
                conn.execute(model_versions.insert().values(
                    model_id=model_id, version=version, run_id=run_id,
                    artifact_path=parsed.path, manifest=digest, flavor=manifest["flavor"],
                    status="registered", description=description, user=current_user(),
                    created_at=now_ms()))
                _event(conn, model_id, version, "registered", f"from {source}")
            break
        except IntegrityError:
            if attempt == 4:
                raise
    lineage.add_edge(project, f"runs:/{run_id}", f"models:/{name}/{version}", "produced")
    return get_version(project, f"{name}/{version}")


def _model_id(conn: Any, name: str) -> str:
    model_id = conn.execute(select(registered_models.c.id).where(
        registered_models.c.name == name)).scalar()
    if model_id is None:
        raise ModelNotFoundError(f"No registered model named {name!r}. See `mloop models "
                                 "list`, or register one with log_model(..., "
                                 "registered_name=...).")
    return str(model_id)


def _versions(conn: Any, model_id: str, name: str, where: Any = None) -> list[ModelVersion]:
    query = select(model_versions).where(model_versions.c.model_id == model_id)
    if where is not None:
        query = query.where(where)
    rows = conn.execute(query.order_by(model_versions.c.version.desc())).all()
    aliases: dict[int, list[str]] = {}
    for alias, version in conn.execute(select(model_aliases.c.alias, model_aliases.c.version)
                                       .where(model_aliases.c.model_id == model_id)
                                       .order_by(model_aliases.c.alias)):
        aliases.setdefault(version, []).append(alias)
    tags: dict[int, dict[str, str]] = {}
    for version, key, value in conn.execute(
            select(model_tags.c.version, model_tags.c.key, model_tags.c.value)
            .where(model_tags.c.model_id == model_id)):
        tags.setdefault(version, {})[key] = value
    return [ModelVersion(name, r.version, r.run_id, r.artifact_path, r.flavor, r.status,
                         r.manifest, r.description, r.user, r.created_at,
                         aliases.get(r.version, []), tags.get(r.version, {})) for r in rows]


def get_version(project: Project, ref: str) -> ModelVersion:
    """The version a ref names (a bare name: the latest version)."""
    parsed = parse_model_ref(ref)
    with project.store.read() as conn:
        if isinstance(parsed, ModelURI):
            name = parsed.name
            model_id = _model_id(conn, name)
            if parsed.alias is not None:
                version = conn.execute(select(model_aliases.c.version).where(
                    model_aliases.c.model_id == model_id,
                    model_aliases.c.alias == parsed.alias)).scalar()
                if version is None:
                    raise ModelNotFoundError(f"Model {name!r} has no alias {parsed.alias!r}. "
                                             f"Set one with `mloop models alias {name} "
                                             f"{parsed.alias} VERSION`.")
            else:
                version = parsed.version
            found = _versions(conn, model_id, name, model_versions.c.version == version)
        else:
            name = parsed[0]
            found = _versions(conn, _model_id(conn, name), name)[:1]
    if not found:
        raise ModelNotFoundError(f"Model {name!r} has no such version ({ref}). See "
                                 f"`mloop models versions {name}`.")
    return found[0]


def list_versions(project: Project, name: str) -> list[ModelVersion]:
    """Every version of a model, newest first."""
    with project.store.read() as conn:
        return _versions(conn, _model_id(conn, name), name)


def list_models(project: Project) -> list[ModelVersion]:
    """The latest version of every registered model."""
    with project.store.read() as conn:
        names = conn.execute(select(registered_models.c.id, registered_models.c.name)
                             .order_by(registered_models.c.name)).all()
        out = []
        for model_id, name in names:
            latest = _versions(conn, model_id, name)[:1]
            out.extend(latest)
    return out


def set_alias(project: Project, name: str, alias: str, version: int | str) -> ModelVersion:
    """Point ``alias`` (e.g. ``champion``) at a version, moving it if needed."""
    check_name(alias, "alias")
    if not alias.isidentifier():
        raise InvalidInputError(f"Alias {alias!r} must be an identifier (letters, digits, "
                                "underscores; not starting with a digit), e.g. 'champion'.")
    target = get_version(project, f"{name}/{int(version)}")
    store = project.store
    with store.write() as conn:
        model_id = _model_id(conn, name)
        stmt = store.insert(model_aliases).values(model_id=model_id, alias=alias,
                                                  version=target.version)
        conn.execute(stmt.on_conflict_do_update(index_elements=["model_id", "alias"],
                                                set_={"version": target.version}))
        _event(conn, model_id, target.version, "alias", f"{alias} -> {target.version}")
    return get_version(project, f"{name}@{alias}")


def transition(project: Project, ref: str, status: str, message: str | None = None
               ) -> ModelVersion:
    """Approve or archive a version; recorded with who, when and why."""
    if status not in STATUSES:
        raise InvalidInputError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
    check_optional(message, "message")
    target = get_version(project, ref)
    with project.store.write() as conn:
        model_id = _model_id(conn, target.name)
        conn.execute(update(model_versions).where(
            model_versions.c.model_id == model_id,
            model_versions.c.version == target.version).values(status=status))
        _event(conn, model_id, target.version, status, message)
    return get_version(project, target.uri)


def set_tag(project: Project, ref: str, key: str, value: str) -> ModelVersion:
    """Set tag ``key`` on a version (replacing its value)."""
    check_name(key, "tag key")
    value = check_text(str(value), f"value of tag {key!r}", MAX_VALUE)
    target = get_version(project, ref)
    store = project.store
    with store.write() as conn:
        model_id = _model_id(conn, target.name)
        stmt = store.insert(model_tags).values(model_id=model_id, version=target.version,
                                               key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=["model_id", "version", "key"],
                                                set_={"value": value}))
    return get_version(project, target.uri)


def delete_version(project: Project, ref: str, message: str | None = None) -> ModelVersion:
    """Remove a version from the registry (its run artifacts stay); refused while an
    alias points at it."""
    check_optional(message, "message")
    target = get_version(project, ref)
    if target.aliases:
        raise ConflictError(f"{target.uri} is aliased as {', '.join(target.aliases)}; move "
                            "the alias first (`mloop models alias`).")
    with project.store.write() as conn:
        model_id = _model_id(conn, target.name)
        conn.execute(delete(model_tags).where(model_tags.c.model_id == model_id,
                                              model_tags.c.version == target.version))
        conn.execute(delete(model_versions).where(model_versions.c.model_id == model_id,
                                                  model_versions.c.version == target.version))
        _event(conn, model_id, target.version, "deleted", message)
    return target


def events(project: Project, name: str) -> list[ModelEvent]:
    """The audit log of a model, oldest first."""
    with project.store.read() as conn:
        model_id = _model_id(conn, name)
        rows = conn.execute(select(model_events).where(model_events.c.model_id == model_id)
                            .order_by(model_events.c.created_at, model_events.c.id)).all()
    return [ModelEvent(r.version, r.action, r.user, r.message, r.created_at) for r in rows]


# -- loading --------------------------------------------------------------------------


_resolve = resolve


def resolve_source(project: Project, uri: str) -> tuple[str, str, str]:
    """(run id, artifact path, manifest digest) of a model URI."""
    return _resolve(project, uri)[:3]


def training_data(project: Project, uri: str) -> str | None:
    """The dataset version (``data:/…``) the run that produced a model read, or None."""
    run_id, _, _ = resolve_source(project, uri)
    upstream, _ = lineage.neighbours(project, f"runs:/{run_id}")
    inputs = [e.src for e in upstream if e.src.startswith("data:/")]
    return inputs[0] if inputs else None


