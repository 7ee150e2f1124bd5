"""``mloop data checkout`` and ``mloop data status``: the working copy against versions.

A stat cache remembers (size, mtime, inode) → digest for every file mloop hashed or
wrote, so status and checkout skip unchanged files without reading them. Checkout writes
copies (temp file → rename), never links into the store, so editing a checked-out file
cannot corrupt stored chunks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from mloop.core.hashing import hash_file
from mloop.core.paths import safe_join
from mloop.data.catalog import (
    POINTER_SUFFIX,
    cached_stats,
    get,
    list_datasets,
    project_relpath,
    read_tree,
    scan,
    source_paths,
    tree_digests,
)
from mloop.data.chunks import PATCH_MIN_SIZE, FileEntry, patch_file, restore_file
from mloop.data.model import DatasetVersion, VersionKind
from mloop.data.pointer import find_pointers, pointer_path, read_pointer, write_pointer
from mloop.errors import InvalidInputError, NotFoundError
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.datasets import StatEntry


def _stat_key(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def remember_stats(project: Project, local: Path, source: str, kind: str,
                   entries: list[FileEntry], *,
                   stats: dict[str, tuple[int, int, int]] | None = None) -> None:
    """Record the stat of each file just hashed or written, keyed by project path.

    ``stats``: (size, mtime_ns, inode) by path inside the version, taken before the
    files were read (``data add``); else each file is stat'ed now.
    """
    rows: list[StatEntry] = []
    for e in entries:
        rel = source if kind == VersionKind.FILE else f"{source}/{e.path}"
        size, mtime, ino = (stats[e.path] if stats is not None else
                            _stat_key(local if kind == VersionKind.FILE else local / e.path))
        rows.append(StatEntry(rel, size, mtime, ino, e.digest))
    backend(project).stat_cache.save(rows)


def current_digests(project: Project, local: Path, source: str, *,
                    cached_only: bool = False) -> dict[str, str] | None:
    """Digest of every file under ``local`` now; unchanged files are not re-read.

    With ``cached_only``, returns ``None`` as soon as one file would have to be read.
    """
    try:
        kind, files = scan(local)
    except InvalidInputError:
        return {}
    prefix = "" if kind == VersionKind.FILE else f"{source}/"
    cache = cached_stats(project, [source] if kind == VersionKind.FILE else
                         [prefix + inner for _, inner, _ in files])
    out: dict[str, str] = {}
    fresh: list[StatEntry] = []
    for full, inner, st in files:
        rel = source if kind == VersionKind.FILE else prefix + inner
        hit = cache.get(rel)
        if hit is not None and hit[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
            out[inner] = hit[3]
        elif cached_only:
            return None
        else:
            out[inner] = digest = hash_file(full)
            fresh.append(StatEntry(rel, st.st_size, st.st_mtime_ns, st.st_ino, digest))
    backend(project).stat_cache.save(fresh)
    return out


@dataclass
class CheckoutResult:
    version: DatasetVersion
    path: Path
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    extra: list[str] = field(default_factory=list)  # files present that the version lacks


def checkout(project: Project, ref: str, path: str | Path | None = None) -> CheckoutResult:
    """Make ``path`` (default: where the version was added from) hold exactly its bytes.

    A file version checked out to an existing folder lands in it under its own name.
    Files that already match are left alone; others are rewritten atomically from
    verified chunks. Files in a folder that the version does not have are reported in
    ``extra``, not deleted.
    """
    if ref.endswith(POINTER_SUFFIX) and Path(ref).is_file():  # `checkout data/x.csv.mloop`
        pointer = read_pointer(Path(ref))
        ref, path = f"{pointer['dataset']}@{pointer['version']}", ref[:-len(POINTER_SUFFIX)]
    version = get(project, ref)
    home = project.root / version.source_path
    local = Path(path) if path is not None else home
    if version.kind == VersionKind.FILE and path is not None and (
            local.name == "" or local.is_dir()):
        local = local / home.name  # a file checked out into a folder, as cp does
    tracked = local.resolve() == home.resolve()  # a copy elsewhere gets no pointer
    try:
        source: str | None = project_relpath(project, local)
    except InvalidInputError:
        source = None  # outside the project: restored, but not cached or tracked
    entries = read_tree(project, version)
    have = (current_digests(project, local, source) or {}
            if source is not None and local.exists() else {})
    result = CheckoutResult(version, local)
    todo = [e for e in entries if have.get(_key(version, local, e)) != e.digest]
    result.unchanged = len(entries) - len(todo)
    # Large files the working copy holds a known version of are patched chunk by chunk.
    previous = _checked_out(project, local, version.kind, have) if tracked and todo else {}
    patchable = [e for e in todo
                 if e.size >= PATCH_MIN_SIZE and _key(version, local, e) in previous]
    if patchable and source is not None:  # an interrupted patch must not look clean
        _forget_stats(project, [_rel(source, version.kind, e) for e in patchable])
    packs: dict[str, bytes] = {}  # small files share pack blobs: read each once
    for entry in todo:
        dest = local if version.kind == VersionKind.FILE else safe_join(local, entry.path)
        old = previous.get(_key(version, local, entry))
        if old is None or not patch_file(project.objects, old, entry, dest):
            restore_file(project.objects, entry, dest, packs)
        result.written.append(entry.path)
    if version.kind == VersionKind.FOLDER:
        wanted = {e.path for e in entries}
        result.extra = sorted(p for p in have if p not in wanted)
    if source is not None:
        remember_stats(project, local, source, version.kind, entries)
    if tracked:
        write_pointer(local, version)
    return result


def _key(version: DatasetVersion, local: Path, entry: FileEntry) -> str:
    return entry.path if version.kind == VersionKind.FOLDER else local.name


def _rel(source: str, kind: str, entry: FileEntry) -> str:
    return source if kind == VersionKind.FILE else f"{source}/{entry.path}"


def _checked_out(project: Project, local: Path, kind: str,
                 have: dict[str, str]) -> dict[str, FileEntry]:
    """Entries (with chunk lists) of the files that still hold the version the pointer
    names, keyed as ``have``: what a patch can start from."""
    pointer = pointer_path(local)
    if not pointer.is_file():
        return {}
    body = read_pointer(pointer)
    try:
        current = get(project, f"{body['dataset']}@{body['version']}")
    except NotFoundError:
        return {}
    if current.kind != kind:
        return {}
    entries = {(e.path if kind == VersionKind.FOLDER else local.name): e
               for e in read_tree(project, current)}
    return {k: e for k, e in entries.items() if have.get(k) == e.digest}


def _forget_stats(project: Project, paths: list[str]) -> None:
    backend(project).stat_cache.forget(paths)


class PathState(enum.StrEnum):
    """Whether a tracked path holds the version its pointer names."""

    CLEAN = "clean"
    MODIFIED = "modified"
    MISSING = "missing"


@dataclass(frozen=True)
class PathStatus:
    dataset: str
    version: int
    path: str
    state: PathState
    changed: list[str]


def status(project: Project) -> list[PathStatus]:
    """For each tracked path: does it still hold the version its pointer names?

    The pointer (``PATH.mloop``) says which version is checked out there; without one,
    the dataset's latest version is the reference.
    """
    out = []
    for latest in list_datasets(project):
        local = project.root / latest.source_path
        pointer = pointer_path(local)
        version = latest
        if pointer.is_file():
            body = read_pointer(pointer)
            version = get(project, f"{body['dataset']}@{body['version']}")
        if not local.exists():
            out.append(PathStatus(version.name, version.version, version.source_path,
                                  PathState.MISSING, []))
            continue
        entries = {(path if version.kind == VersionKind.FOLDER else local.name): digest
                   for path, digest in tree_digests(project, version)}
        now = current_digests(project, local, version.source_path) or {}
        changed = [] if entries == now else sorted(
            k for k in entries.keys() | now.keys() if entries.get(k) != now.get(k))
        out.append(PathStatus(version.name, version.version, version.source_path,
                              PathState.MODIFIED if changed else PathState.CLEAN, changed))
    return out



def _recorded(project: Project, pointer: Path) -> bool:
    """Whether the version ``pointer`` names is recorded here (and is that data), or can
    be recorded from blobs already here. The usual case, a known version, reads the
    store through ``store.lite`` only: no SQLAlchemy, no pydantic."""
    body = read_pointer(pointer)
    try:
        have = get(project, f"{body['dataset']}@{body['version']}")
    except NotFoundError:
        have = None
    if have is not None and body.get("tree") in (None, have.tree):
        return True
    from mloop.data.records import known_version  # records or raises the conflict

    return known_version(project, pointer) is not None


def checkout_pointers(project: Project) -> list[CheckoutResult]:
    """Restore every tracked path to the version its pointer file names.

    This is the step after ``git checkout <commit>`` or ``git clone``: the pointers came
    with the commit, and this brings back the data they mean. Every pointer file of the
    work tree counts; a version not recorded here is recorded from its pointer when its
    tree and chunks are here (else nothing is written, and the error says to pull).
    """
    pointers = set(find_pointers(project.root)) | {
        p for s in source_paths(project) if (p := pointer_path(project.root / s)).is_file()}
    missing = [p for p in sorted(pointers) if not _recorded(project, p)]
    if missing:
        shown = ", ".join(project_relpath(project, p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFoundError(f"The data of {len(missing)} pointer file(s) is not here: "
                            f"{shown}{more}. Fetch it with `mloop data pull` (it records the "
                            "versions and checks the files out).")
    return [checkout(project, str(p)) for p in sorted(pointers)]
