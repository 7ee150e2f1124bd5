"""``mloop fsck``: is every blob intact, and is every blob the store needs there?

* every stored blob is read and hashed: one whose bytes no longer hash to its name is
  **corrupt**;
* every blob the metadata store points at (the one walk of :mod:`.garbage`) must be
  stored: one that is not is **missing**; a tree or file manifest that is missing or
  corrupt hides what it lists until it is back;
* blobs nothing points at are **orphans**: not a problem (``mloop data gc`` removes
  them), only counted.

With ``repair``: corrupt blobs are moved aside to ``<objects>/quarantine/`` (never
deleted), then each missing or corrupt blob the store needs is rebuilt from the
project's files when a dataset's working copy still holds its bytes
(:mod:`.repair`), else fetched, verified, from the first data remote that has it.
What that brings back (a tree) is walked again. The result says what was repaired and
what remains: the CLI exits 5 while problems remain, 0 when the store is whole.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from mloop.core.hashing import hash_file
from mloop.core.progress import progress
from mloop.data.catalog import list_datasets, log, read_tree
from mloop.data.garbage import References, references
from mloop.data.repair import rebuild, replace_blob
from mloop.errors import MloopError
from mloop.objects import LocalObjectStore, ObjectStore
from mloop.project import Project

_MAX_ROUNDS = 5  # restored trees can reveal more needed blobs; a few rounds settle it


@dataclass
class Problem:
    """One blob that is not as it should be."""

    digest: str
    kind: str  # corrupt | missing
    needed_by: str | None  # what references it (None: an orphan that is corrupt)
    repaired: str | None = None  # how: "working copy data:/x@1", "remote origin"
    quarantined: str | None = None  # where the corrupt file went

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "kind": self.kind, "needed_by": self.needed_by,
                "repaired": self.repaired, "quarantined": self.quarantined}


@dataclass
class FsckResult:
    """What ``fsck`` found (and repaired)."""

    objects: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    orphans: int = 0
    orphan_bytes: int = 0

    @property
    def remaining(self) -> list[Problem]:
        """Problems not repaired: what makes the store incomplete or untrustworthy."""
        return [p for p in self.problems if p.repaired is None and p.needed_by is not None]

    @property
    def ok(self) -> bool:
        return not self.remaining

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "objects": self.objects, "bytes": self.bytes,
                "orphans": {"count": self.orphans, "bytes": self.orphan_bytes},
                "problems": [p.to_dict() for p in self.problems],
                "remaining": len(self.remaining)}


def fsck(*, repair: bool = False, project: Project | None = None) -> FsckResult:
    """Check every stored blob against its hash and every blob the store needs; with
    ``repair``, quarantine corrupt ones and restore what the project's files or a data
    remote can give back. ``result.ok`` is False while problems remain."""
    from mloop.project import current_project

    return check(project if project is not None else current_project(), repair=repair)


def check(project: Project, *, repair: bool = False, quiet: bool = False) -> FsckResult:
    """Verify the project's object store against its hashes and its metadata."""
    objects = project.objects
    corrupt, sizes = _verify(objects, quiet=quiet)
    refs = references(project, strict=False)
    result = FsckResult(objects=len(sizes), bytes=sum(sizes.values()))
    found: dict[str, Problem] = {}
    for digest in corrupt:
        found[digest] = Problem(digest, "corrupt", refs.blobs.get(digest))
    for digest, owner in refs.blobs.items():
        if digest not in sizes:
            found.setdefault(digest, Problem(digest, "missing", owner))
    if repair:
        _repair(project, found, refs)
    present = set(sizes) - set(corrupt)
    orphans = [d for d in present if d not in refs.blobs]
    result.orphans, result.orphan_bytes = len(orphans), sum(sizes[d] for d in orphans)
    result.problems = sorted(found.values(), key=lambda p: (p.kind, p.needed_by or "",
                                                           p.digest))
    return result


def _verify(objects: ObjectStore, *, quiet: bool) -> tuple[set[str], dict[str, int]]:
    """Hash every stored blob: (corrupt digests, size of every stored blob)."""
    digests = sorted(objects.iter_digests())
    sizes: dict[str, int] = {}
    for digest in digests:
        with contextlib.suppress(MloopError, OSError):  # gone meanwhile: it is missing
            sizes[digest] = objects.size(digest)
    corrupt: set[str] = set()
    with progress(sum(sizes.values()), "Verifying objects", unit="bytes",
                  quiet=quiet) as bar:
        for digest, size in sizes.items():
            if not _intact(objects, digest):
                corrupt.add(digest)
            bar.advance(size)
    return corrupt, sizes


def _intact(objects: ObjectStore, digest: str) -> bool:
    if isinstance(objects, LocalObjectStore):  # streamed: a 4 GB blob is not read at once
        try:
            return hash_file(objects.path(digest)) == digest
        except OSError:
            return False
    try:
        objects.get_bytes(digest)  # verifies
    except MloopError:
        return False
    return True


def _repair(project: Project, found: dict[str, Problem], refs: References) -> None:
    """Quarantine corrupt blobs, then bring back what the store needs, round by round."""
    objects = project.objects
    for p in found.values():
        if p.kind == "corrupt" and isinstance(objects, LocalObjectStore):
            where = objects.quarantine(p.digest)
            p.quarantined = str(where) if where else None
    for _ in range(_MAX_ROUNDS):
        wanted = {d for d, p in found.items() if p.needed_by and p.repaired is None}
        if not wanted:
            return
        done = rebuild(project, wanted, _versions(project))
        for digest, uri in done.items():
            found[digest].repaired = f"rebuilt from the working copy of {uri}"
        _from_remotes(project, found, wanted - set(done))
        if not any(d in refs.unreadable for d, p in found.items() if p.repaired):
            return
        # a tree or manifest came back: what it lists is needed now
        refs = references(project, strict=False)
        for digest, owner in refs.blobs.items():
            if digest not in found and not objects.exists(digest):
                found[digest] = Problem(digest, "missing", owner)


def _versions(project: Project) -> list[tuple[Any, list[Any]]]:
    """Every dataset version whose tree can be read, with its entries."""
    out = []
    for latest in list_datasets(project):
        for version in log(project, latest.name):
            with contextlib.suppress(MloopError):
                out.append((version, read_tree(project, version)))
    return out


def _from_remotes(project: Project, found: dict[str, Problem], wanted: set[str]) -> None:
    """Fetch (verified) what the data remotes have of ``wanted``."""
    from mloop.data.remotes import list_remotes, open_remote

    for remote in list_remotes(project):
        if not wanted:
            return
        try:
            store = open_remote(project, remote.name)
            have = wanted - store.missing(wanted)
        except Exception:  # unreachable or misconfigured, whatever the driver raises
            continue
        for digest in sorted(have):
            try:
                data = store.get_bytes(digest)  # verified against its name
            except Exception:  # corrupt there too, gone, or the link dropped
                continue
            replace_blob(project.objects, digest, data)  # a full disk is raised
            found[digest].repaired = f"fetched from remote {remote.name}"
            wanted.discard(digest)
