"""Exporting a registered version: an ONNX file, or a pip-installable package.

The package is the *model as a dependency* style: an application pins
``churn-model==2.0.0`` like any library and calls ``churn_model.predict(rows)``; no
registry, network or mloop at run time. It carries the model files, their SHA-256
digests (checked before loading) and the signature's column order, and depends only on
what the flavor needs (scikit-learn and skops, onnxruntime, or joblib).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInputError, UnsafeModelError
from mloop.project import Project
from mloop.registry.models import MANIFEST, ModelVersion, get_version
from mloop.tracking import artifacts as _artifacts

FORMATS = ("onnx", "package")


def _download(project: Project, ref: str, dest: Path) -> tuple[ModelVersion, dict[str, Any], Path]:
    version = get_version(project, ref)
    if version.run_id is None:
        raise InvalidInputError(f"{version.uri} has no source run to export from.")
    folder = _artifacts.download(project, version.run_id, version.artifact_path, dest)
    manifest = json.loads((folder / MANIFEST).read_text())
    return version, manifest, folder


def export_onnx(project: Project, ref: str, out: str | Path) -> Path:
    """Write the version's ONNX form to ``out`` (a file, or a folder to put it in)."""
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="mloop-export-") as tmp:
        version, manifest, folder = _download(project, ref, Path(tmp))
        name = manifest.get("onnx") or (manifest["flavor_meta"].get("file")
                                        if manifest["flavor"] == "onnx" else None)
        if not name:
            why = manifest.get("onnx_note") or "it is not a scikit-learn or ONNX model"
            raise InvalidInputError(f"{version.uri} has no ONNX form: {why}.")
        target = out / f"{version.name}-v{version.version}.onnx" if out.is_dir() else out
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / str(name), target)
    return target


def package_name(model_name: str) -> str:
    """``churn`` → ``churn_model`` (a valid Python package name)."""
    base = re.sub(r"[^0-9a-zA-Z_]+", "_", model_name).strip("_").lower() or "model"
    return f"m_{base}_model" if base[0].isdigit() else f"{base}_model"


def _requirements(manifest: dict[str, Any]) -> list[str]:
    meta = manifest.get("flavor_meta") or {}
    flavor = manifest["flavor"]
    if flavor == "sklearn":
        sk = str(meta.get("sklearn_version", "1.4")).split(".")
        reqs = [f"scikit-learn>={sk[0]}.{sk[1]}", "numpy", "pandas"]
        reqs.append("skops>=0.10" if meta.get("serializer") == "skops" else "joblib")
        return reqs
    if flavor == "onnx":
        return ["onnxruntime>=1.17", "numpy", "pandas"]
    return ["joblib", "numpy", "pandas"]


_INIT = '''"""{name} v{version}, exported by mloop from {uri}.

    import {package}
    {package}.predict(rows)    # a DataFrame, a list of dicts, or a 2-D array

The model files are checked against their SHA-256 digests before the first load, and
loaded as mloop checked them when it exported the package (model/load.json): a skops
file only with the types mloop trusted then, a pickle only if the export allowed it.
"""

import hashlib
import json
from functools import lru_cache
from pathlib import Path

__version__ = "{pkg_version}"
MODEL_URI = "{uri}"
_HERE = Path(__file__).parent / "model"
MANIFEST = json.loads((_HERE / "mloop-model.json").read_text())
_LOAD = json.loads((_HERE / "load.json").read_text())


def _verify():
    digests = json.loads((_HERE / "digests.json").read_text())
    for name, digest in digests.items():
        if hashlib.sha256((_HERE / name).read_bytes()).hexdigest() != digest:
            raise RuntimeError(f"{{name}} does not match its digest; reinstall the package.")


@lru_cache(maxsize=1)
def load():
    """The model object (loaded once)."""
    _verify()
    path = _HERE / _LOAD["file"]
    if _LOAD["serializer"] == "skops":
        if path.read_bytes()[:4] != b"PK\\x03\\x04":
            raise RuntimeError(f"{{path.name}} is not a skops archive; reinstall the package.")
        import skops.io

        return skops.io.load(path, trusted=list(_LOAD["trusted"]))
    if _LOAD["serializer"] == "onnx":
        import numpy as np
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        dtype = np.float64 if "double" in session.get_inputs()[0].type else np.float32

        class _Onnx:
            def _run(self, x):
                x = np.asarray(x, dtype=dtype)
                return session.run(None, {{session.get_inputs()[0].name: x}})

            def predict(self, x):
                return self._run(x)[0]

            def predict_proba(self, x):
                return self._run(x)[1]

        return _Onnx()
    if not _LOAD["pickle"]:
        raise RuntimeError(f"{{path.name}} is a pickle and this package was not exported with "
                           "--allow-pickle; it will not be loaded.")
    import joblib

    return joblib.load(path)


def _rows(data):
    signature = MANIFEST.get("signature")
    if not signature or signature["kind"] != "table":
        return data
    import pandas as pd

    names = [c["name"] for c in signature["columns"]]
    frame = data if isinstance(data, pd.DataFrame) else (
        pd.DataFrame(data) if isinstance(data, (list, dict)) and data
        and isinstance(data[0] if isinstance(data, list) else data, dict)
        else pd.DataFrame(data, columns=names))
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"Input is missing column(s) {{missing}}.")
    return frame[names]


def predict(data):
    """Predictions for ``data``."""
    return load().predict(_rows(data))


def predict_proba(data):
    """Class probabilities for ``data`` (classifiers only)."""
    return load().predict_proba(_rows(data))
'''


