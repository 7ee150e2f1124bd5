"""Registered models, their versions, aliases, tags and audit log: ``registered_models``,
``model_versions``, ``model_aliases``, ``model_tags``, ``model_events``.

Two access paths, as the callers need them. Loading a model (``mloop.load_model``, a
fresh process) resolves its ref with plain SQL text through :func:`mloop.store.lite.lite`,
in :mod:`mloop.repositories.model_sources` (:meth:`SqlModels.source`), which the loading
path imports alone: it never imports SQLAlchemy, nor builds this module's records.
Everything else (the registry commands, registration, governance) uses SQLAlchemy Core on
``project.store``, imported when first used.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.uris import ModelURI, check_name
from mloop.errors import ConflictError, InvalidInputError, ModelNotFoundError
from mloop.repositories import model_sources
from mloop.repositories.model_sources import (
    ModelSource,
    no_alias,
    no_model,
    no_version,
    parse_model_ref,
)

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["ModelEvent", "ModelNotFoundError", "ModelSource", "ModelStatus", "ModelVersion",
           "Models", "SqlModels", "parse_model_ref"]

_RACES = 5  # PostgreSQL: two registrations can race for a number; the loser tries again


class ModelStatus(enum.StrEnum):
    """Where a version stands in governance."""

    REGISTERED = "registered"
    APPROVED = "approved"
    REJECTED = "rejected"  # an approver's "no" (with the reason in the audit log)
    ARCHIVED = "archived"

    @classmethod
    def parse(cls, value: str) -> ModelStatus:
        """The status named ``value`` (:class:`InvalidInputError` for another word)."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidInputError(f"Unknown status {value!r}; use one of "
                                    f"{', '.join(cls)}.") from None


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    run_id: str | None
    artifact_path: str
    flavor: str
    status: ModelStatus
    manifest: str
    description: str | None
    user: str | None
    created_at: int
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def source(self) -> str:
        return f"runs:/{self.run_id}/{self.artifact_path}"

    def to_dict(self) -> dict[str, Any]:
        from mloop.core.clock import ms_to_datetime

        created = ms_to_datetime(self.created_at)
        return {"name": self.name, "version": self.version, "uri": self.uri,
                "source": self.source, "flavor": self.flavor, "status": str(self.status),
                "aliases": list(self.aliases), "tags": dict(self.tags),
                "description": self.description, "user": self.user,
                "created_at": created.isoformat(timespec="milliseconds") if created else None,
                "manifest": self.manifest}


@dataclass(frozen=True)
class ModelEvent:
    """One line of a model's audit log (``action``: registered, alias, a status, deleted)."""

    version: int | None
    action: str
    user: str | None
    message: str | None
    created_at: int


class Models(Protocol):
    """What the rest of mloop may ask of the model registry's tables.

    A ``ref`` is ``models:/NAME/N``, ``models:/NAME@ALIAS``, ``NAME/N``, ``NAME@ALIAS`` or
    a bare ``NAME`` (its latest version); an unknown model, alias or version raises
    :class:`~mloop.errors.ModelNotFoundError`.
    """

    def source(self, ref: str) -> ModelSource:
        """Where the version a ref names was logged (the model-loading path)."""
        ...

    def get(self, ref: str) -> ModelVersion:
        """The version a ref names, with its aliases and tags."""
        ...

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of model ``name``, newest first."""
        ...

    def latest(self) -> list[ModelVersion]:
        """The latest version of every registered model, by name."""
        ...

    def register(self, name: str, *, run_id: str, artifact_path: str, manifest: str,
                 flavor: str, description: str | None, message: str | None) -> ModelVersion:
        """The next version of ``name`` (the model is created on its first version)."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        """Point ``alias`` at ``version`` (moving it); returns the version."""
        ...

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` (:class:`ModelNotFoundError` when the model has no such alias)."""
        ...

    def set_status(self, name: str, version: int, status: ModelStatus,
                   message: str | None) -> ModelVersion:
        """Record a governance transition; returns the version."""
        ...

    def set_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        """Set (or replace) tag ``key``; returns the version."""
        ...

    def delete(self, name: str, version: int, message: str | None) -> None:
        """Remove a version and its tags (its aliases must have moved already)."""
        ...

    def events(self, name: str) -> list[ModelEvent]:
        """The model's audit log, oldest first."""
        ...


