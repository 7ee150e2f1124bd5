"""Loading a logged or registered model, without SQLAlchemy on the embedded store.

What ``mloop.load_model`` needs (resolve the URI to a run's folder and manifest digest,
list and download the verified files) is read through :mod:`mloop.store.lite` (by
:func:`mloop.repositories.model_sources.source` and the tracking lookups): plain
``sqlite3`` on a SQLite project, the full Store on PostgreSQL. A fresh process that only
loads a model so never imports SQLAlchemy or the store's schema. Every safety check
stays: every byte is verified against its digest, the manifest must be one mloop
wrote, and :mod:`mloop.registry.safety` decides what may be read.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.hashing import hash_bytes, hash_file
from mloop.core.ids import short_id
from mloop.core.uris import RunURI, parse_uri
from mloop.errors import InvalidInputError, ModelNotFoundError, UnsafeModelError
from mloop.registry import signature as sig
from mloop.registry.flavors import Flavor, Serializer, get_flavor
from mloop.registry.safety import check_files
from mloop.repositories.model_sources import parse_model_ref
from mloop.repositories.model_sources import source as model_source
from mloop.tracking import lookup as _lookup

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["ENGINES", "MANIFEST", "LoadedModel", "ModelNotFoundError", "check_model",
           "files_digest", "load_model", "manifest_digest", "parse_model_ref", "resolve"]

MANIFEST = "mloop-model.json"


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


def manifest_digest(project: Project, run_id: str, path: str) -> str:
    """The digest of the manifest of the model a run logged at ``path``."""
    found = [a for a in _lookup.list_artifacts(project, run_id, f"{path}/{MANIFEST}")
             if a.path == f"{path}/{MANIFEST}"]
    if not found:
        raise ModelNotFoundError(f"Run {short_id(run_id)} has no model at {path!r} (no "
                                 f"{MANIFEST}). Log one with mloop.log_model(model, "
                                 f"name={path!r}).")
    return found[0].digest


def resolve(project: Project, uri: str) -> tuple[str, str, str, str]:
    """(run id, artifact path, manifest digest, the version's URI for messages) of
    ``runs:/<run>/<path>``, ``models:/NAME/N``, ``models:/NAME@ALIAS`` or a bare ref."""
    if uri.startswith("runs:/"):
        parsed = parse_uri(uri)
        assert isinstance(parsed, RunURI)
        run_id = _lookup.resolve_run_id(project, parsed.run_id)
        path = parsed.path or "model"
        return run_id, path, manifest_digest(project, run_id, path), f"runs:/{run_id}/{path}"
    found = model_source(project, uri)  # the repository's plain-SQL path, without the Backend
    return found.run_id, found.artifact_path, found.manifest, found.uri


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
    run_id, path, digest, source = resolve(project, uri)
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
    folder = _lookup.download(project, plan.run_id, plan.path, tmp)  # every byte verified
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

        data = _lookup.read_artifact(project, plan.run_id,
                                        f"{plan.path}/{plan.manifest['onnx']}")
        return LoadedModel(OnnxModel.from_bytes(data), plan.manifest, "onnx", uri)
    assert plan.flavor is not None
    with tempfile.TemporaryDirectory(prefix="mloop-load-") as tmp:
        folder = _fetch(project, plan, Path(tmp), pinned)
        model = plan.flavor.load(folder, plan.meta)
    return LoadedModel(model, plan.manifest, "native", uri)
