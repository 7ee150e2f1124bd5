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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mloop import lineage
from mloop.core.paths import safe_relpath
from mloop.core.text import MAX_VALUE, check_optional, check_text
from mloop.core.uris import RunURI, check_name, parse_uri
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
from mloop.repositories import backend
from mloop.repositories.models import (
    ModelEvent,
    Models,
    ModelStatus,
    ModelVersion,
)
from mloop.tracking import artifacts as _artifacts
from mloop.tracking.records import resolve_run_id

__all__ = ["ENGINES", "LoadedModel", "ModelEvent", "ModelNotFoundError", "ModelStatus",
           "ModelVersion", "check_model", "files_digest", "load_model", "parse_model_ref"]
# and the rest

STATUSES = tuple(ModelStatus)


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


def _models(project: Project) -> Models:
    return backend(project).models


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
    version = _models(project).register(
        name, run_id=run_id, artifact_path=parsed.path, manifest=digest,
        flavor=manifest["flavor"], description=description, message=f"from {source}")
    lineage.add_edge(project, f"runs:/{run_id}", version.uri, "produced")
    return version


def get_version(project: Project, ref: str) -> ModelVersion:
    """The version a ref names (a bare name: the latest version)."""
    return _models(project).get(ref)


def list_versions(project: Project, name: str) -> list[ModelVersion]:
    """Every version of a model, newest first."""
    return _models(project).versions(name)


def list_models(project: Project) -> list[ModelVersion]:
    """The latest version of every registered model."""
    return _models(project).latest()


def set_alias(project: Project, name: str, alias: str, version: int | str) -> ModelVersion:
    """Point ``alias`` (e.g. ``champion``) at a version, moving it if needed."""
    check_name(alias, "alias")
    if not alias.isidentifier():
        raise InvalidInputError(f"Alias {alias!r} must be an identifier (letters, digits, "
                                "underscores; not starting with a digit), e.g. 'champion'.")
    target = get_version(project, f"{name}/{int(version)}")
    return _models(project).set_alias(name, alias, target.version)


def delete_alias(project: Project, name: str, alias: str) -> None:
    """Remove ``alias`` from model ``name`` (the version it pointed at stays)."""
    check_name(alias, "alias")
    _models(project).delete_alias(name, alias)


def transition(project: Project, ref: str, status: str, message: str | None = None
               ) -> ModelVersion:
    """Approve or archive a version; recorded with who, when and why."""
    new = ModelStatus.parse(status)
    check_optional(message, "message")
    target = get_version(project, ref)
    return _models(project).set_status(target.name, target.version, new, message)


def set_tag(project: Project, ref: str, key: str, value: str) -> ModelVersion:
    """Set tag ``key`` on a version (replacing its value)."""
    check_name(key, "tag key")
    value = check_text(str(value), f"value of tag {key!r}", MAX_VALUE)
    target = get_version(project, ref)
    return _models(project).set_tag(target.name, target.version, key, value)


def delete_version(project: Project, ref: str, message: str | None = None) -> ModelVersion:
    """Remove a version from the registry (its run artifacts stay); refused while an
    alias points at it."""
    check_optional(message, "message")
    target = get_version(project, ref)
    if target.aliases:
        raise ConflictError(f"{target.uri} is aliased as {', '.join(target.aliases)}; move "
                            "the alias first (`mloop models alias`).")
    _models(project).delete(target.name, target.version, message)
    return target


def events(project: Project, name: str) -> list[ModelEvent]:
    """The audit log of a model, oldest first."""
    return _models(project).events(name)


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


