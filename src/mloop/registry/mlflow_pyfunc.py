"""The ``python_function`` loader that lets ``mlflow.pyfunc.load_model`` read a model
mloop logged (skops, ONNX) when it is downloaded through ``mloop server``.

The ``MLmodel`` the server generates for such a model names this module as its
``loader_module`` only when the model's serialization runs no code (skops, ONNX): this
loader applies mloop's own checks (:func:`mloop.registry.safety.check_files`, with
pickles refused) before the flavor reads a byte, so it never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mloop.errors import UnsafeModelError
from mloop.registry.flavors import get_flavor
from mloop.registry.loading import MANIFEST, LoadedModel
from mloop.registry.safety import check_files


class _PyfuncModel:
    """What mlflow's ``PyFuncModel`` wraps: ``predict(data, params=None)``."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.model.predict(data)


def _load_pyfunc(path: str) -> _PyfuncModel:
    """Load the mloop model in the folder ``path`` (mlflow's loader-module contract)."""
    folder = Path(path)
    manifest = json.loads((folder / MANIFEST).read_text())
    if not isinstance(manifest, dict) or not isinstance(manifest.get("flavor"), str):
        raise UnsafeModelError(f"Refused to load {path}: {MANIFEST} is not one mloop wrote.")
    flavor = get_flavor(manifest["flavor"])
    meta = dict(manifest.get("flavor_meta") or {}, trust=[])
    serializer = flavor.serializer(meta)
    check_files(folder, serializer, allow_pickle=False, source=str(path))
    return _PyfuncModel(LoadedModel(flavor.load(folder, meta), manifest, "native", str(path)))
