"""Datasets and their versions: add, resolve, list, tag, roll back.

A version is immutable: its row points at a *tree* blob (the sorted list of files with
their chunk lists) in the object store. Adding content that equals the latest version
makes no new version. Rolling back makes a new version with an old tree, so history is
never rewritten.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.progress import progress
from mloop.core.uris import DataURI, check_name, parse_uri
from mloop.data.chunks import FileEntry, chunk_files
from mloop.data.model import DatasetVersion, decode_tree, dumps, encode_tree
from mloop.errors import InvalidInputError, InvalidURIError, NotFoundError
from mloop.project import Project
from mloop.store.schema import dataset_tags, dataset_versions, datasets

POINTER_SUFFIX = ".mloop"


class DatasetNotFoundError(NotFoundError):
    code = "dataset_not_found"


def parse_ref(ref: str) -> DataURI:
    """``train``, ``train@2``, ``train@golden`` or ``data:/train@2``."""
    if ref.startswith("data:/"):
        parsed = parse_uri(ref)
        assert isinstance(parsed, DataURI)
        return parsed
    name, sep, rest = ref.partition("@")
    if sep and not rest:
        raise InvalidURIError(f"{ref!r}: nothing after '@'; write e.g. '{name}@2'.")
    return DataURI(check_name(name, "dataset name"), check_name(rest, "version or tag") if sep
                   else None)


def _row_to_version(row: Any, tags: list[str]) -> DatasetVersion:
    return DatasetVersion(
        name=row.name, version=row.version, tree=row.tree, kind=row.kind,
        source_path=row.source_path, size=row.size, files=row.files, rows=row.rows,
        stats=json.loads(row.stats) if row.stats else None,
        validation=json.loads(row.validation) if row.validation else None,
        message=row.message, user=row.user, command=row.command, created_at=row.created_at,
        tags=tags)


def _versions_query() -> Any:
    return select(dataset_versions, datasets.c.name).join(
        datasets, datasets.c.id == dataset_versions.c.dataset_id)


def _tags_of(conn: Any, dataset_id: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for tag, version in conn.execute(select(dataset_tags.c.tag, dataset_tags.c.version)
                                     .where(dataset_tags.c.dataset_id == dataset_id)
                                     .order_by(dataset_tags.c.tag)):
        out.setdefault(version, []).append(tag)
    return out


def get(project: Project, ref: str) -> DatasetVersion:
    """The version a ref names; a bare name means the latest version."""
    uri = parse_ref(ref)
    with project.store.read() as conn:
        ds = conn.execute(select(datasets).where(datasets.c.name == uri.name)).first()
        if ds is None:
            raise DatasetNotFoundError(f"No dataset named {uri.name!r}. Add one with "
                                       f"`mloop data add PATH --name {uri.name}`.")
        query = _versions_query().where(dataset_versions.c.dataset_id == ds.id)
        if uri.ref is None:
            query = query.order_by(dataset_versions.c.version.desc()).limit(1)
        elif uri.ref.isdigit():
            query = query.where(dataset_versions.c.version == int(uri.ref))
        else:
            tagged = conn.execute(select(dataset_tags.c.version).where(
                dataset_tags.c.dataset_id == ds.id, dataset_tags.c.tag == uri.ref)).scalar()
            if tagged is None:
                raise DatasetNotFoundError(f"Dataset {uri.name!r} has no version or tag "
                                           f"{uri.ref!r}. See `mloop data log {uri.name}`.")
            query = query.where(dataset_versions.c.version == tagged)
        row = conn.execute(query).first()
        if row is None:
            raise DatasetNotFoundError(f"Dataset {uri.name!r} has no version {uri.ref}. "
                                       f"See `mloop data log {uri.name}`.")
        tags = _tags_of(conn, ds.id).get(row.version, [])
    return _row_to_version(row, tags)


def log(project: Project, name: str) -> list[DatasetVersion]:
    """Every version of a dataset, newest first: the audit trail."""
    with project.store.read() as conn:
        ds = conn.execute(select(datasets).where(datasets.c.name == name)).first()
        if ds is None:
            raise DatasetNotFoundError(f"No dataset named {name!r}. List them with "
                                       "`mloop data list`.")
        tags = _tags_of(conn, ds.id)
        rows = conn.execute(_versions_query().where(dataset_versions.c.dataset_id == ds.id)
                            .order_by(dataset_versions.c.version.desc())).all()
    return [_row_to_version(r, tags.get(r.version, [])) for r in rows]


def list_datasets(project: Project) -> list[DatasetVersion]:
    """The latest version of every dataset."""
    latest = (select(dataset_versions.c.dataset_id,
                     func.max(dataset_versions.c.version).label("v"))
              .group_by(dataset_versions.c.dataset_id).subquery())
    query = _versions_query().join(latest, (latest.c.dataset_id == dataset_versions.c.dataset_id)
                                   & (latest.c.v == dataset_versions.c.version))
    with project.store.read() as conn:
        rows = conn.execute(query.order_by(datasets.c.name)).all()
    return [_row_to_version(r, []) for r in rows]


def read_tree(project: Project, version: DatasetVersion) -> list[FileEntry]:
    """The files of a version, with their chunk lists."""
    data = decode_tree(project.objects.get_bytes(version.tree))
    return [FileEntry.from_json(f) for f in data["files"]]


def project_relpath(project: Project, path: Path) -> str:
    """``path`` relative to the project root; data outside the project is refused."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(project.root).as_posix()
    except ValueError:
        raise InvalidInputError(f"{path} is outside the project at {project.root}; move or copy "
                                "it inside the project to version it.") from None


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != ".mloop")
        for name in sorted(filenames):
            if not name.endswith(POINTER_SUFFIX):
                yield Path(dirpath) / name


