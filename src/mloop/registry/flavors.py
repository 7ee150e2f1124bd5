"""Flavors: how one kind of model is saved to a folder and loaded back.

Built-ins and plugins register the same way: a plugin package declares an entry point in
the ``mloop.flavors`` group (or calls :func:`register_flavor`). The first flavor whose
``handles`` accepts a model saves it. Loading runs only on files whose digests matched
the object store (see :mod:`mloop.registry.models`), so a pickle-based format loads
exactly the bytes that were logged.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mloop.errors import InvalidInputError


@runtime_checkable
class Flavor(Protocol):
    name: str

    def handles(self, model: Any) -> bool: ...

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        """Write the model's files into ``folder``; return what ``load`` needs."""
        ...

    def load(self, folder: Path, meta: dict[str, Any]) -> Any: ...


SAFE_PACKAGES = ("sklearn", "numpy", "scipy")


class SklearnFlavor:
    """scikit-learn estimators and pipelines: skops where it can, joblib otherwise.

    skops loads by rebuilding objects of known types, never by running pickled code. The
    types it does not vouch for by default are trusted at load time only when they come
    from scikit-learn, NumPy or SciPy themselves (a tree's node arrays, say), and only for
    hash-verified bytes; any other type must be named by the caller
    (``load_model(..., trusted=[...])``), so a tampered manifest cannot widen the trust.
    """

    name = "sklearn"

    def handles(self, model: Any) -> bool:
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        import sklearn

        try:
            import skops.io as sio

            sio.dump(model, folder / "model.skops")
            trusted = sio.get_untrusted_types(file=folder / "model.skops")
            return {"file": "model.skops", "serializer": "skops", "trusted": trusted,
                    "sklearn_version": sklearn.__version__}
        except Exception:  # a type skops cannot persist: fall back to joblib
            (folder / "model.skops").unlink(missing_ok=True)
        import joblib

        joblib.dump(model, folder / "model.joblib")
        return {"file": "model.joblib", "serializer": "joblib",
                "sklearn_version": sklearn.__version__}

    def load(self, folder: Path, meta: dict[str, Any]) -> Any:
        path = folder / meta["file"]
        if meta["serializer"] == "skops":
            import skops.io as sio

            untrusted = sio.get_untrusted_types(file=path)
            extra = set(meta.get("trust", ()))
            refused = [t for t in untrusted
                       if t.split(".")[0] not in SAFE_PACKAGES and t not in extra]
            if refused:
                raise InvalidInputError(
                    f"The model holds types that are not scikit-learn's, NumPy's or SciPy's: "
                    f"{', '.join(refused)}. Loading them can run their code; if you trust "
                    f"them, pass load_model(..., trusted={refused!r}).")
            return sio.load(path, trusted=untrusted)
        import joblib

        return joblib.load(path)


class OnnxFlavor:
    """An ``onnx.ModelProto``, run with onnxruntime (``pip install 'mloop[onnx]'``)."""

    name = "onnx"

    def handles(self, model: Any) -> bool:
        return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        (folder / "model.onnx").write_bytes(model.SerializeToString())
        return {"file": "model.onnx"}

    def load(self, folder: Path, meta: dict[str, Any]) -> Any:
        from mloop.registry.onnx import OnnxModel

        return OnnxModel.from_bytes((folder / meta["file"]).read_bytes())


class PythonFlavor:
    """Any object with a ``predict`` method, saved with joblib."""

    name = "python"

    def handles(self, model: Any) -> bool:
        return callable(getattr(model, "predict", None))

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        import joblib

        try:
            joblib.dump(model, folder / "model.joblib")
        except Exception as exc:
            raise InvalidInputError(f"Cannot save {type(model).__name__}: {exc}. A python "
                                    "model must be picklable.") from exc
        return {"file": "model.joblib"}

    def load(self, folder: Path, meta: dict[str, Any]) -> Any:
        import joblib

        return joblib.load(folder / meta["file"])


_FLAVORS: list[Flavor] = [OnnxFlavor(), SklearnFlavor(), PythonFlavor()]
_plugins_loaded = False


def register_flavor(flavor: Flavor, *, first: bool = True) -> None:
    """Add a flavor (before the built-ins unless ``first=False``); replaces one of its name."""
    if not isinstance(flavor, Flavor):
        raise InvalidInputError(f"{flavor!r} is not a flavor: it needs name, handles, save "
                                "and load.")
    _FLAVORS[:] = [f for f in _FLAVORS if f.name != flavor.name]
    _FLAVORS.insert(0 if first else len(_FLAVORS), flavor)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group="mloop.flavors"):
        register_flavor(ep.load()())


def flavors() -> list[Flavor]:
    _load_plugins()
    return list(_FLAVORS)


def flavor_for(model: Any) -> Flavor:
    for flavor in flavors():
        if flavor.handles(model):
            return flavor
    raise InvalidInputError(
        f"No flavor can save a {type(model).__module__}.{type(model).__name__}: it has no "
        "predict method. Wrap it in an object with predict(X), or register a flavor "
        "(mloop.registry.flavors.register_flavor).")


def get_flavor(name: str) -> Flavor:
    for flavor in flavors():
        if flavor.name == name:
            return flavor
    raise InvalidInputError(f"This model was saved with the {name!r} flavor, which is not "
                            "installed here. Install the package that provides it.")
