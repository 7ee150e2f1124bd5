"""Datasets and their versions: add, resolve, list, tag, roll back.

A version is immutable: its row points at a *tree* blob (the sorted list of files with
their chunk lists) in the object store. Adding content that equals the latest version
makes no new version. Rolling back makes a new version with an old tree, so history is
never rewritten.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.progress import progress
from mloop.core.text import check_text
from mloop.core.uris import check_name
from mloop.data.catalog import get, read_tree, scan
from mloop.data.chunks import FileEntry, chunk_files
from mloop.data.model import DatasetVersion, dumps, encode_tree
from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.store.lite import lite

MAX_PATH = 1000  # stat_cache.path and dataset_versions.source_path hold project paths


def store_tree(project: Project, kind: str, entries: list[FileEntry]) -> str:
    """Store the version's file list; returns its digest."""
    tree = {"kind": kind, "files": [e.to_json() for e in sorted(entries, key=lambda e: e.path)]}
    return project.objects.put_bytes(encode_tree(tree))


Stat = tuple[int, int, int]  # (size, mtime_ns, inode) of a file when it was read


def snapshot(project: Project, path: Path, *, quiet: bool = False,
             previous: Iterable[FileEntry] = (),
             source: str = "") -> tuple[str, list[FileEntry], dict[str, Stat]]:
    """Chunk and store every file under ``path``; returns (kind, entries, stats).

    ``previous``: the entries of the version this one follows (small files that did not
    change keep their place in its packs). ``source``: the project path of ``path``; each
    file's project path must be text both databases store (checked before anything is
    written). ``stats``: each file's stat, taken once (by the walk) before it was read:
    what the stat cache keeps, so that a file edited while it was read is hashed again.
    """
    kind, files = scan(path)
    for _, rel, _ in files:  # the stat cache keeps project paths: String(1000), valid text
        check_text(f"{source}/{rel}" if kind == "folder" else source or rel, "path", MAX_PATH)
    sizes = [st.st_size for _, _, st in files]
    with progress(sum(sizes), f"Hashing {path.name}", unit="bytes", quiet=quiet) as bar:
        # Data follows the store's durability setting: by default both survive a crash of
        # the process (bytes are in the OS); with sqlite_synchronous = "full" both also
        # survive power loss, and an add waits for the disk.
        flush = project.settings.sqlite_synchronous == "full"
        entries = chunk_files(project.objects, [(full, rel) for full, rel, _ in files],
                              on_done=lambda e: bar.advance(e.size), flush=flush,
                              previous=previous, sizes=sizes)
    stats = {rel: (st.st_size, st.st_mtime_ns, st.st_ino) for _, rel, st in files}
    return kind, entries, stats


_NEW_DATASET = ("INSERT INTO datasets (id, name, created_at) VALUES (:id, :name, :now) "
                "ON CONFLICT (name) DO NOTHING")
_NEW_VERSION = ("INSERT INTO dataset_versions (dataset_id, version, tree, kind, source_path, "
                'size, files, "rows", stats, validation, message, "user", command, created_at) '
                "VALUES (:dataset_id, :version, :tree, :kind, :source_path, :size, :files, "
                ":rows, :stats, :validation, :message, :user, :command, :created_at)")


def insert_version(project: Project, name: str, *, kind: str, tree: str, source: str,
                   entries: list[FileEntry], extra: dict[str, Any]) -> DatasetVersion:
    """Record a new version (the next number) in one write transaction.

    Plain SQL (:mod:`mloop.store.lite`): an add imports no SQLAlchemy on SQLite. SQLite
    serialises writers, so the number is always free; on PostgreSQL two adds of the same
    dataset can race for it, and the loser simply takes the next number.
    """
    now = now_ms()
    attempts = 5
    for attempt in range(attempts):
        try:
            with lite(project).write() as q:
                q.many(_NEW_DATASET, [{"id": new_id(), "name": name, "now": now}])
                ds_id = q.all("SELECT id FROM datasets WHERE name = :name",
                              {"name": name})[0]["id"]
                last = q.all("SELECT MAX(version) AS last FROM dataset_versions "
                             "WHERE dataset_id = :ds", {"ds": ds_id})[0]["last"]
                row = {"dataset_id": ds_id, "version": (last or 0) + 1, "tree": tree,
                       "kind": kind, "source_path": source,
                       "size": sum(e.size for e in entries), "files": len(entries),
                       "created_at": now, "rows": None, "stats": None, "validation": None,
                       "message": None, "user": None, "command": None, **extra}
                q.many(_NEW_VERSION, [row])
            return get(project, f"{name}@{row['version']}")
        except Exception as exc:
            if not _is_integrity_error(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("the loop returns or raises")


def _is_integrity_error(exc: Exception) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    sa_exc = sys.modules.get("sqlalchemy.exc")  # loaded when the Store ran the statement
    return sa_exc is not None and isinstance(exc, sa_exc.IntegrityError)


def tag(project: Project, ref: str, tag_name: str) -> DatasetVersion:
    """Point ``tag_name`` at a version (moving it if it pointed elsewhere)."""
    from sqlalchemy import select

    from mloop.store.schema import dataset_tags, datasets

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
