"""What a model file may do when it is loaded, decided before it is opened for real.

Threat model: a model's files come from a store others can write to (a shared object
store or registry, a cloned project, a remote). Hash checks prove the bytes are the ones
logged, not that whoever logged them meant well. So:

* A file whose format runs code when read (a pickle: joblib, pickle, cloudpickle, and
  whatever a plugin flavor declares so) is refused with :class:`UnsafeModelError` unless
  the caller opted in: ``load_model(..., allow_pickle=True)``, ``--allow-pickle``,
  ``MLOOP_ALLOW_PICKLE=1`` or ``[models] allow_pickle = true`` in the *user's* config
  (never the project's, which every clone shares).
* The decision reads the manifest *and* the file: a file that claims a safe format must
  start with that format's signature (a skops file is a zip archive), so a pickle
  renamed ``model.skops`` is refused, opt-in or not (the manifest or the file was
  changed after it was logged).
* A skops file may name any importable type or function, and skops calls some of them
  while loading (``ConstructorFromReduceNode`` calls the named object with arguments
  from the file). Beyond skops's own defaults, :func:`skops_trusted` trusts only what
  scikit-learn models need: scikit-learn's own classes rebuilt as objects, and a short
  list of NumPy/SciPy containers and functions; anything else must be named by the
  caller (``trusted=[...]``).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.paths import safe_join
from mloop.errors import UnsafeModelError, UnsafePathError
from mloop.registry.flavors import Serializer

if TYPE_CHECKING:
    from mloop.project import Project

ZIP = "a zip archive"
_COMPRESSED = (  # the streams joblib writes a compressed pickle as
    (b"\x1f\x8b", "a gzip stream"), (b"BZh", "a bz2 stream"), (b"\xfd7zXZ\x00", "an xz stream"),
    (b"\x5d\x00\x00", "an lzma stream"), (b"\x04\x22\x4d\x18", "an lz4 stream"),
    (b"ZF", "a joblib zfile stream"),
)


def sniff(head: bytes) -> str | None:
    """What the first bytes of a file show it to be, when they show it (else None).

    Pickles of protocol 2 and later start with ``\\x80`` and the protocol number; older
    ones are plain text and cannot be told apart, which is why safe formats are checked
    by their own signature rather than by the absence of a pickle's."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a pickle (protocol {head[1]})"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ZIP
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "a zlib stream (joblib compresses pickles so)"
    for magic, what in _COMPRESSED:
        if head.startswith(magic):
            return f"{what} (joblib compresses pickles so)"
    return None


def opt_ins() -> str:
    """The ways to allow pickles, for messages (all of them, each a user's own choice)."""
    from mloop.core.settings import user_config_path

    return ("mloop.load_model(uri, allow_pickle=True) in Python; --allow-pickle on `mloop "
            "serve`, `mloop worker`, `mloop batch predict` and `mloop models export`; "
            "MLOOP_ALLOW_PICKLE=1; or "
            f"`[models] allow_pickle = true` in your own {user_config_path()} (a project's "
            ".mloop/config.toml cannot set it)")


def check_files(folder: Path, serializer: Serializer, *, allow_pickle: bool,
                source: str) -> None:
    """Refuse to load ``source`` (a model URI, for the message) from ``folder`` when a
    file ``serializer`` reads would run code unasked, or is not the safe format it claims.
    """
    for name in serializer.files:
        try:
            path = safe_join(folder, name)
        except UnsafePathError:
            raise UnsafeModelError(f"Refused to load {source}: its manifest names the file "
                                   f"{name!r}, outside the model's folder.") from None
        if not path.is_file():
            raise UnsafeModelError(f"Refused to load {source}: its manifest names the file "
                                   f"{name!r}, which the model does not have.")
        with open(path, "rb") as f:
            head = f.read(16)
        if serializer.runs_code:
            if not allow_pickle:
                raise UnsafeModelError(
                    f"Refused to load {source}: its file {name} is {serializer.name}, a "
                    "pickle, which runs code when it is loaded: whoever could write that "
                    "file could run commands as you. If you trust where it came from, allow "
                    f"pickles: {opt_ins()}.")
            continue
        wrong = _mismatch(serializer, head)
        if wrong:
            raise UnsafeModelError(
                f"Refused to load {source}: its manifest says {name} is {serializer.name}, "
                f"but the file is {wrong}. The manifest or the file was changed after the "
                "model was logged; log the model again from its source.")


def _mismatch(serializer: Serializer, head: bytes) -> str | None:
    """What a file that claims a safe format really is, when it is not that format."""
    seen = sniff(head)
    if serializer.magic:
        return None if head.startswith(serializer.magic) else seen or "not in that format"
    return seen if seen is not None and seen != ZIP else None  # a pickle, or packed as one


