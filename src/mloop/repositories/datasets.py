"""Datasets, their versions and tags, the stat cache, and remotes an older mloop stored.

Every statement on ``datasets``, ``dataset_versions``, ``dataset_tags``, ``stat_cache``
and ``remotes``. Reads, ``data add`` and the stat cache are on the CLI's hot paths
(``mloop data status`` answers in ~0.15 s): they are portable SQL text through
:func:`mloop.store.lite.lite` and import no SQLAlchemy. Tagging, validation results,
recording another clone's version and the remote rows use SQLAlchemy Core on the Store.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mloop.core.clock import ms_to_datetime, now_ms
from mloop.core.ids import new_id
from mloop.errors import ConflictError, DatasetNotFoundError
from mloop.project import Project
from mloop.store.lite import Query, Row, in_list, lite

__all__ = [
    "DatasetVersion", "Datasets", "NewVersion", "SqlDatasets", "SqlStatCache",
    "SqlStoredRemotes", "StatCache", "StatEntry", "StoredRemote", "StoredRemotes",
    "VersionKind",
]


class VersionKind(enum.StrEnum):
    """What a version holds: one file, or a folder of files."""

    FILE = "file"
    FOLDER = "folder"


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset (a file or a folder)."""

    name: str
    version: int
    tree: str  # object-store digest of the version's file list
    kind: str  # a VersionKind
    source_path: str  # project-relative path it was added from
    size: int
    files: int
    rows: int | None
    stats: dict[str, Any] | None
    validation: dict[str, Any] | None
    message: str | None
    user: str | None
    command: str | None
    created_at: int
    tags: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"data:/{self.name}@{self.version}"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        created = ms_to_datetime(self.created_at)
        return {"name": self.name, "version": self.version, "uri": self.uri,
                "tree": self.tree, "kind": self.kind, "path": self.source_path,
                "size": self.size, "files": self.files, "rows": self.rows,
                "message": self.message, "user": self.user, "command": self.command,
                "created_at": created.isoformat(timespec="milliseconds") if created else None,
                "tags": list(self.tags), "stats": self.stats, "validation": self.validation}


@dataclass(frozen=True)
class NewVersion:
    """What a new version row holds (its dataset and number are given beside it)."""

    tree: str
    kind: str
    source_path: str
    size: int
    files: int
    rows: int | None = None
    stats: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    message: str | None = None
    user: str | None = None
    command: str | None = None
    created_at: int = 0  # 0: now


@dataclass(frozen=True)
class StatEntry:
    """A file's stat when it was last hashed, and its digest then (keyed by project path)."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    digest: str


@dataclass(frozen=True)
class StoredRemote:
    """A remote an older mloop kept in the metadata store (now in ``.mloop/config.toml``)."""

    name: str
    url: str


class Datasets(Protocol):
    """Datasets and their versions and tags."""

    def find(self, name: str, version: int | str | None = None) -> DatasetVersion:
        """A version by number (``int``), tag (``str``) or the latest (``None``)."""
        ...

    def versions(self, name: str) -> list[DatasetVersion]:
        """Every version of ``name``, newest first."""
        ...

    def latest_versions(self) -> list[DatasetVersion]:
        """The latest version of every dataset, by name (without tags)."""
        ...

    def source_paths(self) -> list[str]:
        """Every project path a version was added from, sorted."""
        ...

    def trees(self) -> list[tuple[str, int, str]]:
        """(name, number, tree digest) of every version."""
        ...

    def profiles(self) -> list[tuple[str, int, str]]:
        """(name, number, profile digest) of every version whose summary has a profile."""
        ...

    def add_version(self, name: str, new: NewVersion) -> int:
        """Record ``new`` as the next version of ``name`` (created if new); its number."""
        ...

    def record_version(self, name: str, number: int, new: NewVersion) -> None:
        """Record ``new`` as version ``number``; :class:`ConflictError` if it is taken."""
        ...

    def tag(self, name: str, number: int, tag: str) -> None:
        """Point ``tag`` at a version, moving it if it pointed elsewhere."""
        ...

    def set_validation(self, name: str, number: int, validation: dict[str, Any]) -> None:
        """Store a validation result with a version."""
        ...

    def fill_summary(self, tree: str, stats: dict[str, Any]) -> None:
        """Store ``stats`` in every version of ``tree`` that has no summary yet."""
        ...


class StatCache(Protocol):
    """Project path → the stat and digest of the file when mloop last hashed or wrote it."""

    def lookup(self, paths: list[str]) -> dict[str, StatEntry]:
        """The entries of ``paths`` that the cache holds."""
        ...

    def save(self, entries: list[StatEntry]) -> None:
        """Insert or replace entries."""
        ...

    def forget(self, paths: list[str]) -> None:
        """Drop the entries of ``paths``."""
        ...


class StoredRemotes(Protocol):
    """The ``remotes`` rows older mloops wrote (read, re-pointed, deleted; never added)."""

    def all(self) -> list[StoredRemote]:
        """Every row, by name."""
        ...

    def set_url(self, name: str, old: str, new: str) -> None:
        """Replace the URL of ``name`` when it is still ``old``."""
        ...

    def delete(self, name: str) -> bool:
        """Drop the row of ``name``; whether there was one."""
        ...


def _dumps(obj: Any) -> str:
    """JSON as versions keep it (the same text as :func:`mloop.data.model.dumps`)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _is_integrity_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    sa_exc = sys.modules.get("sqlalchemy.exc")  # loaded when the Store ran the statement
    return sa_exc is not None and isinstance(exc, sa_exc.IntegrityError)


