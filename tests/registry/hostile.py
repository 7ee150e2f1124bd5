"""Hostile model files, planted in a store as an attacker with write access would.

Each one really does harm when loaded the naive way (a file appears, a folder goes), so a
test that asserts the harm did not happen is a real test: see ``test_harm_is_real``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import tempfile
import zipfile
from pathlib import Path

import mloop
from mloop.project import Project
from mloop.tracking import artifacts


class Touch:
    """Unpickling this runs ``touch PATH`` through the shell (``os.system``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.path))}",))


def evil_pickle(marker: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    return pickle.dumps(Touch(marker), protocol=protocol)


def evil_joblib(marker: Path, compress: int | str = 3) -> bytes:
    """The same payload as joblib writes it, compressed (zlib by default)."""
    import joblib

    buf = io.BytesIO()
    joblib.dump(Touch(marker), buf, compress=compress)
    return buf.getvalue()


def _str(text: str, ident: int) -> dict:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(text), "is_json": True, "__id__": ident}


def _skops(schema: dict) -> bytes:
    schema.update({"__id__": 1, "protocol": 2, "_skops_version": "0.16.0"})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buf.getvalue()


def skops_exec(marker: Path) -> bytes:
    """A skops file that calls NumPy's test helper ``runstring`` (``exec``) while loading:
    a NumPy name, so "trust whatever is NumPy's" would run it."""
    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    empty = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
             "content": {}, "key_types": {"__class__": "list", "__module__": "builtins",
                                          "__loader__": "ListNode", "content": [],
                                          "__id__": 5}, "__id__": 4}
    return _skops({"__class__": "runstring", "__module__": "numpy.testing._private.utils",
                   "__loader__": "ConstructorFromReduceNode",
                   "content": {"__class__": "tuple", "__module__": "builtins",
                               "__loader__": "TupleNode",
                               "content": [_str(code, 3), empty], "__id__": 2}})


def skops_rmtree(victim: Path) -> bytes:
    """A skops file holding a NumPy ``DataSource`` whose ``__del__`` removes ``victim``."""
    attrs = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
             "content": {"_istmpdest": {"__class__": "bool", "__module__": "builtins",
                                        "__loader__": "JsonNode", "content": "true",
                                        "is_json": True, "__id__": 7},
                         "_destpath": _str(str(victim), 8)},
             "key_types": {"__class__": "list", "__module__": "builtins",
                           "__loader__": "ListNode",
                           "content": [{"__class__": "str", "__module__": "builtins",
                                        "__loader__": "TypeNode", "__id__": 9}] * 2,
                           "__id__": 6}, "__id__": 5}
    return _skops({"__class__": "DataSource", "__module__": "numpy.lib._datasource",
                   "__loader__": "ObjectNode", "content": attrs})


def manifest(flavor: str, flavor_meta: dict) -> dict:
    return {"format": 1, "flavor": flavor, "flavor_meta": flavor_meta, "signature": None,
            "python": "3.11.0", "metadata": {}, "onnx": None, "onnx_note": None,
            "model_class": "sklearn.linear_model._logistic.LogisticRegression"}


def plant_run(project: Project, files: dict[str, bytes], meta: object) -> str:
    """Log ``files`` and ``meta`` as a run's model (``mloop-model.json``); its ``runs:/`` URI."""
    with mloop.start_run(project=project) as run:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "mloop-model.json").write_text(json.dumps(meta))
        for file, data in files.items():
            (folder / file).write_bytes(data)
        artifacts.log_path(project, run.id, folder, "model", contents_only=True)
    return f"runs:/{run.id}/model"


def plant(project: Project, name: str, files: dict[str, bytes], flavor_meta: dict,
          flavor: str = "sklearn") -> str:
    """Register ``files`` and a manifest as the next version of ``name``; its URI."""
    source = plant_run(project, files, manifest(flavor, flavor_meta))
    return mloop.register_model(source, name, project=project).uri