def _load_plan(project: Project, version: ModelVersion, manifest: dict[str, Any],
               folder: Path, *, trusted: list[str] | None,
               allow_pickle: bool | None) -> dict[str, Any]:
    """How the package will load its model (``model/load.json``), after mloop's checks."""
    from mloop.registry.flavors import get_flavor
    from mloop.registry.safety import check_files, skops_trusted

    allow = bool(project.settings.allow_pickle if allow_pickle is None else allow_pickle)
    meta = manifest.get("flavor_meta") or {}
    try:
        serializer = get_flavor(manifest["flavor"]).serializer(meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsafeModelError(f"Refused to export {version.uri}: its manifest does not say "
                               f"which file holds the model ({exc}).") from None
    check_files(folder, serializer, allow_pickle=allow, source=version.uri)
    plan: dict[str, Any] = {"file": serializer.files[0], "serializer": serializer.name,
                            "pickle": serializer.runs_code, "trusted": []}
    if serializer.runs_code:
        plan["serializer"] = "pickle"
    elif serializer.name == "skops":
        plan["trusted"] = skops_trusted(folder / serializer.files[0], trusted or ())
    elif serializer.name != "onnx":
        raise InvalidInputError(f"{version.uri} is stored as {serializer.name}; an exported "
                                "package loads skops, ONNX and pickles only.")
    return plan


def export_package(project: Project, ref: str, out: str | Path, *,
                   trusted: list[str] | None = None,
                   allow_pickle: bool | None = None) -> Path:
    """Write a pip-installable package for the version into folder ``out``.

    The model is checked as :func:`~mloop.registry.models.load_model` checks it: a pickle
    (joblib) needs ``allow_pickle`` (default: the user's setting, off), a skops file
    types mloop trusts or ``trusted`` names; the package loads it exactly so."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InvalidInputError(f"{out} is not empty; choose a new folder for the package.")
    with tempfile.TemporaryDirectory(prefix="mloop-export-") as tmp:
        version, manifest, folder = _download(project, ref, Path(tmp))
        plan = _load_plan(project, version, manifest, folder, trusted=trusted,
                          allow_pickle=allow_pickle)
        package = package_name(version.name)
        pkg_version = f"{version.version}.0.0"
        staging = Path(tmp) / "pkg"
        model_dir = staging / "src" / package / "model"
        shutil.copytree(folder, model_dir)
        (model_dir / "load.json").write_text(json.dumps(plan, indent=1))
        digests = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
                   for f in sorted(model_dir.iterdir()) if f.is_file()}
        (model_dir / "digests.json").write_text(json.dumps(digests, indent=1))
        uri = version.uri
        (staging / "src" / package / "__init__.py").write_text(_INIT.format(
            name=version.name, version=version.version, uri=uri,
            package=package, pkg_version=pkg_version))
        deps = ",\n".join(f'    "{r}"' for r in _requirements(manifest))
        dist = package.replace("_", "-")
        (staging / "pyproject.toml").write_text(f'''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "{pkg_version}"
description = "{version.name} v{version.version}, exported by mloop from {uri}"
requires-python = ">=3.10"
dependencies = [
{deps},
]

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
{package} = ["model/*"]
''')
        (staging / "README.md").write_text(
            f"# {dist} {pkg_version}\n\n{version.name} v{version.version} "
            f"({uri}), exported by mloop.\n\n```bash\npip install ./{out.name}\n```\n\n"
            f"```python\nimport {package}\n{package}.predict(rows)\n```\n")
        out.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            shutil.move(str(item), out / item.name)
    return out