# "user" is quoted: on PostgreSQL a bare `user` is the CURRENT_USER function.
_VERSION_COLUMNS = ('d.name, v.version, v.tree, v.kind, v.source_path, v.size, v.files, '
                    'v.rows, v.stats, v.validation, v.message, v."user", v.command, '
                    'v.created_at')
_VERSIONS = (f"SELECT {_VERSION_COLUMNS} FROM dataset_versions v "
             "JOIN datasets d ON d.id = v.dataset_id")
_LATEST = (f"{_VERSIONS} JOIN (SELECT dataset_id, MAX(version) AS latest "
           "FROM dataset_versions GROUP BY dataset_id) m "
           "ON m.dataset_id = v.dataset_id AND m.latest = v.version ORDER BY d.name")
_NEW_DATASET = ("INSERT INTO datasets (id, name, created_at) VALUES (:id, :name, :now) "
                "ON CONFLICT (name) DO NOTHING")
_NEW_VERSION = ("INSERT INTO dataset_versions (dataset_id, version, tree, kind, source_path, "
                'size, files, "rows", stats, validation, message, "user", command, created_at) '
                "VALUES (:dataset_id, :version, :tree, :kind, :source_path, :size, :files, "
                ":rows, :stats, :validation, :message, :user, :command, :created_at)")
_FILL = ("UPDATE dataset_versions SET stats = :stats, rows = :rows "
         "WHERE tree = :tree AND stats IS NULL")


def _to_version(row: Row, tags: list[str]) -> DatasetVersion:
    return DatasetVersion(
        name=row["name"], version=row["version"], tree=row["tree"], kind=row["kind"],
        source_path=row["source_path"], size=row["size"], files=row["files"],
        rows=row["rows"], stats=json.loads(row["stats"]) if row["stats"] else None,
        validation=json.loads(row["validation"]) if row["validation"] else None,
        message=row["message"], user=row["user"], command=row["command"],
        created_at=row["created_at"], tags=tags)


def _row(dataset_id: str, number: int, new: NewVersion) -> dict[str, Any]:
    return {"dataset_id": dataset_id, "version": number, "tree": new.tree, "kind": str(new.kind),
            "source_path": new.source_path, "size": new.size, "files": new.files,
            "rows": new.rows, "stats": _dumps(new.stats) if new.stats else None,
            "validation": _dumps(new.validation) if new.validation else None,
            "message": new.message, "user": new.user, "command": new.command,
            "created_at": new.created_at or now_ms()}


