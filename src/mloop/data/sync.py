"""``mloop data push`` and ``mloop data pull``: versions between a project and a remote.

Push sends the blobs of each version the remote lacks, then its record (number, author,
message, time, lineage; see :mod:`mloop.data.records`). Pull works from what git holds:
with no targets it reads every pointer file of the work tree (and the versions already
recorded here), fetches each tree and its chunks, records the versions under the names
and numbers the pointers say, and checks the files out, as ``dvc pull`` does. A path
that holds changes no version has is left alone and reported, never overwritten.

Blobs are content-addressed and written atomically, so an interrupted transfer leaves
nothing half-done; records are written after the blobs they need.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mloop.core.progress import progress
from mloop.core.uris import is_version, version_number
from mloop.data.catalog import get, list_datasets, log, parse_ref, source_paths, tree_digests
from mloop.data.model import DatasetVersion, VersionKind
from mloop.data.pointer import SUFFIX, find_pointers, pointer_path
from mloop.data.records import (
    RECORD_FOLDER,
    VersionRecord,
    blobs_of,
    conflict,
    from_tree,
    parse_record,
    pointer_target,
    profile_of,
    record_name,
    record_of,
    restore,
)
from mloop.data.remotes import open_remote
from mloop.data.workspace import CheckoutResult, checkout, current_digests
from mloop.errors import NotFoundError
from mloop.objects import ObjectStore
from mloop.project import Project

_WORKERS = 8


@dataclass(frozen=True)
class TransferResult:
    versions: int
    blobs: int
    sent: int
    bytes: int
    records: list[str] = field(default_factory=list)  # refs recorded there (push) or here
    checkouts: list[CheckoutResult] = field(default_factory=list)  # pull only
    kept: list[str] = field(default_factory=list)  # paths with local changes, not touched


@dataclass(frozen=True)
class _Wanted:
    """A version pull should bring: its number, its tree when known, and its pointer."""

    name: str
    version: int
    tree: str | None
    pointer: Path | None = None
    source: str | None = None  # where its pointer says the data goes

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def _versions(project: Project, refs: Iterable[str] | None) -> list[DatasetVersion]:
    if refs:
        return [get(project, r) for r in refs]
    return [v for latest in list_datasets(project) for v in log(project, latest.name)]


def _flush(project: Project) -> bool:
    return bool(project.settings.sqlite_synchronous == "full")


def _copy(src: ObjectStore, dst: ObjectStore, digests: set[str], what: str, *,
          quiet: bool, flush: bool) -> tuple[int, int]:
    missing = dst.missing(digests)
    total = 0
    with progress(len(missing), what, quiet=quiet) as bar, \
            ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        def one(digest: str) -> int:
            data = src.get_bytes(digest)  # verified before it travels
            dst.put_chunk(digest, data)  # bulk write; one sync below
            return len(data)

        for size in pool.map(one, sorted(missing)):
            total += size
            bar.advance()
    if flush:
        dst.sync()  # same durability policy as adds: see sqlite_synchronous
    else:
        dst.forget_unsynced()
    return len(missing), total


def _records(store: ObjectStore, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int],
                                                                       VersionRecord]:
    """The records ``store`` holds of ``keys`` (several fetched at a time)."""
    keys = sorted(set(keys))

    def one(key: tuple[str, int]) -> VersionRecord | None:
        name = record_name(*key)
        data = store.get_record(name)
        return None if data is None else parse_record(data, f"{store.url}: {name}")

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        found = list(pool.map(one, keys))
    return {k: r for k, r in zip(keys, found, strict=True) if r is not None}


def _present(store: ObjectStore, digests: set[str]) -> set[str]:
    return digests - store.missing(digests) if digests else set()


def push(project: Project, remote: str | None = None, refs: Iterable[str] | None = None,
         *, quiet: bool = False) -> TransferResult:
    """Send the blobs and records of every version (or of ``refs``) the remote lacks.

    A version whose number the remote already holds with other data is a
    :class:`ConflictError` before anything is sent."""
    dst = open_remote(project, remote)
    versions = _versions(project, refs)
    ours = [record_of(project, v) for v in versions]
    theirs = _records(dst, ((r.dataset, r.version) for r in ours))
    clashes = [(r, theirs[r.dataset, r.version]) for r in ours
               if (r.dataset, r.version) in theirs and theirs[r.dataset, r.version].tree != r.tree]
    if clashes:
        r, t = clashes[0]
        raise conflict(r.ref, r.tree, t.tree, f"on remote {remote or 'the default remote'}",
                       _push_fix(clashes))
    needed: set[str] = set()
    for v in versions:
        needed |= blobs_of(project.objects.get_bytes(v.tree), v.tree)
    needed |= _present(project.objects, {p for r in ours if (p := profile_of(r.stats))})
    sent, size = _copy(project.objects, dst, needed, "Pushing", quiet=quiet,
                       flush=_flush(project))
    written = []
    for r in ours:
        if (r.dataset, r.version) in theirs:
            continue
        there = dst.put_record(record_name(r.dataset, r.version), r.to_bytes())
        if there is not None:  # another clone pushed the same number just now
            other = parse_record(there, f"{dst.url}: {record_name(r.dataset, r.version)}")
            if other.tree != r.tree:
                raise conflict(r.ref, r.tree, other.tree, "on the remote", _push_fix([]))
        else:
            written.append(r.ref)
    return TransferResult(len(versions), len(needed), sent, size, records=written)


def _push_fix(clashes: list[tuple[VersionRecord, VersionRecord]]) -> str:
    refs = ", ".join(r.ref for r, _ in clashes[:5])
    return ((f"Clashing: {refs}. " if len(clashes) > 1 else "")
            + "Push the other versions by name (`mloop data push -r REMOTE REF…`), and "
            "share this data under another dataset name (`mloop data add PATH --name "
            "NEW-NAME`, then push).")


def pull(project: Project, remote: str | None = None, targets: Iterable[str] | None = None,
         *, quiet: bool = False) -> TransferResult:
    """Fetch what this project lacks, record the versions, check pointer paths out.

    ``targets``: pointer files, data paths (their pointer is beside them), or refs
    (``train@4``, ``train``: its latest version on the remote when none is here). With
    none: every pointer file of the work tree and every version recorded here.
    """
    src = open_remote(project, remote)
    where = f"on remote {remote}" if remote else "on the remote"
    wanted = _wanted(project, src, list(targets or ()))
    # a version recorded here and named by no pointer needs no record: it has its own
    records = _records(src, ((w.name, w.version) for w in wanted
                             if w.pointer is not None or w.tree is None))
    trees: dict[str, str] = {}
    for w in wanted:
        rec = records.get((w.name, w.version))
        tree = w.tree or (rec.tree if rec else None)
        if tree is None:
            raise NotFoundError(f"{w.ref} is not {where}: push it from the clone that made "
                                "it (`mloop data push`).")
        if rec is not None and rec.tree != tree:
            raise conflict(w.ref, tree, rec.tree, where,
                           f"{w.pointer or w.ref} names data another clone did not push; "
                           "ask whoever committed it to push, or restore the pointer file "
                           "from git.")
        trees[w.ref] = tree
        _check_local(project, w, tree)
    flush = _flush(project)
    got_trees, tree_bytes = _copy(src, project.objects, set(trees.values()), "Pulling trees",
                                  quiet=True, flush=flush)
    needed: set[str] = set()
    for tree in set(trees.values()):
        needed |= blobs_of(project.objects.get_bytes(tree), tree)
    stats = [r.stats for r in records.values()] + [v.stats for v in _local(project, wanted)]
    needed |= _present(src, {p for s in stats if (p := profile_of(s))})
    got, size = _copy(src, project.objects, needed, "Pulling", quiet=quiet, flush=flush)
    result = TransferResult(len(wanted), len(needed), got + got_trees, size + tree_bytes)
    for w in wanted:
        try:
            version = get(project, w.ref)  # checked against the tree above
        except NotFoundError:
            rec = records.get((w.name, w.version)) or from_tree(
                project, w.name, w.version, trees[w.ref], w.source or "")
            version, new = restore(project, rec, path=w.source, where=where)
            if new:
                result.records.append(version.ref)
        if w.pointer is None:
            continue
        local = w.pointer.with_name(w.pointer.name[:-len(SUFFIX)])
        if _local_changes(project, version, local):
            result.kept.append(version.source_path)
        else:
            result.checkouts.append(checkout(project, str(w.pointer)))
    return result


def _local(project: Project, wanted: list[_Wanted]) -> list[DatasetVersion]:
    """The versions of ``wanted`` recorded here already."""
    out = []
    for w in wanted:
        try:
            out.append(get(project, w.ref))
        except NotFoundError:
            continue
    return out


def _check_local(project: Project, w: _Wanted, tree: str) -> None:
    try:
        have = get(project, w.ref)
    except NotFoundError:
        return
    if have.tree != tree:
        raise conflict(w.ref, have.tree, tree, f"in {w.pointer}" if w.pointer else "there",
                       f"Keep both by versioning yours under another name "
                       f"(`mloop data add {have.source_path} --name {w.name}-mine`).")


def _wanted(project: Project, src: ObjectStore, targets: list[str]) -> list[_Wanted]:
    out: dict[str, _Wanted] = {}
    if not targets:
        pointers = set(find_pointers(project.root)) | {
            p for s in source_paths(project) if (p := pointer_path(project.root / s)).is_file()}
        for p in sorted(pointers):
            w = _from_pointer(project, p)
            out.setdefault(w.ref, w)
        for v in _versions(project, None):
            out.setdefault(v.ref, _Wanted(v.name, v.version, v.tree))
        return list(out.values())
    for target in targets:
        path = Path(target)
        pointer = path if target.endswith(SUFFIX) and path.is_file() else pointer_path(path)
        w = (_from_pointer(project, pointer) if pointer.is_file()
             else _from_ref(project, src, target))
        out.setdefault(w.ref, w)
    return list(out.values())


def _from_pointer(project: Project, pointer: Path) -> _Wanted:
    name, number, tree, source = pointer_target(project, pointer)
    return _Wanted(name, number, tree, pointer, source)


def _from_ref(project: Project, src: ObjectStore, ref: str) -> _Wanted:
    try:
        v = get(project, ref)
        return _Wanted(v.name, v.version, v.tree)
    except NotFoundError:
        pass
    uri = parse_ref(ref)
    if uri.ref is not None and is_version(uri.ref):
        return _Wanted(uri.name, version_number(uri.ref, ref), None)
    numbers = [int(n[:-5]) for n in src.list_records(f"{RECORD_FOLDER}/{uri.name}")
               if n.endswith(".json") and n[:-5].isascii() and n[:-5].isdigit()]
    if uri.ref in (None, "latest") and numbers:
        return _Wanted(uri.name, max(numbers), None)
    raise NotFoundError(f"Nothing to pull for {ref!r}: no pointer file, no version here, and "
                        + ("tags are not shared through remotes; name a number "
                           f"({uri.name}@N)." if uri.ref not in (None, "latest")
                           else f"no version of {uri.name!r} on the remote."))


def _local_changes(project: Project, version: DatasetVersion, local: Path) -> bool:
    """Whether ``local`` holds bytes no version of its dataset had (edits not added):
    pull does not overwrite those; ``mloop data checkout`` does when asked."""
    if not local.exists():
        return False
    want = {(p if version.kind == VersionKind.FOLDER else local.name): d
            for p, d in tree_digests(project, version)}
    now = current_digests(project, local, version.source_path) or {}
    changed = {k: d for k, d in now.items() if k in want and want[k] != d}
    if not changed:
        return False
    known: dict[str, set[str]] = {}
    for old in log(project, version.name):
        if project.objects.exists(old.tree):
            for p, d in tree_digests(project, old):
                known.setdefault(p if old.kind == VersionKind.FOLDER else local.name, set()).add(d)
    return any(d not in known.get(k, set()) for k, d in changed.items())
