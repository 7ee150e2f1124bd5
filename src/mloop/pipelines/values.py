"""What flows between steps, stored by content so that a cached step can be restored.

Every output goes to the object store, named by its digest (which later steps' cache
keys use): DataFrames as Parquet, NumPy arrays as ``.npy``, JSON-able values and reports
as JSON, models through the registry's flavors (logged with the step's run, so they can
be registered and served), anything else pickled. A value is read back only from a blob
whose hash matches its name (the object store verifies every read).

Pickles run code when read, and the store may be shared, so mloop signs the pickles and
models it stores with the user's key (:mod:`mloop.core.signing`, HMAC-SHA256 over the
content digest) and reads back without asking only what that key signed. A value that
is unsigned, signed by another key or changed since is refused with
:class:`~mloop.errors.UnsafeValueError` unless the user allows pickles, and a cached
step whose values cannot be read so simply runs again.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mloop.core import signing
from mloop.errors import MloopError, UnsafeValueError
from mloop.pipelines.step import Dataset, Model, Report

if TYPE_CHECKING:
    from mloop.project import Project


@dataclass(frozen=True)
class ValueRef:
    """A stored value: its kind, its digest and, for models, the run artifact it is."""

    kind: str  # frame | array | json | report | model | pickle | dataset | files
    digest: str
    uri: str | None = None  # models: runs:/<run>/<name>; datasets: data:/<name>@<v>
    summary: str | None = None  # a few words for `mloop pipeline show`
    sig: str | None = None  # pickles and models: the user's HMAC of the digest

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValueRef:
        return cls(data["kind"], data["digest"], data.get("uri"), data.get("summary"),
                   data.get("sig"))

    @property
    def blob(self) -> str | None:
        """The blob ``digest`` names, the one the walk of gc and fsck must keep; None for a
        model, whose digest fingerprints its files (``files_digest``): those are its run's
        artifacts at ``uri``, each a blob their own rows name."""
        return None if self.kind == "model" else self.digest

    @property
    def signed(self) -> bool:
        """Whether this user's key signed the value (only pickles and models are signed)."""
        return self.kind in SIGNED and signing.verify(self.kind, self.digest, self.sig)


SIGNED = ("pickle", "model")  # the kinds whose reading can run code


def _is_model(value: Any, annotation: Any) -> bool:
    if annotation is Model:
        return True
    return hasattr(value, "fit") and hasattr(value, "predict")


def store(project: Project, name: str, value: Any, annotation: Any,
          run_id: str | None, *, inputs: Mapping[str, Any] | None = None) -> ValueRef:
    """Put ``value`` (the output ``name`` of a step) in the object store; ``inputs`` (the
    step's input values) give a model its input signature (:func:`input_example`)."""
    import numpy as np

    objects = project.objects
    if isinstance(value, Dataset):
        return ValueRef("dataset", value.digest, value.uri, value.uri)
    if _is_model(value, annotation) and run_id is not None:
        from mloop.registry.loading import files_digest, manifest_digest
        from mloop.registry.models import log_model
        from mloop.tracking.artifacts import list_artifacts

        log_model(project, run_id, value, name, input_example=input_example(value, inputs))
        # the model is complete and readable
        json.loads(objects.get_bytes(manifest_digest(project, run_id, name)))
        # the content of every file of the model (the manifest alone names, not hashes, it)
        digest = files_digest([(a.path.removeprefix(f"{name}/"), a.digest)
                               for a in list_artifacts(project, run_id, name)])
        return ValueRef("model", digest, f"runs:/{run_id}/{name}", type(value).__name__,
                        signing.sign("model", digest))
    if hasattr(value, "to_parquet") and hasattr(value, "columns"):
        buf = io.BytesIO()
        value.to_parquet(buf, index=False)
        return ValueRef("frame", objects.put_bytes(buf.getvalue()), None,
                        f"{len(value):,} rows × {len(value.columns)} columns")
    if isinstance(value, np.ndarray) and value.dtype != object:
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return ValueRef("array", objects.put_bytes(buf.getvalue()), None,
                        f"array {value.dtype} {value.shape}")
    if annotation is Report:  # a JSON document by contract (NumPy numbers become numbers)
        data = value.to_dict() if callable(getattr(value, "to_dict", None)) else value
        text = json.dumps(data, sort_keys=True, default=_plain)
        return ValueRef("report", objects.put_bytes(text.encode()), None, _short(data))
    exact = _json_exact(value)
    if exact is None:  # JSON would change it (int keys, tuples, a Series …): pickle it
        import cloudpickle

        digest = objects.put_bytes(cloudpickle.dumps(value))
        return ValueRef("pickle", digest, None, type(value).__name__,
                        signing.sign("pickle", digest))
    return ValueRef("json", objects.put_bytes(exact.encode()), None, _short(value))


