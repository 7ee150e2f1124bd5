"""Flavors: how one kind of model is saved to a folder and loaded back.

Built-ins and plugins register the same way: a plugin package declares an entry point in
the ``mloop.flavors`` group (or calls :func:`register_flavor`). The first flavor whose
``handles`` accepts a model saves it.

The contract has four parts: ``handles``, ``save``, ``load`` and ``serializer``. The last
one says, for a saved model's metadata, which files ``load`` reads and whether reading
them can run code (a pickle: joblib, pickle, cloudpickle). :mod:`mloop.registry.models`
asks it before every load and refuses a file that runs code unless the caller opted in
(``allow_pickle``), and a file whose bytes are not the safe format it claims to be; a
plugin says it too, or it is not registered.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mloop.core.redact import get_logger
from mloop.errors import InvalidInputError

ZIP_MAGIC = b"PK\x03\x04"
log = get_logger(__name__)


@dataclass(frozen=True)
class Serializer:
    """How a saved model's files were written, and whether reading them runs code.

    ``files``: the files ``load`` reads (relative to the model folder). ``runs_code``:
    True for every pickle-based format, whose loading can call any function the file
    names. ``magic``: byte prefixes one of which every file must start with (a safe
    format's signature, e.g. a zip archive for skops), so a pickle cannot pass as it.
    """

    name: str
    runs_code: bool
    files: tuple[str, ...]
    magic: tuple[bytes, ...] = ()
    note: str = ""

    def describe(self) -> str:
        """``joblib (pickle: runs code when loaded; needs --allow-pickle)`` and the like."""
        if self.runs_code:
            return f"{self.name} (pickle: runs code when loaded; needs --allow-pickle)"
        return f"{self.name} ({self.note})" if self.note else self.name


def pickle_serializer(name: str, file: str) -> Serializer:
    """A pickle-based format (joblib, pickle, cloudpickle) reading ``file``."""
    return Serializer(name, True, (file,))


@runtime_checkable
class Flavor(Protocol):
    name: str

    def handles(self, model: Any) -> bool: ...

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        """Write the model's files into ``folder``; return what ``load`` needs."""
        ...

    def load(self, folder: Path, meta: dict[str, Any]) -> Any: ...

    def serializer(self, meta: dict[str, Any]) -> Serializer:
        """What ``load`` will read for ``meta`` and whether that can run code; decided
        from ``meta`` alone, without opening any file."""
        ...


class SklearnFlavor:
    """scikit-learn estimators and pipelines: skops where it can, joblib otherwise.

    skops loads by rebuilding objects of known types, never by running pickled code. The
    types it does not vouch for by default are trusted only as
    :func:`mloop.registry.safety.skops_trusted` allows (scikit-learn's own classes and a
    short list of NumPy/SciPy containers and functions scikit-learn models hold); any
    other must be named by the caller (``load_model(..., trusted=[...])``), so nothing
    stored with the model can widen the trust. joblib (for the few estimators skops
    cannot write, e.g. ``Birch``) is a pickle: it loads only with ``allow_pickle``.
    """

    name = "sklearn"

    def handles(self, model: Any) -> bool:
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        import sklearn

        try:
            import skops.io as sio

            from mloop.registry.skops_reader import types_in

            sio.dump(model, folder / "model.skops")
            trusted = sio.get_untrusted_types(file=folder / "model.skops")
            # the names the file holds: loading imports only their modules (skops_reader)
            return {"file": "model.skops", "serializer": "skops", "trusted": trusted,
                    "types": types_in(folder / "model.skops"),
                    "sklearn_version": sklearn.__version__}
        except Exception as exc:  # a type skops cannot persist: fall back to joblib
            (folder / "model.skops").unlink(missing_ok=True)
            log.warning("skops cannot save this %s (%s); it is saved with joblib, a pickle, "
                        "and loading it will need allow_pickle=True (--allow-pickle).",
                        type(model).__name__, exc)
        import joblib

        joblib.dump(model, folder / "model.joblib")
        return {"file": "model.joblib", "serializer": "joblib",
                "sklearn_version": sklearn.__version__}

    def load(self, folder: Path, meta: dict[str, Any]) -> Any:
        path = folder / meta["file"]
        if meta.get("serializer") == "skops":
            from mloop.registry import skops_reader

            try:  # without importing skops.io (1.7 s): only the model's own modules
                return skops_reader.load(path, meta.get("trust", ()),
                                         skops_reader.listed_types(meta))
            except skops_reader.Unsupported as exc:
                log.debug("%s is loaded by skops.io: %s", path.name, exc)
            import skops.io as sio

            from mloop.registry.safety import skops_trusted

            return sio.load(path, trusted=skops_trusted(path, meta.get("trust", ())))
        import joblib

        return joblib.load(path)

    def serializer(self, meta: dict[str, Any]) -> Serializer:
        if meta.get("serializer") == "skops":
            return Serializer("skops", False, (str(meta["file"]),), (ZIP_MAGIC,),
                              "rebuilds known types; runs no pickled code")
        # anything else is read by joblib.load, whatever the manifest calls it
        named = str(meta.get("serializer") or "joblib")[:40]  # the manifest's word, shown
        return pickle_serializer(named, str(meta["file"]))


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

    def serializer(self, meta: dict[str, Any]) -> Serializer:
        return Serializer("onnx", False, (str(meta["file"]),),
                          note="a graph run by onnxruntime; runs no Python code")


class PythonFlavor:
    """Any object with a ``predict`` method, saved with joblib (a pickle: loading it
    needs ``allow_pickle``)."""

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

    def serializer(self, meta: dict[str, Any]) -> Serializer:
        return pickle_serializer("joblib", str(meta["file"]))


class MlflowFlavor:
    """A model the mlflow client logged through ``mloop server`` (an ``MLmodel`` folder).

    Its files are cloudpickle or pickle files (scikit-learn's ``model.pkl``, a python
    model's ``python_model.pkl``), so loading one always needs ``allow_pickle``. mloop
    never saves a model in this flavor: the server records it when the mlflow client
    registers or finalizes a logged model (:mod:`mloop.server.mlflow.models`).
    """

    name = "mlflow"

    def handles(self, model: Any) -> bool:
        return False

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        raise InvalidInputError("mloop does not write mlflow models; log it with "
                                "mloop.log_model, or with the mlflow client.")

    def load(self, folder: Path, meta: dict[str, Any]) -> Any:
        if meta.get("loader") == "pickle":  # an sklearn flavor: the estimator itself
            import pickle

            with open(folder / str(meta["file"]), "rb") as f:
                return pickle.load(f)  # the caller allowed pickles (safety.check_files)
        try:
            import mlflow.pyfunc
        except ImportError:
            raise InvalidInputError("This mlflow model loads only through mlflow: pip "
                                    "install mlflow-skinny.") from None
        return mlflow.pyfunc.load_model(str(folder))

    def serializer(self, meta: dict[str, Any]) -> Serializer:
        named = str(meta.get("serializer") or "cloudpickle")[:40]
        return pickle_serializer(named, str(meta["file"]))


_FLAVORS: list[Flavor] = [OnnxFlavor(), SklearnFlavor(), PythonFlavor(), MlflowFlavor()]
_plugins_loaded = False


def register_flavor(flavor: Flavor, *, first: bool = True) -> None:
    """Add a flavor (before the built-ins unless ``first=False``); replaces one of its name."""
    if not isinstance(flavor, Flavor):
        raise InvalidInputError(f"{flavor!r} is not a flavor: it needs name, handles, save, "
                                "load and serializer (which files load reads and whether "
                                "reading them runs code; see mloop.registry.flavors).")
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
