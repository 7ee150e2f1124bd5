"""Content-defined chunking: files cut where their content says, so an edit moves few cuts.

FastCDC (Xia et al., USENIX ATC 2016) with a 64 KiB average chunk, via pyfastcdc. Each
chunk is stored once in the object store under its BLAKE3 digest; a file is its ordered
list of chunks. Inserting or appending bytes changes the chunks around the edit only,
so a new version of a large file costs about the size of the change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mloop.core.hashing import hash_bytes, new_hasher
from mloop.errors import CorruptObjectError
from mloop.objects import ObjectStore

AVG_CHUNK = 64 * 1024
MIN_CHUNK = 16 * 1024
MAX_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a dataset version: where it goes, its bytes' digest, its chunks."""

    path: str  # relative, POSIX
    size: int
    digest: str  # BLAKE3 of the whole file
    chunks: tuple[tuple[str, int], ...]  # (chunk digest, length), in order

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "digest": self.digest,
                "chunks": [list(c) for c in self.chunks]}

    @staticmethod
    def from_json(data: dict[str, object]) -> FileEntry:
        chunks = tuple((str(d), int(n)) for d, n in data["chunks"])  # type: ignore[attr-defined]
        return FileEntry(str(data["path"]), int(data["size"]),  # type: ignore[call-overload]
                         str(data["digest"]), chunks)


def _cutter() -> object:
    from pyfastcdc.cy import FastCDC

    return FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def chunk_file(objects: ObjectStore, path: Path, rel: str) -> FileEntry:
    """Cut ``path`` into chunks, store the missing ones, return its entry."""
    size = path.stat().st_size
    whole = new_hasher()
    chunks: list[tuple[str, int]] = []
    touch = getattr(objects, "touch", None)
    if size == 0:
        return FileEntry(rel, 0, whole.hexdigest(), ())
    for chunk in _cutter().cut_file(str(path)):  # type: ignore[attr-defined]
        data = bytes(chunk.data)
        whole.update(data)
        digest = hash_bytes(data)
        if not objects.exists(digest):
            objects.put_bytes(data)
        elif touch is not None:
            touch(digest)  # a concurrent gc must see this chunk as in use
        chunks.append((digest, len(data)))
    return FileEntry(rel, size, whole.hexdigest(), tuple(chunks))


def chunk_files(objects: ObjectStore, files: Iterable[tuple[Path, str]],
                on_done: object = None) -> list[FileEntry]:
    """Chunk several files over all cores (BLAKE3 and file I/O release the GIL)."""
    items = list(files)
    workers = min(8, (os.cpu_count() or 2), max(1, len(items)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(chunk_file, objects, p, rel) for p, rel in items]
        out = []
        for fut in futures:
            entry = fut.result()
            if callable(on_done):
                on_done(entry)
            out.append(entry)
    return out


def restore_file(objects: ObjectStore, entry: FileEntry, dest: Path) -> None:
    """Write ``entry``'s bytes to ``dest`` atomically, verifying every chunk and the whole."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.mloop-tmp")
    whole = new_hasher()
    try:
        with open(tmp, "wb") as f:
            for digest, _n in entry.chunks:
                data = objects.get_bytes(digest)  # verified against its digest
                whole.update(data)
                f.write(data)
        if whole.hexdigest() != entry.digest:
            raise CorruptObjectError(f"Restored bytes of {entry.path} do not match the version's "
                                     "digest; nothing was replaced. Pull the data again.")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
