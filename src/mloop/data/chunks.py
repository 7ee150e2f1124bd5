"""Content-defined chunking: files cut where their content says, so an edit moves few cuts.

FastCDC (Xia et al., USENIX ATC 2016) with a 64 KiB average chunk, via pyfastcdc. Each
chunk is stored once in the object store under its BLAKE3 digest; a file is its ordered
list of chunks. Inserting or appending bytes changes the chunks around the edit only,
so a new version of a large file costs about the size of the change.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
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


def _store_chunk(objects: ObjectStore, data: bytes) -> tuple[str, int]:
    digest = hash_bytes(data)
    put_chunk = getattr(objects, "put_chunk", None)
    if put_chunk is not None:
        put_chunk(digest, data)
    elif not objects.exists(digest):
        objects.put_bytes(data)
    return digest, len(data)


_IN_FLIGHT = 64  # chunks being hashed and written at once (bounds memory to ~16 MiB)


def chunk_file(objects: ObjectStore, path: Path, rel: str,
               pool: ThreadPoolExecutor | None = None) -> FileEntry:
    """Cut ``path`` into chunks and store the missing ones; returns its entry.

    The cutting runs here; hashing and writing each chunk run on ``pool`` (BLAKE3 and
    file writes release the GIL), in order, with a bounded number in flight.
    """
    size = path.stat().st_size
    whole = new_hasher()
    if size == 0:
        return FileEntry(rel, 0, whole.hexdigest(), ())
    chunks: list[tuple[str, int]] = []
    pending: deque[Future[tuple[str, int]]] = deque()
    for chunk in _cutter().cut_file(str(path)):  # type: ignore[attr-defined]
        data = bytes(chunk.data)
        whole.update(data)
        if pool is None:
            chunks.append(_store_chunk(objects, data))
            continue
        pending.append(pool.submit(_store_chunk, objects, data))
        if len(pending) >= _IN_FLIGHT:
            chunks.append(pending.popleft().result())
    chunks.extend(f.result() for f in pending)
    return FileEntry(rel, size, whole.hexdigest(), tuple(chunks))


def chunk_files(objects: ObjectStore, files: Iterable[tuple[Path, str]],
                on_done: Callable[[FileEntry], object] | None = None, *,
                flush: bool = True) -> list[FileEntry]:
    """Chunk several files over all cores; with ``flush``, wait until the new chunks
    are on disk (once, for all of them) before returning."""
    items = list(files)
    workers = max(2, min(8, os.cpu_count() or 2))
    out: list[FileEntry] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        if len(items) == 1:  # one big file: parallel inside it
            out.append(chunk_file(objects, items[0][0], items[0][1], pool))
            if on_done is not None:
                on_done(out[0])
        else:  # many files: one per worker
            for entry in pool.map(lambda item: chunk_file(objects, item[0], item[1]), items):
                if on_done is not None:
                    on_done(entry)
                out.append(entry)
    sync = getattr(objects, "sync", None) if flush else None
    if sync is not None:
        sync()  # one flush for the whole add, before any version refers to these chunks
    elif hasattr(objects, "sync"):
        objects.forget_unsynced()  # type: ignore[attr-defined]
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
