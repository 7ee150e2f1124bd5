"""Rebuilding lost or damaged blobs of dataset versions from the files in the project.

A version's tree says, for each file, which slice of which blob holds each of its
chunks: ``(blob, length, offset)``. When the file in the working copy still holds the
version's bytes, every slice can be read back from it; a blob whose slices are all
found is rebuilt byte for byte and kept only when it hashes to its name. So deleting or
corrupting a chunk, a pack of small files or a pack of a large file's chunks is undone
by the files themselves — by ``mloop data add`` of the unchanged file, and by
``mloop fsck --repair`` — without asking a remote.

A blob that held bytes of files no longer in the working copy cannot be rebuilt this
way; a remote may still have it (``mloop fsck --repair`` asks the data remotes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mloop.core.hashing import hash_bytes
from mloop.core.paths import safe_join
from mloop.data.chunks import FileEntry
from mloop.data.model import DatasetVersion, VersionKind
from mloop.errors import MloopError
from mloop.objects import LocalObjectStore, ObjectStore
from mloop.project import Project


@dataclass(frozen=True, slots=True)
class _Slice:
    offset: int  # in the blob
    length: int
    path: Path  # the working-copy file holding these bytes
    at: int  # offset in that file


def expected_sizes(entries: Iterable[FileEntry]) -> dict[str, int]:
    """Each blob the entries use → the least size it must have (its last slice's end)."""
    sizes: dict[str, int] = {}
    for entry in entries:
        for blob, length, offset in entry.chunks:
            sizes[blob] = max(sizes.get(blob, 0), offset + length)
    return sizes


def damaged(objects: ObjectStore, entries: Iterable[FileEntry]) -> set[str]:
    """Blobs the entries use that are missing or too short: an existence check (and, on a
    local store, a stat) per blob, never a read — cheap enough for every ``data add``."""
    sizes = expected_sizes(entries)
    bad = objects.missing(sizes)
    if isinstance(objects, LocalObjectStore):
        for blob, size in sizes.items():
            if blob not in bad:
                try:
                    if objects.path(blob).stat().st_size < size:
                        bad.add(blob)
                except FileNotFoundError:
                    bad.add(blob)
    return bad


def replace_blob(objects: ObjectStore, digest: str, data: bytes) -> None:
    """Store ``data`` (verified to hash to ``digest``) in place of a missing or bad blob."""
    if hash_bytes(data) != digest:
        raise ValueError(f"bytes do not hash to {digest[:12]}…")
    if isinstance(objects, LocalObjectStore):
        objects.quarantine(digest)  # a damaged file is kept aside, not overwritten
    else:
        objects.delete(digest)
    objects.put_chunk(digest, data)
    objects.sync()


def _slices(project: Project, version: DatasetVersion, entries: list[FileEntry],
            wanted: set[str]) -> dict[str, list[_Slice]]:
    """The slices of ``wanted`` blobs that this version's working copy can give back."""
    from mloop.data.workspace import current_digests

    local = project.root / version.source_path
    needs = [e for e in entries if any(c[0] in wanted for c in e.chunks)]
    if not needs or not local.exists():
        return {}
    try:  # which files still hold the version's bytes (stat cache first, else hashed)
        now = current_digests(project, local, version.source_path) or {}
    except (MloopError, OSError):
        return {}
    out: dict[str, list[_Slice]] = {}
    for entry in needs:
        key = entry.path if version.kind == VersionKind.FOLDER else local.name
        if now.get(key) != entry.digest:
            continue
        path = safe_join(local, entry.path) if version.kind == VersionKind.FOLDER else local
        at = 0
        for blob, length, offset in entry.chunks:
            if blob in wanted:
                out.setdefault(blob, []).append(_Slice(offset, length, path, at))
            at += length
    return out


def _assemble(blob: str, slices: list[_Slice]) -> bytes | None:
    """The blob's bytes from its slices, when they cover it and hash to its name."""
    size = max(s.offset + s.length for s in slices)
    data = bytearray(size)
    covered = 0
    for s in sorted(slices, key=lambda s: s.offset):
        if s.offset > covered:
            return None  # a gap: bytes of a file that is not in the working copy
        with open(s.path, "rb") as f:
            f.seek(s.at)
            part = f.read(s.length)
        if len(part) != s.length:
            return None
        data[s.offset:s.offset + s.length] = part
        covered = max(covered, s.offset + s.length)
    return bytes(data) if hash_bytes(bytes(data)) == blob else None


def rebuild(project: Project, wanted: set[str],
            versions: Iterable[tuple[DatasetVersion, list[FileEntry]]]) -> dict[str, str]:
    """Rebuild ``wanted`` blobs from the working copies of ``versions`` (each with its
    entries); returns blob → the version it was rebuilt from."""
    found: dict[str, list[_Slice]] = {}
    source: dict[str, str] = {}
    for version, entries in versions:
        for blob, parts in _slices(project, version, entries, wanted).items():
            found.setdefault(blob, []).extend(parts)
            source.setdefault(blob, version.uri)
    done: dict[str, str] = {}
    for blob, parts in found.items():
        with contextlib.suppress(OSError):
            data = _assemble(blob, parts)
            if data is not None:
                replace_blob(project.objects, blob, data)
                done[blob] = source[blob]
    return done