@dataclass(frozen=True)
class Storage:
    """How a model version's files are stored, for ``mloop models show`` and cards."""

    serializer: str
    runs_code: bool
    refused: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def storage(project: Project, run_id: str, path: str, manifest: dict[str, Any]) -> Storage:
    """How the model at ``runs:/<run_id>/<path>`` is stored, said honestly: from the
    manifest and, for a format that claims to run no code, from the file's own bytes."""
    from mloop.errors import MloopError
    from mloop.registry.flavors import get_flavor
    from mloop.tracking.artifacts import read_artifact

    if not isinstance(manifest, dict) or not isinstance(manifest.get("flavor"), str):
        return Storage("unknown", True, True, "unknown (the manifest names no flavor)")
    try:
        serializer = get_flavor(manifest["flavor"]).serializer(manifest.get("flavor_meta") or {})
    except MloopError:
        return Storage("unknown", True, True, f"unknown (the {manifest['flavor']!r} flavor "
                       "is not installed here)")
    except (KeyError, TypeError, ValueError):
        return Storage("unknown", True, True, "unknown (the manifest names no model file)")
    if serializer.runs_code:
        return Storage(serializer.name, True, False, serializer.describe())
    for name in serializer.files:
        try:
            head = read_artifact(project, run_id, f"{path}/{name}")[:16]
        except MloopError as exc:
            return Storage(serializer.name, False, True,
                           f"{serializer.name} claimed, but {name} cannot be read: {exc}")
        wrong = _mismatch(serializer, head)
        if wrong:
            return Storage(serializer.name, True, True, f"{serializer.name} claimed, but "
                           f"{name} is {wrong}: refused when loaded")
    return Storage(serializer.name, False, False, serializer.describe())


# -- skops ----------------------------------------------------------------------------

# skops loaders under which a scikit-learn *class* may be named: they build it from state
# (``cls.__new__``), fill an empty one (``cls()``, ``cls(items)``) or just refer to it. Not
# ConstructorFromReduceNode, which calls the name with any arguments the file holds.
_SKLEARN_LOADERS = frozenset({"ObjectNode", "TreeNode", "LossNode", "TypeNode", "DictNode",
                              "DefaultDictNode", "ListNode", "SetNode", "TupleNode"})
# functions a model may refer to (a scorer's metric), besides the list below
_FUNCTION_MODULES = ("sklearn.metrics.",)
# scikit-learn modules whose classes a model never holds: test helpers, vendored code.
_NOT_MODEL_CODE = frozenset({"tests", "_testing", "conftest", "externals", "__main__"})
# NumPy and SciPy names scikit-learn models hold, by loader; anything else of theirs
# (numpy.testing's exec helper, a class whose __del__ removes a folder) is not trusted.
_ALLOWED: dict[str, frozenset[str]] = {
    "DTypeNode": frozenset({"numpy.dtype"}),
    "ObjectNode": frozenset({"scipy.interpolate._bsplines.BSpline"}),
    "FunctionNode": frozenset({
        # defaults of scikit-learn estimators (pooling, score functions, k-means loops)
        "numpy.mean", "numpy.median", "numpy.max", "numpy.min", "numpy.sum",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._univariate_selection.r_regression",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
        "sklearn.cluster._kmeans._kmeans_single_lloyd",
        "sklearn.cluster._kmeans._kmeans_single_elkan",
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
        "sklearn.externals.array_api_compat.numpy._aliases.asarray",
    }),
}


def _loaders(path: Path) -> dict[str, set[str]]:
    """Every type or function name in a skops file, with the loaders that use it."""
    from mloop.registry.skops_reader import types_of

    with zipfile.ZipFile(path) as archive:
        return types_of(json.loads(archive.read("schema.json")))


def _is_sklearn_class(name: str) -> bool:
    import importlib

    module, _, attr = name.rpartition(".")
    parts = module.split(".")
    if parts[0] != "sklearn" or _NOT_MODEL_CODE.intersection(parts):
        return False
    try:
        return isinstance(getattr(importlib.import_module(module), attr, None), type)
    except ImportError:
        return False


def _implicit(name: str, loaders: set[str]) -> bool:
    """Whether ``name`` may be rebuilt without the caller naming it."""
    if not loaders:
        return False  # a name skops reports that the schema does not show: ask
    for loader in loaders:
        if loader == "SparseMatrixNode" and name.startswith("scipy.sparse."):
            continue  # read with load_npz (no pickles), whatever the name says
        if name in _ALLOWED.get(loader, frozenset()):
            continue
        if loader == "FunctionNode" and name.startswith(_FUNCTION_MODULES) and \
                not _NOT_MODEL_CODE.intersection(name.split(".")):
            continue
        if loader in _SKLEARN_LOADERS and _is_sklearn_class(name):
            continue
        return False
    return True


def skops_trusted(path: Path, extra: Iterable[str] = ()) -> list[str]:
    """The types to pass to ``skops.io.load`` for ``path``; :class:`UnsafeModelError`
    naming the others when the file holds any that neither the policy above nor the
    caller (``extra``, from ``load_model(..., trusted=[...])``) trusts."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
        loaders = _loaders(path)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise UnsafeModelError(f"{path.name} is not a readable skops file ({exc}); log the "
                               "model again.") from exc
    wanted = set(extra)
    refused = [t for t in untrusted if t not in wanted and not _implicit(t, loaders.get(t,
                                                                                   set()))]
    if refused:
        raise UnsafeModelError(
            f"The model names types or functions that mloop does not trust by itself: "
            f"{', '.join(refused)}. skops builds or calls them while loading, so they could "
            "run code; mloop trusts scikit-learn's own classes and a few NumPy/SciPy "
            "containers. If these are yours (or you trust them), pass "
            f"load_model(..., trusted={refused!r}).")
    return list(untrusted)
