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
from mloop.core.hashing import hash_bytes, hash_file
from mloop.core.ids import new_id, short_id
from mloop.core.paths import safe_relpath
from mloop.core.process import current_user
from mloop.core.text import MAX_VALUE, check_optional, check_text
from mloop.core.uris import ModelURI, RunURI, check_name, parse_uri
from mloop.errors import (
    ConflictError,
    InvalidInputError,
    InvalidURIError,
    NotFoundError,
    UnsafeModelError,
)
from mloop.project import Project
from mloop.registry import signature as sig
from mloop.registry.flavors import Flavor, Serializer, flavor_for, get_flavor
from mloop.registry.safety import check_files
from mloop.store.schema import (
    model_aliases,
    model_events,
    model_tags,
    model_versions,
    registered_models,
)
from mloop.tracking import artifacts as _artifacts
from mloop.tracking.records import resolve_run_id

MANIFEST = "mloop-model.json"
STATUSES = ("registered", "approved", "archived")


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


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
    found = [a for a in _artifacts.list_artifacts(project, run_id, f"{path}/{MANIFEST}")
             if a.path == f"{path}/{MANIFEST}"]
    if not found:
        raise ModelNotFoundError(f"Run {short_id(run_id)} has no model at {path!r} (no "
                                 f"{MANIFEST}). Log one with mloop.log_model(model, "
                                 f"name={path!r}).")
    digest = found[0].digest
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


class LoadedModel:
    """A model ready to predict: the signature is enforced on every call."""

    def __init__(self, model: Any, manifest: dict[str, Any], engine: str,
                 source: str) -> None:
        self.model = model
        self.manifest = manifest
        self.engine = engine
        self.source = source
        data = manifest.get("signature")
        self.signature: sig.Signature | None = sig.Signature.from_dict(data) if data else None

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.manifest.get("metadata") or {})

    @property
    def flavor(self) -> str:
        return str(self.manifest["flavor"])

    def __repr__(self) -> str:
        return f"LoadedModel({self.source!r}, flavor={self.flavor!r}, engine={self.engine!r})"

    def predict(self, data: Any) -> Any:
        return self.model.predict(sig.enforce(self.signature, data))

    def predict_both(self, data: Any) -> tuple[Any, Any]:
        """(predictions, probabilities or None), checking the input against the signature
        once for both."""
        rows = sig.enforce(self.signature, data)
        method = getattr(self.model, "predict_proba", None)
        return (np.asarray(self.model.predict(rows)),
                np.asarray(method(rows)) if method is not None else None)

    def predict_proba(self, data: Any) -> Any:
        method = getattr(self.model, "predict_proba", None)
        if method is None:
            raise InvalidInputError(f"{self.source} gives no probabilities (no predict_proba).")
        return method(sig.enforce(self.signature, data))


def _resolve(project: Project, uri: str) -> tuple[str, str, str, str]:
    """(run id, artifact path, manifest digest, the version's URI for messages)."""
    if uri.startswith("runs:/"):
        parsed = parse_uri(uri)
        assert isinstance(parsed, RunURI)
        run_id = resolve_run_id(project, parsed.run_id)
        path = parsed.path or "model"
        digest, _ = _manifest_of(project, run_id, path)
        return run_id, path, digest, f"runs:/{run_id}/{path}"
    version = get_version(project, uri)
    if version.run_id is None:
        raise ModelNotFoundError(f"{version.uri} has no source run.")
    return version.run_id, version.artifact_path, version.manifest, version.uri


def resolve_source(project: Project, uri: str) -> tuple[str, str, str]:
    """(run id, artifact path, manifest digest) of a model URI."""
    return _resolve(project, uri)[:3]


def training_data(project: Project, uri: str) -> str | None:
    """The dataset version (``data:/…``) the run that produced a model read, or None."""
    run_id, _, _ = resolve_source(project, uri)
    upstream, _ = lineage.neighbours(project, f"runs:/{run_id}")
    inputs = [e.src for e in upstream if e.src.startswith("data:/")]
    return inputs[0] if inputs else None


ENGINES = ("native", "onnx", "auto")


def files_digest(files: list[tuple[str, str]]) -> str:
    """One digest for a model's files: ``(path in the model folder, content digest)``."""
    return hash_bytes(json.dumps(sorted(files)).encode())


@dataclass(frozen=True)
class _Plan:
    """What loading a model will read, decided before any model file is opened."""

    source: str
    run_id: str
    path: str
    manifest: dict[str, Any]
    engine: str
    flavor: Flavor | None
    meta: dict[str, Any]
    serializer: Serializer | None
    allow_pickle: bool


def _onnxruntime_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except ValueError:  # present in sys.modules without a spec
        return False