def collect(path: Path) -> tuple[str, list[tuple[Path, str]]]:
    """("file" | "folder", [(local path, path inside the version)])."""
    if path.is_file():
        return "file", [(path, path.name)]
    if path.is_dir():
        return "folder", [(f, f.relative_to(path).as_posix()) for f in _walk(path)]
    raise InvalidInputError(f"Cannot add {str(path)!r}: no such file or folder.")


def store_tree(project: Project, kind: str, entries: list[FileEntry]) -> str:
    """Store the version's file list; returns its digest."""
    tree = {"kind": kind, "files": [e.to_json() for e in sorted(entries, key=lambda e: e.path)]}
    return project.objects.put_bytes(encode_tree(tree))


def snapshot(project: Project, path: Path, *, quiet: bool = False,
             previous: Iterable[FileEntry] = ()) -> tuple[str, list[FileEntry]]:
    """Chunk and store every file under ``path``; returns (kind, entries).

    ``previous``: the entries of the version this one follows (small files that did not
    change keep their place in its packs).
    """
    kind, files = collect(path)
    total = sum(p.stat().st_size for p, _ in files)
    with progress(total, f"Hashing {path.name}", unit="bytes", quiet=quiet) as bar:
        # Data follows the store's durability setting: by default both survive a crash of
        # the process (bytes are in the OS); with sqlite_synchronous = "full" both also
        # survive power loss, and an add waits for the disk.
        flush = project.settings.sqlite_synchronous == "full"
        entries = chunk_files(project.objects, files, on_done=lambda e: bar.advance(e.size),
                              flush=flush, previous=previous)
    return kind, entries


def insert_version(project: Project, name: str, *, kind: str, tree: str, source: str,
                   entries: list[FileEntry], extra: dict[str, Any]) -> DatasetVersion:
    """Record a new version (the next number) in one write transaction.

    SQLite serialises writers, so the number is always free; on PostgreSQL two adds of
    the same dataset can race for it, and the loser simply takes the next number.
    """
    store = project.store
    now = now_ms()
    attempts = 5
    for attempt in range(attempts):
        try:
            with store.write() as conn:
                conn.execute(store.insert(datasets).values(id=new_id(), name=name,
                                                           created_at=now)
                             .on_conflict_do_nothing())
                ds_id = conn.execute(select(datasets.c.id)
                                     .where(datasets.c.name == name)).scalar_one()
                last = conn.execute(select(func.max(dataset_versions.c.version))
                                    .where(dataset_versions.c.dataset_id == ds_id)).scalar()
                row = {"dataset_id": ds_id, "version": (last or 0) + 1, "tree": tree,
                       "kind": kind, "source_path": source,
                       "size": sum(e.size for e in entries), "files": len(entries),
                       "created_at": now, **extra}
                conn.execute(dataset_versions.insert().values(**row))
            return get(project, f"{name}@{row['version']}")
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("the loop returns or raises")


def tag(project: Project, ref: str, tag_name: str) -> DatasetVersion:
    """Point ``tag_name`` at a version (moving it if it pointed elsewhere)."""
    check_name(tag_name, "tag")
    if tag_name.isdigit():
        raise InvalidInputError(f"Tag {tag_name!r} would read as a version number; use a word.")
    version = get(project, ref)
    store = project.store
    with store.write() as conn:
        ds_id = conn.execute(select(datasets.c.id).where(datasets.c.name == version.name)).scalar()
        stmt = store.insert(dataset_tags).values(dataset_id=ds_id, tag=tag_name,
                                                 version=version.version)
        conn.execute(stmt.on_conflict_do_update(index_elements=["dataset_id", "tag"],
                                                set_={"version": version.version}))
    return get(project, f"{version.name}@{tag_name}")


def rollback(project: Project, name: str, version: int, *, user: str | None = None,
             command: str | None = None) -> DatasetVersion:
    """A new version of ``name`` with the content of ``version``; history is kept."""
    old = get(project, f"{name}@{version}")
    entries = read_tree(project, old)
    return insert_version(project, name, kind=old.kind, tree=old.tree, source=old.source_path,
                          entries=entries, extra={
        "rows": old.rows, "stats": dumps(old.stats) if old.stats else None,
        "message": f"rollback to version {version}", "user": user, "command": command})
