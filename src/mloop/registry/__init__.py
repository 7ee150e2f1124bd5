"""The model registry API: ``mloop.log_model``, ``mloop.load_model``, aliases, approvals.

>>> info = mloop.log_model(model, name="model", input_example=X[:5],   # doctest: +SKIP
...                        registered_name="churn")
>>> mloop.set_alias("churn", "champion", 1)                            # doctest: +SKIP
>>> mloop.load_model("models:/churn@champion").predict(df)             # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mloop.project import Project, current_project

if TYPE_CHECKING:
    from mloop.registry.loading import LoadedModel
    from mloop.registry.models import ModelEvent, ModelInfo, ModelVersion


def _m() -> Any:
    return importlib.import_module("mloop.registry.models")


def _p(project: Project | None) -> Project:
    return project if project is not None else current_project()


def log_model(model: Any, name: str = "model", *, input_example: Any = None,
              registered_name: str | None = None, onnx: bool | None = None,
              metadata: dict[str, Any] | None = None, description: str | None = None
              ) -> ModelInfo:
    """Save ``model`` with the active run (starting one if none is active) under ``name``.

    The flavor is chosen from the model (scikit-learn, ONNX, any object with
    ``predict``); ``input_example`` gives the signature that ``predict`` enforces; a
    scikit-learn model also gets an ONNX twin when skl2onnx reproduces it (``onnx=False``
    skips that, ``True`` requires it). ``registered_name`` registers it as the next
    version of that model.
    """
    from mloop.tracking import fluent

    run = fluent.active_or_new_run()
    return _m().log_model(run.tracker.project, run.id, model, name,
                          input_example=input_example, registered_name=registered_name,
                          onnx=onnx, metadata=metadata, description=description)


def register_model(source: str, name: str, *, description: str | None = None,
                   project: Project | None = None) -> ModelVersion:
    """Register a logged model (``runs:/<run_id>/model``) as the next version of ``name``."""
    return _m().register_model(_p(project), source, name,
                               description=description)


def load_model(uri: str, *, engine: str | None = None, trusted: list[str] | None = None,
               allow_pickle: bool | None = None, project: Project | None = None
               ) -> LoadedModel:
    """Load ``models:/churn/1``, ``models:/churn@champion`` or ``runs:/<run_id>/model``.

    ``engine``: ``native``, ``onnx`` (the verified ONNX twin, ~15x faster per row) or
    ``auto``; default: the project's ``models.engine`` setting (``native``). ``trusted``:
    types beyond scikit-learn's that a skops file may rebuild. ``allow_pickle=True``
    loads a model saved as a pickle (joblib: a plain Python model, or a scikit-learn one
    skops could not write), which runs code when loaded: only for files you trust.
    Without it (and without ``MLOOP_ALLOW_PICKLE=1`` or ``[models] allow_pickle = true``
    in your own ``~/.config/mloop/config.toml``) such a model raises
    :class:`~mloop.errors.UnsafeModelError`.
    """
    from mloop.registry.loading import load_model as load  # no SQLAlchemy on SQLite

    return load(_p(project), uri, engine=engine, trusted=trusted, allow_pickle=allow_pickle)


def get_model_version(ref: str, *, project: Project | None = None) -> ModelVersion:
    """A registered version: ``churn/2``, ``churn@champion``, ``models:/churn/2``."""
    return _m().get_version(_p(project), ref)


def list_models(*, project: Project | None = None) -> list[ModelVersion]:
    """The latest version of every registered model."""
    return _m().list_models(_p(project))


def list_model_versions(name: str, *, project: Project | None = None) -> list[ModelVersion]:
    """Every version of model ``name``, newest first."""
    return _m().list_versions(_p(project), name)


def set_alias(name: str, alias: str, version: int | str, *,
              project: Project | None = None) -> ModelVersion:
    """Point ``alias`` at ``version`` of model ``name`` (moving it if it pointed elsewhere)."""
    return _m().set_alias(_p(project), name, alias, version)


def approve_model(ref: str, message: str | None = None, *,
                  project: Project | None = None) -> ModelVersion:
    """Mark a version approved (governance), recording who, when and ``message``."""
    from mloop.repositories.models import ModelStatus

    return _m().transition(_p(project), ref, ModelStatus.APPROVED, message)


def reject_model(ref: str, message: str, *, project: Project | None = None) -> ModelVersion:
    """Mark a version rejected by review (it cannot be deployed where approval is
    required), recording who, when and why (``message`` is required)."""
    from mloop.errors import InvalidInputError
    from mloop.repositories.models import ModelStatus

    if not message or not message.strip():
        raise InvalidInputError("Say why the version is rejected (a message); it is kept in "
                                "the audit log.")
    return _m().transition(_p(project), ref, ModelStatus.REJECTED, message)


def archive_model(ref: str, message: str | None = None, *,
                  project: Project | None = None) -> ModelVersion:
    """Mark a version archived (retired), recording who, when and ``message``."""
    from mloop.repositories.models import ModelStatus

    return _m().transition(_p(project), ref, ModelStatus.ARCHIVED, message)


def delete_model_version(ref: str, message: str | None = None, *,
                         project: Project | None = None) -> ModelVersion:
    """Remove a version from the registry; refused while an alias points at it."""
    return _m().delete_version(_p(project), ref, message)


def set_model_tag(ref: str, key: str, value: str, *,
                  project: Project | None = None) -> ModelVersion:
    """Set tag ``key`` = ``value`` on a registered version (e.g. ``team``, ``ticket``)."""
    return _m().set_tag(_p(project), ref, key, value)


def model_events(name: str, *, project: Project | None = None) -> list[ModelEvent]:
    """The audit log of a model, oldest first."""
    return _m().events(_p(project), name)