def _plan(project: Project, uri: str, engine: str | None, trusted: list[str] | None,
          allow_pickle: bool | None) -> _Plan:
    engine = engine or project.settings.model_engine
    if engine not in ENGINES:
        raise InvalidInputError(f"Unknown engine {engine!r}; use native, onnx or auto.")
    run_id, path, digest, source = _resolve(project, uri)
    manifest = json.loads(project.objects.get_bytes(digest))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("flavor"), str) or \
            not isinstance(manifest.get("flavor_meta", {}), dict):
        raise UnsafeModelError(f"Refused to load {source}: its manifest ({MANIFEST}) is not "
                               "one mloop wrote (no flavor, or no table of its details).")
    if engine == "auto":  # the twin when there is one and it can run here
        engine = "onnx" if manifest.get("onnx") and _onnxruntime_installed() else "native"
    allow = bool(project.settings.allow_pickle if allow_pickle is None else allow_pickle)
    if engine == "onnx":
        if not manifest.get("onnx"):
            why = manifest.get("onnx_note") or "only scikit-learn models are converted"
            raise InvalidInputError(f"{uri} has no ONNX form: {why}.")
        return _Plan(source, run_id, path, manifest, engine, None, {}, None, allow)
    flavor = get_flavor(manifest["flavor"])
    meta = dict(manifest.get("flavor_meta") or {}, trust=list(trusted or ()))
    try:
        serializer = flavor.serializer(meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsafeModelError(f"Refused to load {source}: its manifest does not say which "
                               f"file holds the model ({exc}).") from None
    return _Plan(source, run_id, path, manifest, engine, flavor, meta, serializer, allow)


def _fetch(project: Project, plan: _Plan, tmp: Path, pinned: str | None) -> Path:
    """Download the model's verified files into ``tmp`` and refuse what may not load."""
    assert plan.serializer is not None
    folder = _artifacts.download(project, plan.run_id, plan.path, tmp)  # every byte verified
    allow = plan.allow_pickle
    if pinned is not None:  # the caller vouches for exactly these files (signed values)
        here = [(f.relative_to(folder).as_posix(), hash_file(f))
                for f in sorted(folder.rglob("*")) if f.is_file()]
        if files_digest(here) != pinned:
            raise UnsafeModelError(f"Refused to load {plan.source}: its files changed after "
                                   "they were stored as a pipeline value.")
        allow = True
    check_files(folder, plan.serializer, allow_pickle=allow, source=plan.source)
    return folder


def check_model(project: Project, uri: str, *, engine: str | None = None,
                trusted: list[str] | None = None, allow_pickle: bool | None = None) -> str:
    """Everything :func:`load_model` checks, without loading: raises what it would raise
    (not found, :class:`UnsafeModelError` …); returns how the model is stored, in words.
    Lets a command refuse a model before it announces anything."""
    plan = _plan(project, uri, engine, trusted, allow_pickle)
    if plan.serializer is None:
        return "onnx twin"
    with tempfile.TemporaryDirectory(prefix="mloop-check-") as tmp:
        _fetch(project, plan, Path(tmp), None)
    return plan.serializer.describe()


def load_model(project: Project, uri: str, *, engine: str | None = None,
               trusted: list[str] | None = None, allow_pickle: bool | None = None,
               pinned: str | None = None) -> LoadedModel:
    """Load a logged or registered model.

    ``engine``: ``native`` (the flavor's library), ``onnx`` (the verified ONNX twin,
    through onnxruntime; an error when there is none) or ``auto`` (the twin when there
    is one). Default: the project's ``models.engine`` setting (``native``).
    ``trusted``: types beyond scikit-learn's that a skops file may rebuild (e.g. your own
    transformer classes). ``allow_pickle``: load files that run code when read (joblib
    and other pickles); default: the user's ``allow_pickle`` setting (off), else they
    are refused with :class:`UnsafeModelError` (see :mod:`mloop.registry.safety`).
    ``pinned``: the :func:`files_digest` of the files the caller vouches for (a signed
    pipeline value); they load, pickles included, only if they are still those files.
    """
    plan = _plan(project, uri, engine, trusted, allow_pickle)
    if plan.serializer is None:
        from mloop.registry.onnx import OnnxModel

        data = _artifacts.read_artifact(project, plan.run_id,
                                        f"{plan.path}/{plan.manifest['onnx']}")
        return LoadedModel(OnnxModel.from_bytes(data), plan.manifest, "onnx", uri)
    assert plan.flavor is not None
    with tempfile.TemporaryDirectory(prefix="mloop-load-") as tmp:
        folder = _fetch(project, plan, Path(tmp), pinned)
        model = plan.flavor.load(folder, plan.meta)
    return LoadedModel(model, plan.manifest, "native", uri)
