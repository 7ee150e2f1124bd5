"""Datasets and their versions: add, resolve, list, tag, roll back.

A version is immutable: its row points at a *tree* blob (the sorted list of files with
their chunk lists) in the object store. Adding content that equals the latest version
makes no new version. Rolling back makes a new version with an old tree, so history is
never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.progress import progress
from mloop.core.text import check_text
from mloop.core.uris import check_name
from mloop.data.catalog import collect, get, read_tree
from mloop.data.chunks import FileEntry, chunk_files
from mloop.data.model import DatasetVersion, dumps, encode_tree
from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.store.schema import dataset_tags, dataset_versions, datasets

MAX_PATH = 1000  # stat_cache.path and dataset_versions.source_path hold project paths


def store_tree(project: Project, kind: str, entries: list[FileEntry]) -> str:
    """Store the version's file list; returns its digest."""
    tree = {"kind": kind, "files": [e.to_json() for e in sorted(entries, key=lambda e: e.path)]}
    return project.objects.put_bytes(encode_tree(tree))


def snapshot(project: Project, path: Path, *, quiet: bool = False,
             previous: Iterable[FileEntry] = (),
             source: str = "") -> tuple[str, list[FileEntry]]:
    """Chunk and store every file under ``path``; returns (kind, entries).

    ``previous``: the entries of the version this one follows (small files that did not
    change keep their place in its packs). ``source``: the project path of ``path``; each
    file's project path must be text both databases store (checked before anything is
    written).
    """
    kind, files = collect(path)
    for _, rel in files:  # the stat cache keeps project paths: String(1000), valid text
        check_text(f"{source}/{rel}" if kind == "folder" else source or rel, "path", MAX_PATH)
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
