"""Between MLflow's ``MLmodel`` folders and mloop's ``mloop-model.json`` manifests.

* A model the mlflow client logs gets an mloop manifest beside its ``MLmodel`` (flavor
  ``mlflow``: a cloudpickle or pickle file), so mloop can register it and load it, only
  with ``allow_pickle``: :func:`write_manifest`.
* A model mloop logged (skops, ONNX, joblib) is shown to the mlflow client with a
  generated ``MLmodel`` naming its real serialization; its ``python_function`` entry (the
  loader :mod:`mloop.registry.mlflow_pyfunc`) is there only when loading it runs no
  pickled code: :func:`generated`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

from mloop.core.paths import safe_relpath
from mloop.core.yamlio import loads_yaml
from mloop.errors import InvalidInputError, UnsafePathError
from mloop.registry.flavors import get_flavor
from mloop.registry.loading import MANIFEST
from mloop.repositories.runs import ArtifactInfo
from mloop.tracking import artifacts as _artifacts

if TYPE_CHECKING:
    from mloop.project import Project

MLMODEL = "MLmodel"
LOADER = "mloop.registry.mlflow_pyfunc"


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _files(project: Project, run_id: str, folder: str) -> dict[str, ArtifactInfo]:
    return {a.path: a for a in _artifacts.list_artifacts(project, run_id, folder)}


def flavor_meta(mlmodel: dict[str, Any]) -> dict[str, Any]:
    """What mloop's ``mlflow`` flavor needs to load an ``MLmodel`` folder: the pickle file
    it reads and how (``pickle``: scikit-learn's estimator; ``mlflow``: mlflow's loader)."""
    flavors = mlmodel.get("flavors") or {}
    if not isinstance(flavors, dict):
        raise InvalidInputError("MLmodel has no table of flavors.")
    sk = flavors.get("sklearn")
    if isinstance(sk, dict) and sk.get("serialization_format") in ("cloudpickle", "pickle"):
        file, meta = sk.get("pickled_model"), {"serializer": sk["serialization_format"],
                                               "loader": "pickle"}
    else:
        py = flavors.get("python_function") or {}
        file = next((py.get(k) for k in ("python_model", "model_path", "data")
                     if isinstance(py, dict) and isinstance(py.get(k), str)), MLMODEL)
        meta = {"serializer": "cloudpickle", "loader": "mlflow"}
    try:
        meta["file"] = safe_relpath(str(file))
    except UnsafePathError:
        raise InvalidInputError(f"MLmodel names the file {file!r}, outside its folder.") from None
    return meta


def write_manifest(project: Project, run_id: str, folder: str, model_id: str) -> None:
    """Give an mlflow-logged model folder its mloop manifest (once)."""
    files = _files(project, run_id, folder)
    if _join(folder, MANIFEST) in files:
        return
    found = files.get(_join(folder, MLMODEL))
    if found is None:
        raise InvalidInputError(f"No {MLMODEL} under {folder!r}: the model's files were not "
                                "uploaded.")
    mlmodel = loads_yaml(project.objects.get_bytes(found.digest).decode("utf-8", "replace"),
                         name=MLMODEL) or {}
    if not isinstance(mlmodel, dict):
        raise InvalidInputError(f"{MLMODEL} under {folder!r} is not a YAML table.")
    manifest = {
        "format": 1, "flavor": "mlflow", "flavor_meta": flavor_meta(mlmodel),
        "signature": None, "python": _python_version(mlmodel),
        "metadata": {"mlflow_model_id": model_id,
                     "mlflow_flavors": sorted(mlmodel.get("flavors") or {})},
        "model_class": "mlflow model", "onnx": None,
        "onnx_note": "logged by the mlflow client",
    }
    _artifacts.log_bytes(project, run_id, json.dumps(manifest, indent=1).encode(),
                         _join(folder, MANIFEST))


def _python_version(mlmodel: dict[str, Any]) -> str | None:
    py = (mlmodel.get("flavors") or {}).get("python_function") or {}
    return str(py.get("python_version")) if isinstance(py, dict) and py.get("python_version") \
        else None


def generated(project: Project, run_id: str, folder: str) -> bytes | None:
    """The ``MLmodel`` shown for an mloop model folder (``None``: not one, or it has its
    own ``MLmodel``)."""
    files = _files(project, run_id, folder)
    manifest_file = files.get(_join(folder, MANIFEST))
    if manifest_file is None or _join(folder, MLMODEL) in files:
        return None
    manifest = json.loads(project.objects.get_bytes(manifest_file.digest))
    if not isinstance(manifest, dict) or manifest.get("flavor") == "mlflow":
        return None
    meta = dict(manifest.get("flavor_meta") or {})
    try:
        serializer = get_flavor(str(manifest.get("flavor"))).serializer(meta)
    except (InvalidInputError, KeyError, TypeError, ValueError):
        return None
    entry: dict[str, Any] = {
        "flavor": manifest.get("flavor"), "serialization": serializer.name,
        "files": list(serializer.files), "runs_code_when_loaded": serializer.runs_code,
        "manifest": MANIFEST, "note": serializer.describe(),
    }
    if manifest.get("onnx"):
        entry["onnx_twin"] = manifest["onnx"]
    flavors: dict[str, Any] = {"mloop": entry}
    if not serializer.runs_code:
        flavors["python_function"] = {"loader_module": LOADER,
                                      "python_version": manifest.get("python") or ""}
    body = {
        "artifact_path": folder.rsplit("/", 1)[-1] if folder else "",
        "flavors": flavors, "run_id": run_id, "model_uuid": manifest_file.digest[:32],
    }
    return yaml.safe_dump(body, sort_keys=False).encode()
