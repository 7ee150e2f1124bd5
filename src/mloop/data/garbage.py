"""What the metadata store points at in the object store, and ``mloop data gc``.

Referenced: every dataset version's tree, chunks and distribution profile, every run
artifact, every stored git diff, every evaluation report, every pipeline output and step
log (a model output is its run's artifacts: its digest fingerprints them, it is no blob).
:func:`references` is the one reachability walk: ``gc`` deletes what it does not reach,
``mloop fsck`` (:mod:`mloop.data.fsck`) reports what it reaches but cannot find.

A blob younger than the grace period is never deleted, so a ``data add`` running at the
same moment (its chunks are written before its version row commits) keeps everything it
needs. Temporary files that writers left behind (killed, or stopped by a full disk) are
deleted once they have not changed for :data:`TEMP_GRACE_SECONDS`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from mloop.data.model import decode_tree
from mloop.errors import MloopError
from mloop.objects import LocalObjectStore
from mloop.pipelines.values import ValueRef
from mloop.project import Project
from mloop.repositories import backend

GRACE_SECONDS = 3600
TEMP_GRACE_SECONDS = 900  # a temp file untouched this long belongs to no live writer


@dataclass(frozen=True)
class GCResult:
    kept: int
    deleted: int
    freed_bytes: int
    temp_files: int = 0  # stale temporary files removed (or that would be)
    temp_bytes: int = 0


@dataclass
class References:
    """Every blob the store points at, each with one thing that needs it (for reports).

    ``unreadable``: containers (a version's tree, a stage's file manifest) that are
    missing or corrupt, so the blobs they list are not in ``blobs``.
    """

    blobs: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    def add(self, digest: str | None, owner: str) -> None:
        if digest:
            self.blobs.setdefault(digest, owner)


def references(project: Project, *, strict: bool = True) -> References:
    """Walk the metadata store (and the trees and manifests it names) for referenced blobs.

    ``strict`` (gc): a corrupt tree or manifest raises, since the blobs it lists cannot
    be told from garbage; otherwise (fsck) it is recorded in ``unreadable``.
    """
    refs = References()
    repos = backend(project)
    for name, version, profile in repos.datasets.profiles():
        refs.add(profile, f"data:/{name}@{version} (profile)")
    rows = repos.blob_references.rows()
    for digest, owner in rows.blobs:
        refs.add(digest, owner)
    for owner, text in rows.outputs:  # pipeline values, and the files a stage's outputs hold
        for data in json.loads(text or "{}").values():
            ref = ValueRef.from_dict(data)
            refs.add(ref.blob, owner)  # a model's files: its run's artifacts, in rows.blobs
            if ref.kind == "files":
                manifest = _read_json(project, ref.digest, owner, refs, strict) or {}
                files = manifest.get("files", manifest)
                for f in files.values() if isinstance(files, dict) else ():
                    if isinstance(f, dict) and "digest" in f:
                        refs.add(f["digest"], owner)
    for name, version, tree in repos.datasets.trees():
        owner = f"data:/{name}@{version}"
        refs.add(tree, owner)
        data = _read(project, tree, owner, refs, strict)
        if data is not None:
            for f in decode_tree(data)["files"]:
                for chunk in f["chunks"]:
                    refs.add(chunk[0], owner)
    return refs


def _read(project: Project, digest: str, owner: str, refs: References,
          strict: bool) -> bytes | None:
    """A container's bytes; ``None`` when it is missing (or, not strict, corrupt)."""
    if not project.objects.exists(digest):
        refs.unreadable[digest] = owner
        return None
    try:
        return project.objects.get_bytes(digest)
    except MloopError:  # corrupt: what it lists is unknown
        if strict:
            raise
        refs.unreadable[digest] = owner
        return None


def _read_json(project: Project, digest: str, owner: str, refs: References,
               strict: bool) -> dict[str, object] | None:
    data = _read(project, digest, owner, refs, strict)
    return None if data is None else dict(json.loads(data))


def referenced(project: Project) -> set[str]:
    """Every blob digest the metadata store points at."""
    return set(references(project).blobs)


def gc(project: Project, *, dry_run: bool = False, grace_seconds: int = GRACE_SECONDS,
       temp_grace_seconds: int = TEMP_GRACE_SECONDS) -> GCResult:
    """Remove unreferenced blobs older than ``grace_seconds`` and stale temp files."""
    keep = referenced(project)
    objects = project.objects
    cutoff = time.time() - grace_seconds
    deleted = freed = kept = 0
    for digest in list(objects.iter_digests()):
        if digest in keep:
            kept += 1
            continue
        if isinstance(objects, LocalObjectStore) and objects.path(digest).stat().st_mtime > cutoff:
            kept += 1  # too young: may belong to an add still in progress
            continue
        size = objects.size(digest)
        if not dry_run:
            objects.delete(digest)
        deleted += 1
        freed += size
    temp = temp_bytes = 0
    if isinstance(objects, LocalObjectStore):
        if dry_run:
            stale = [st.st_size for _, st in objects.temp_files()
                     if st.st_mtime < time.time() - temp_grace_seconds]
            temp, temp_bytes = len(stale), sum(stale)
        else:
            temp, temp_bytes = objects.remove_stale_temp(temp_grace_seconds)
    return GCResult(kept, deleted, freed, temp, temp_bytes)