class SqlModels:
    """The registry over the project's metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    # -- the model-loading path: plain SQL through lite ------------------------------

    def source(self, ref: str) -> ModelSource:
        return model_sources.source(self.project, ref)

    # -- reads through the Store ------------------------------------------------------

    def get(self, ref: str) -> ModelVersion:
        from sqlalchemy import select

        from mloop.store.schema import model_aliases, model_versions

        parsed = parse_model_ref(ref)
        with self.project.store.read() as conn:
            if isinstance(parsed, ModelURI):
                name = parsed.name
                model_id = _model_id(conn, name)
                if parsed.alias is not None:
                    version = conn.execute(select(model_aliases.c.version).where(
                        model_aliases.c.model_id == model_id,
                        model_aliases.c.alias == parsed.alias)).scalar()
                    if version is None:
                        raise no_alias(name, parsed.alias)
                else:
                    version = parsed.version
                found = _versions(conn, model_id, name, model_versions.c.version == version)
            else:
                name = parsed[0]
                found = _versions(conn, _model_id(conn, name), name)[:1]
        if not found:
            raise no_version(name, ref)
        return found[0]

    def versions(self, name: str) -> list[ModelVersion]:
        with self.project.store.read() as conn:
            return _versions(conn, _model_id(conn, name), name)

    def latest(self) -> list[ModelVersion]:
        from sqlalchemy import select

        from mloop.store.schema import registered_models

        with self.project.store.read() as conn:
            names = conn.execute(select(registered_models.c.id, registered_models.c.name)
                                 .order_by(registered_models.c.name)).all()
            out = []
            for model_id, name in names:
                out.extend(_versions(conn, model_id, name)[:1])
        return out

    def events(self, name: str) -> list[ModelEvent]:
        from sqlalchemy import select

        from mloop.store.schema import model_events

        with self.project.store.read() as conn:
            model_id = _model_id(conn, name)
            rows = conn.execute(select(model_events).where(model_events.c.model_id == model_id)
                                .order_by(model_events.c.created_at, model_events.c.id)).all()
        return [ModelEvent(r.version, r.action, r.user, r.message, r.created_at) for r in rows]

    # -- writes -----------------------------------------------------------------------

    def register(self, name: str, *, run_id: str, artifact_path: str, manifest: str,
                 flavor: str, description: str | None, message: str | None) -> ModelVersion:
        from sqlalchemy.exc import IntegrityError

        check_name(name, "model name")  # a version it could not name again is never stored
        values = {"run_id": run_id, "artifact_path": artifact_path, "manifest": manifest,
                  "flavor": flavor, "description": description}
        for _ in range(_RACES):
            try:
                version = self._register(name, values, message)
                return self.get(f"{name}/{version}")
            except IntegrityError:
                continue
        raise ConflictError(f"Could not register a new version of {name!r}: other "
                            "registrations kept taking its number. Try again.")

    def _register(self, name: str, values: dict[str, Any], message: str | None) -> int:
        from sqlalchemy import func, select

        from mloop.core.process import current_user
        from mloop.store.schema import model_versions, registered_models

        store = self.project.store
        with store.write() as conn:
            conn.execute(store.insert(registered_models).values(
                id=new_id(), name=name, created_at=now_ms()).on_conflict_do_nothing())
            # the model's row locked (PostgreSQL; SQLite's writes are serial anyway):
            # registrations of one model take their numbers one after the other
            model_id = conn.execute(select(registered_models.c.id).where(
                registered_models.c.name == name).with_for_update()).scalar_one()
            last = conn.execute(select(func.max(model_versions.c.version)).where(
                model_versions.c.model_id == model_id)).scalar()
            version = int(last or 0) + 1
            conn.execute(model_versions.insert().values(
                model_id=model_id, version=version, status=ModelStatus.REGISTERED.value,
                user=current_user(), created_at=now_ms(), **values))
            _event(conn, model_id, version, ModelStatus.REGISTERED.value, message)
        return version

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        from mloop.store.schema import model_aliases

        store = self.project.store
        with store.write() as conn:
            model_id = _model_id(conn, name)
            stmt = store.insert(model_aliases).values(model_id=model_id, alias=alias,
                                                      version=version)
            conn.execute(stmt.on_conflict_do_update(index_elements=["model_id", "alias"],
                                                    set_={"version": version}))
            _event(conn, model_id, version, "alias", f"{alias} -> {version}")
        return self.get(f"{name}@{alias}")

    def delete_alias(self, name: str, alias: str) -> None:
        from sqlalchemy import delete

        from mloop.store.schema import model_aliases

        with self.project.store.write() as conn:
            model_id = _model_id(conn, name)
            gone = conn.execute(delete(model_aliases).where(
                model_aliases.c.model_id == model_id, model_aliases.c.alias == alias))
            if not gone.rowcount:
                raise no_alias(name, alias)
            _event(conn, model_id, None, "alias", f"{alias} removed")

    def set_status(self, name: str, version: int, status: ModelStatus,
                   message: str | None) -> ModelVersion:
        from sqlalchemy import update

        from mloop.store.schema import model_versions

        with self.project.store.write() as conn:
            model_id = _model_id(conn, name)
            conn.execute(update(model_versions).where(
                model_versions.c.model_id == model_id,
                model_versions.c.version == version).values(status=status.value))
            _event(conn, model_id, version, status.value, message)
        return self.get(f"{name}/{version}")

    def set_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        from mloop.store.schema import model_tags

        store = self.project.store
        with store.write() as conn:
            model_id = _model_id(conn, name)
            stmt = store.insert(model_tags).values(model_id=model_id, version=version,
                                                   key=key, value=value)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["model_id", "version", "key"], set_={"value": value}))
        return self.get(f"{name}/{version}")

    def delete(self, name: str, version: int, message: str | None) -> None:
        from sqlalchemy import delete

        from mloop.store.schema import model_tags, model_versions

        with self.project.store.write() as conn:
            model_id = _model_id(conn, name)
            conn.execute(delete(model_tags).where(model_tags.c.model_id == model_id,
                                                  model_tags.c.version == version))
            conn.execute(delete(model_versions).where(model_versions.c.model_id == model_id,
                                                      model_versions.c.version == version))
            _event(conn, model_id, version, "deleted", message)


def _event(conn: Any, model_id: str, version: int | None, action: str,
           message: str | None) -> None:
    from mloop.core.process import current_user
    from mloop.store.schema import model_events

    conn.execute(model_events.insert().values(
        id=new_id(), model_id=model_id, version=version, action=action, user=current_user(),
        message=message, created_at=now_ms()))


def _model_id(conn: Any, name: str) -> str:
    from sqlalchemy import select

    from mloop.store.schema import registered_models

    model_id = conn.execute(select(registered_models.c.id).where(
        registered_models.c.name == name)).scalar()
    if model_id is None:
        raise no_model(name)
    return str(model_id)


def _versions(conn: Any, model_id: str, name: str, where: Any = None) -> list[ModelVersion]:
    from sqlalchemy import select

    from mloop.store.schema import model_aliases, model_tags, model_versions

    query = select(model_versions).where(model_versions.c.model_id == model_id)
    if where is not None:
        query = query.where(where)
    rows = conn.execute(query.order_by(model_versions.c.version.desc())).all()
    aliases: dict[int, list[str]] = {}
    for alias, version in conn.execute(select(model_aliases.c.alias, model_aliases.c.version)
                                       .where(model_aliases.c.model_id == model_id)
                                       .order_by(model_aliases.c.alias)):
        aliases.setdefault(version, []).append(alias)
    tags: dict[int, dict[str, str]] = {}
    for version, key, value in conn.execute(
            select(model_tags.c.version, model_tags.c.key, model_tags.c.value)
            .where(model_tags.c.model_id == model_id)):
        tags.setdefault(version, {})[key] = value
    return [ModelVersion(name, r.version, r.run_id, r.artifact_path, r.flavor,
                         ModelStatus(r.status), r.manifest, r.description, r.user,
                         r.created_at, aliases.get(r.version, []), tags.get(r.version, {}))
            for r in rows]