def input_example(model: Any, inputs: Mapping[str, Any] | None) -> Any:
    """A few rows of the columns ``model`` was fitted on, from the step's input data: the
    first input frame (or dataset a step loaded) holding every name of the estimator's
    ``feature_names_in_``. None when the model does not say its columns (fitted on an
    array) or no input holds them all; the model is then logged without a signature."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None
    wanted = [str(n) for n in names]
    for value in (inputs or {}).values():
        frame = value.sample if isinstance(value, Dataset) else value
        columns = getattr(frame, "columns", None)
        if columns is None or not hasattr(frame, "head"):
            continue
        if set(wanted) <= {str(c) for c in columns}:
            frame = frame.set_axis([str(c) for c in columns], axis=1)
            return frame.loc[:, wanted].head(20)
    return None


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # NumPy scalars
    return item() if callable(item) else str(value)


def _json_exact(value: Any) -> str | None:
    """``value`` as JSON when reading it back gives exactly it (types included)."""
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return text if _same(json.loads(text), value) else None


def _same(back: Any, value: Any) -> bool:
    if type(back) is not type(value):
        return False
    if isinstance(value, dict):
        return back.keys() == value.keys() and all(_same(back[k], value[k]) for k in value)
    if isinstance(value, list):
        return len(back) == len(value) and all(map(_same, back, value))
    return bool(back == value)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        numbers = {k: v for k, v in value.items() if isinstance(v, (int, float))}
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in list(numbers.items())[:4])
        return shown or f"{len(value)} keys"
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def load(project: Project, ref: ValueRef) -> Any:
    """The value a :class:`ValueRef` names, read from hash-verified blobs."""
    if ref.kind == "dataset":
        assert ref.uri is not None
        return Dataset(ref.uri, ref.uri, ref.digest)
    if ref.kind == "model":
        from mloop.registry.models import load_model

        assert ref.uri is not None
        if ref.signed:  # exactly the files this user's run stored
            return load_model(project, ref.uri, engine="native", pinned=ref.digest).model
        return load_model(project, ref.uri, engine="native").model  # pickles: if allowed
    if ref.kind == "pickle" and not ref.signed and not project.settings.allow_pickle:
        raise UnsafeValueError(_unsigned(ref))
    data = project.objects.get_bytes(ref.digest)
    if ref.kind == "frame":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    if ref.kind == "array":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if ref.kind in ("json", "report"):
        return json.loads(data)
    if ref.kind == "pickle":
        import pickle

        return pickle.loads(data)
    raise ValueError(f"unknown value kind {ref.kind!r}")


def _unsigned(ref: ValueRef) -> str:
    from mloop.core.signing import KEY_ENV, key_path
    from mloop.registry.safety import opt_ins

    why = ("is not signed" if not ref.sig else
           "is signed by another key (another user or machine), or was changed")
    what = ref.summary or "a pickle"
    return (f"Refused to read the pipeline value {ref.digest[:12]}… ({what}): it is a pickle, "
            f"which runs code when read, and it {why}. mloop reads without asking only the "
            f"pickles your key ({key_path()} or {KEY_ENV}) signed. Run the step that makes "
            f"it again, share one key between the machines that run steps ({KEY_ENV}), or, "
            f"if you trust the store, allow pickles: {opt_ins()}.")


def exists(project: Project, ref: ValueRef) -> bool:
    """Whether the value can still be restored: its blobs are there (a gc may have removed
    them) and, for a pickle, it may be read (signed by this user, or pickles allowed)."""
    if ref.kind == "pickle" and not ref.signed and not project.settings.allow_pickle:
        return False  # the step runs again and stores a value this user signed
    if ref.kind == "dataset":
        return True
    if ref.kind == "files":  # the manifest and every file it lists
        from mloop.pipelines.stages import blobs

        if not project.objects.exists(ref.digest):
            return False
        return not project.objects.missing(blobs(project, ref))
    if ref.kind == "model":
        from mloop.registry.flavors import get_flavor
        from mloop.registry.models import resolve_source
        from mloop.tracking.artifacts import list_artifacts

        try:
            run_id, path, manifest = resolve_source(project, str(ref.uri))
            if not ref.signed and not project.settings.allow_pickle:
                meta = json.loads(project.objects.get_bytes(manifest))
                if get_flavor(meta["flavor"]).serializer(meta["flavor_meta"]).runs_code:
                    return False  # a pickle this user did not sign: make it again
        except (MloopError, KeyError, TypeError, ValueError):
            return False
        return all(project.objects.exists(a.digest)
                   for a in list_artifacts(project, run_id, path))
    return project.objects.exists(ref.digest)