def _tags_of(q: Query, dataset_id: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in q.all("SELECT tag, version FROM dataset_tags WHERE dataset_id = :ds ORDER BY tag",
                   {"ds": dataset_id}):
        out.setdefault(r["version"], []).append(r["tag"])
    return out


def _dataset_id(q: Query, name: str, hint: str) -> str:
    rows = q.all("SELECT id FROM datasets WHERE name = :name", {"name": name})
    if not rows:
        raise DatasetNotFoundError(f"No dataset named {name!r}. {hint}")
    ds_id: str = rows[0]["id"]
    return ds_id


class SqlDatasets:
    """:class:`Datasets` over the metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def find(self, name: str, version: int | str | None = None) -> DatasetVersion:
        with lite(self.project).read() as q:
            ds = _dataset_id(q, name, f"Add one with `mloop data add PATH --name {name}`.")
            where = "v.dataset_id = :ds"
            params: dict[str, Any] = {"ds": ds}
            if version is None:
                where += " ORDER BY v.version DESC LIMIT 1"
            elif isinstance(version, int):
                where += " AND v.version = :version"
                params["version"] = version
            else:
                tagged = q.all("SELECT version FROM dataset_tags WHERE dataset_id = :ds "
                               "AND tag = :tag", {"ds": ds, "tag": version})
                if not tagged:
                    raise DatasetNotFoundError(f"Dataset {name!r} has no version or tag "
                                               f"{version!r}. See `mloop data log {name}`.")
                where += " AND v.version = :version"
                params["version"] = tagged[0]["version"]
            rows = q.all(f"{_VERSIONS} WHERE {where}", params)
            if not rows:
                raise DatasetNotFoundError(f"Dataset {name!r} has no version {version}. "
                                           f"See `mloop data log {name}`.")
            tags = _tags_of(q, ds).get(rows[0]["version"], [])
        return _to_version(rows[0], tags)

    def versions(self, name: str) -> list[DatasetVersion]:
        with lite(self.project).read() as q:
            ds = _dataset_id(q, name, "List them with `mloop data list`.")
            tags = _tags_of(q, ds)
            rows = q.all(f"{_VERSIONS} WHERE v.dataset_id = :ds ORDER BY v.version DESC",
                         {"ds": ds})
        return [_to_version(r, tags.get(r["version"], [])) for r in rows]

    def latest_versions(self) -> list[DatasetVersion]:
        with lite(self.project).read() as q:
            rows = q.all(_LATEST)
        return [_to_version(r, []) for r in rows]

    def source_paths(self) -> list[str]:
        with lite(self.project).read() as q:
            rows = q.all("SELECT DISTINCT source_path FROM dataset_versions "
                         "ORDER BY source_path")
        return [r["source_path"] for r in rows]

    def trees(self) -> list[tuple[str, int, str]]:
        with lite(self.project).read() as q:
            rows = q.all("SELECT d.name, v.version, v.tree FROM dataset_versions v "
                         "JOIN datasets d ON d.id = v.dataset_id")
        return [(r["name"], r["version"], r["tree"]) for r in rows]

    def profiles(self) -> list[tuple[str, int, str]]:
        with lite(self.project).read() as q:  # LIKE: only rows whose summary names one
            rows = q.all("SELECT d.name, v.version, v.stats FROM dataset_versions v "
                         "JOIN datasets d ON d.id = v.dataset_id "
                         "WHERE v.stats LIKE '%\"profile\"%'")
        out = []
        for r in rows:
            profile = json.loads(r["stats"]).get("profile")
            if profile:
                out.append((r["name"], r["version"], profile))
        return out

    def add_version(self, name: str, new: NewVersion) -> int:
        # SQLite serialises writers, so the number is always free; on PostgreSQL two adds
        # of the same dataset can race for it, and the loser simply takes the next number.
        new = new if new.created_at else _with_time(new)
        attempts = 5
        for attempt in range(attempts):
            try:
                with lite(self.project).write() as q:
                    q.many(_NEW_DATASET, [{"id": new_id(), "name": name, "now": new.created_at}])
                    ds_id = q.all("SELECT id FROM datasets WHERE name = :name",
                                  {"name": name})[0]["id"]
                    last = q.all("SELECT MAX(version) AS last FROM dataset_versions "
                                 "WHERE dataset_id = :ds", {"ds": ds_id})[0]["last"]
                    number = (last or 0) + 1
                    q.many(_NEW_VERSION, [_row(ds_id, number, new)])
                return number
            except Exception as exc:
                if not _is_integrity_error(exc):
                    raise
                if attempt == attempts - 1:
                    raise ConflictError(f"Could not record a new version of {name!r}: other "
                                        "writers took every number tried; add it again.") \
                        from None
        raise AssertionError("the loop returns or raises")

    def record_version(self, name: str, number: int, new: NewVersion) -> None:
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        from mloop.store.schema import dataset_versions, datasets

        store = self.project.store
        try:
            with store.write() as conn:
                conn.execute(store.insert(datasets).values(id=new_id(), name=name,
                                                           created_at=now_ms())
                             .on_conflict_do_nothing())
                ds_id = conn.execute(select(datasets.c.id)
                                     .where(datasets.c.name == name)).scalar_one()
                conn.execute(dataset_versions.insert().values(**_row(ds_id, number, new)))
        except IntegrityError:
            raise ConflictError(f"{name}@{number} is recorded already.") from None

    def tag(self, name: str, number: int, tag: str) -> None:
        from sqlalchemy import select

        from mloop.store.schema import dataset_tags, datasets

        store = self.project.store
        with store.write() as conn:
            ds_id = conn.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar()
            if ds_id is None:
                raise DatasetNotFoundError(f"No dataset named {name!r}. List them with "
                                           "`mloop data list`.")
            stmt = store.insert(dataset_tags).values(dataset_id=ds_id, tag=tag, version=number)
            conn.execute(stmt.on_conflict_do_update(index_elements=["dataset_id", "tag"],
                                                    set_={"version": number}))

    def set_validation(self, name: str, number: int, validation: dict[str, Any]) -> None:
        from sqlalchemy import select, update

        from mloop.store.schema import dataset_versions, datasets

        with self.project.store.write() as conn:
            ds_id = conn.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar()
            conn.execute(update(dataset_versions).where(
                dataset_versions.c.dataset_id == ds_id,
                dataset_versions.c.version == number).values(validation=_dumps(validation)))

    def fill_summary(self, tree: str, stats: dict[str, Any]) -> None:
        with lite(self.project).write() as q:
            q.many(_FILL, [{"stats": _dumps(stats), "rows": stats.get("rows"), "tree": tree}])


def _with_time(new: NewVersion) -> NewVersion:
    from dataclasses import replace

    return replace(new, created_at=now_ms())


_WHOLE_CACHE = 2000  # more paths than this: one scan of the cache beats many IN lists
_STAT_COLUMNS = "SELECT path, size, mtime_ns, inode, digest FROM stat_cache"
_SAVE_STAT = ("INSERT INTO stat_cache (path, size, mtime_ns, inode, digest) "
              "VALUES (:path, :size, :mtime_ns, :inode, :digest) ON CONFLICT (path) DO UPDATE "
              "SET size = excluded.size, mtime_ns = excluded.mtime_ns, inode = excluded.inode, "
              "digest = excluded.digest")


def _stat_rows(q: Query, paths: list[str]) -> Iterator[Row]:
    if len(paths) > _WHOLE_CACHE:
        wanted = set(paths)
        yield from (r for r in q.all(_STAT_COLUMNS) if r["path"] in wanted)
        return
    for start in range(0, len(paths), 900):
        placeholders, params = in_list("p", paths[start:start + 900])
        yield from q.all(f"{_STAT_COLUMNS} WHERE path IN ({placeholders})", params)


class SqlStatCache:
    """:class:`StatCache` over the metadata store (plain SQL: status and add read it)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def lookup(self, paths: list[str]) -> dict[str, StatEntry]:
        with lite(self.project).read() as q:
            return {r["path"]: StatEntry(r["path"], r["size"], r["mtime_ns"], r["inode"],
                                         r["digest"]) for r in _stat_rows(q, paths)}

    def save(self, entries: list[StatEntry]) -> None:
        if entries:
            with lite(self.project).write() as q:
                q.many(_SAVE_STAT, [{"path": e.path, "size": e.size, "mtime_ns": e.mtime_ns,
                                     "inode": e.inode, "digest": e.digest} for e in entries])

    def forget(self, paths: list[str]) -> None:
        if paths:
            with lite(self.project).write() as q:
                q.many("DELETE FROM stat_cache WHERE path = :path", [{"path": p} for p in paths])


class SqlStoredRemotes:
    """:class:`StoredRemotes` over the metadata store."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def all(self) -> list[StoredRemote]:
        from sqlalchemy import select

        from mloop.store.schema import remotes

        with self.project.store.read() as conn:
            rows = conn.execute(select(remotes.c.name, remotes.c.url)
                                .order_by(remotes.c.name)).all()
        return [StoredRemote(r.name, r.url) for r in rows]

    def set_url(self, name: str, old: str, new: str) -> None:
        from sqlalchemy import update

        from mloop.store.schema import remotes

        with self.project.store.write() as conn:
            conn.execute(update(remotes).where(remotes.c.name == name, remotes.c.url == old)
                         .values(url=new))

    def delete(self, name: str) -> bool:
        from sqlalchemy import delete

        from mloop.store.schema import remotes

        with self.project.store.write() as conn:
            deleted: int = conn.execute(delete(remotes).where(remotes.c.name == name)).rowcount
        return deleted > 0
