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

from mloop.core.clock import now_ms
from mloop.core.progress import progress
from mloop.core.text import check_text
from mloop.core.uris import check_name
from mloop.data.catalog import get, read_tree, scan
from mloop.data.chunks import FileEntry, chunk_files
from mloop.data.model import DatasetVersion, VersionKind, encode_tree
from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.datasets import NewVersion

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
        check_text(f"{source}/{rel}" if kind == VersionKind.FOLDER else source or rel, "path",
                   MAX_PATH)
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


def insert_version(project: Project, name: str, *, kind: str, tree: str, source: str,
                   entries: list[FileEntry], extra: dict[str, Any]) -> DatasetVersion:
    """Record a new version (the next number) in one write transaction.

    ``extra``: the other fields of :class:`NewVersion` (rows, stats, message, user …).
    Plain SQL (:mod:`mloop.repositories.datasets`): an add imports no SQLAlchemy on SQLite.
    """
    number = backend(project).datasets.add_version(name, NewVersion(
        tree=tree, kind=kind, source_path=source, size=sum(e.size for e in entries),
        files=len(entries), created_at=now_ms(), **extra))
    return get(project, f"{name}@{number}")


def tag(project: Project, ref: str, tag_name: str) -> DatasetVersion:
    """Point ``tag_name`` at a version (moving it if it pointed elsewhere)."""
    check_name(tag_name, "tag")
    if tag_name.isdigit():
        raise InvalidInputError(f"Tag {tag_name!r} would read as a version number; use a word.")
    version = get(project, ref)
    backend(project).datasets.tag(version.name, version.version, tag_name)
    return get(project, f"{version.name}@{tag_name}")


def rollback(project: Project, name: str, version: int, *, user: str | None = None,
             command: str | None = None) -> DatasetVersion:
    """A new version of ``name`` with the content of ``version``; history is kept."""
    old = get(project, f"{name}@{version}")
    entries = read_tree(project, old)
    return insert_version(project, name, kind=old.kind, tree=old.tree, source=old.source_path,
                          entries=entries, extra={
        "rows": old.rows, "stats": old.stats,
        "message": f"rollback to version {version}", "user": user, "command": command})
