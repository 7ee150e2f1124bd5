"""Content-defined chunking: files cut where their content says, so an edit moves few cuts.

FastCDC (Xia et al., USENIX ATC 2016) with a 64 KiB average chunk, via pyfastcdc. Each
chunk is stored once in the object store under its BLAKE3 digest; a file is its ordered
list of chunks. Inserting or appending bytes changes the chunks around the edit only,
so a new version of a large file costs about the size of the change.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mloop.core.hashing import hash_bytes, hash_file, new_hasher
from mloop.errors import CorruptObjectError, InvalidInputError
from mloop.objects import ObjectStore

AVG_CHUNK = 64 * 1024
MIN_CHUNK = 16 * 1024
MAX_CHUNK = 256 * 1024


Chunk = tuple[str, int, int]  # (blob digest, length, offset in the blob)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a dataset version: where it goes, its bytes' digest, its chunks.

    A chunk is a whole blob (offset 0, length = the blob) or, for small files, a slice
    of a *pack* blob that holds many small files back to back.
    """

    path: str  # relative, POSIX
    size: int
    digest: str  # BLAKE3 of the whole file
    chunks: tuple[Chunk, ...]

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "digest": self.digest,
                "chunks": [[d, n] if off == 0 else [d, n, off] for d, n, off in self.chunks]}

    @staticmethod
    def from_json(data: dict[str, object]) -> FileEntry:
        chunks = tuple((str(c[0]), int(c[1]), int(c[2]) if len(c) > 2 else 0)
                       for c in data["chunks"])  # type: ignore[attr-defined]
        return FileEntry(str(data["path"]), int(data["size"]),  # type: ignore[call-overload]
                         str(data["digest"]), chunks)


def _cutter() -> object:
    from pyfastcdc.cy import FastCDC

    return FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def _store_blob(objects: ObjectStore, data: bytes) -> str:
    digest = hash_bytes(data)
    put_chunk = getattr(objects, "put_chunk", None)
    if put_chunk is not None:
        put_chunk(digest, data)
    elif not objects.exists(digest):
        objects.put_bytes(data)
    return digest


_IN_FLIGHT = 64  # chunks being written at once (bounds memory to ~16 MiB)


def _put(objects: ObjectStore, digest: str, data: bytes) -> None:
    put_chunk = getattr(objects, "put_chunk", None)
    if put_chunk is not None:
        put_chunk(digest, data)
    elif not objects.exists(digest):
        objects.put_bytes(data)


def chunk_file(objects: ObjectStore, path: Path, rel: str,
               pool: ThreadPoolExecutor | None = None,
               reused: frozenset[str] = frozenset()) -> FileEntry:
    """Cut ``path`` into chunks and store the missing ones; returns its entry.

    ``reused``: chunks of the version this one follows. A version references them, so
    garbage collection keeps them; one that the store has is neither written nor touched
    (re-adding a 1 GB file with 1% appended costs no metadata write per chunk).

    Cutting and hashing each chunk run here; with a ``pool``, the whole-file digest is
    computed on a second read of the file (BLAKE3 releases the GIL on large blocks)
    and chunks are written on the pool (file writes release it too), a bounded number
    in flight.
    """
    before = path.stat()
    size = before.st_size
    if size == 0:
        return FileEntry(rel, 0, new_hasher().hexdigest(), ())
    whole_job = pool.submit(hash_file, path, threads=1) if pool is not None else None
    whole = new_hasher() if whole_job is None else None
    chunks: list[Chunk] = []
    pending: deque[Future[None]] = deque()
    for chunk in _cutter().cut_file(str(path)):  # type: ignore[attr-defined]
        data = bytes(chunk.data)
        digest = hash_bytes(data)
        chunks.append((digest, len(data), 0))
        if digest in reused and objects.exists(digest):
            if whole is not None:
                whole.update(data)
            continue
        if pool is None:
            assert whole is not None
            whole.update(data)
            _put(objects, digest, data)
            continue
        pending.append(pool.submit(_put, objects, digest, data))
        if len(pending) >= _IN_FLIGHT:
            pending.popleft().result()
    for done in pending:
        done.result()
    file_digest = whole_job.result() if whole_job is not None else whole.hexdigest()  # type: ignore[union-attr]
    after = path.stat()
    if ((after.st_size, after.st_mtime_ns) != (size, before.st_mtime_ns)
            or sum(c[1] for c in chunks) != size):
        raise InvalidInputError(f"{path} changed while mloop was reading it; run the command "
                                "again when nothing is writing to it.")
    return FileEntry(rel, size, file_digest, tuple(chunks))


SMALL_FILE = MIN_CHUNK  # smaller files are packed together instead of one blob each
PACK_SIZE = 32 << 20


def _pack_small(objects: ObjectStore, items: list[tuple[Path, str]],
                known: dict[str, tuple[Chunk, ...]]) -> list[FileEntry]:
    """Store small files back to back in pack blobs; a file seen before keeps its place.

    Thousands of 4 KiB files cost a handful of blobs instead of thousands, to write,
    to list and to push.
    """
    out: list[FileEntry] = []
    buffer = bytearray()
    waiting: list[tuple[str, int, str, int]] = []  # (rel, size, digest, offset)

    def flush_pack() -> None:
        if not waiting:
            return
        pack = _store_blob(objects, bytes(buffer))
        out.extend(FileEntry(rel, size, digest, ((pack, size, off),))
                   for rel, size, digest, off in waiting)
        buffer.clear()
        waiting.clear()

    for path, rel in items:
        data = path.read_bytes()
        digest = hash_bytes(data)
        if not data:
            out.append(FileEntry(rel, 0, digest, ()))
        elif digest in known:
            out.append(FileEntry(rel, len(data), digest, known[digest]))
        else:
            known[digest] = ()  # packed below; identical files in this add share the bytes
            waiting.append((rel, len(data), digest, len(buffer)))
            buffer += data
            if len(buffer) >= PACK_SIZE:
                flush_pack()
    flush_pack()
    # files identical to one packed in this same add point at that copy
    placed = {e.digest: e.chunks for e in out if e.chunks}
    return [e if e.chunks or not e.size else FileEntry(e.path, e.size, e.digest,
                                                          placed[e.digest]) for e in out]


def chunk_files(objects: ObjectStore, files: Iterable[tuple[Path, str]],
                on_done: Callable[[FileEntry], object] | None = None, *,
                flush: bool = True,
                previous: Iterable[FileEntry] = ()) -> list[FileEntry]:
    """Chunk several files over all cores; small files go into packs.

    ``previous`` (the entries of the version before) lets unchanged small files keep
    their place in an existing pack. With ``flush``, wait until the new blobs are on
    disk (once, for all of them) before returning.
    """
    items = list(files)
    sizes = [p.stat().st_size for p, _ in items]
    small = [item for item, n in zip(items, sizes, strict=True) if n < SMALL_FILE]
    large = [item for item, n in zip(items, sizes, strict=True) if n >= SMALL_FILE]
    previous = list(previous)
    known = {e.digest: e.chunks for e in previous if 0 < e.size < SMALL_FILE and e.chunks}
    reused = frozenset(c[0] for e in previous if e.size >= SMALL_FILE for c in e.chunks)
    workers = max(2, min(8, os.cpu_count() or 2))
    out: list[FileEntry] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        if len(large) == 1:  # one big file: parallel inside it
            out.append(chunk_file(objects, large[0][0], large[0][1], pool, reused))
        elif large:  # many files: one per worker
            out.extend(pool.map(lambda item: chunk_file(objects, item[0], item[1],
                                                        reused=reused), large))
    out.extend(_pack_small(objects, small, known))
    if on_done is not None:
        for entry in out:
            on_done(entry)
    sync = getattr(objects, "sync", None) if flush else None
    if sync is not None:
        sync()  # one flush for the whole add, before any version refers to these blobs
    elif hasattr(objects, "sync"):
        objects.forget_unsynced()  # type: ignore[attr-defined]
    return out


_WRITE_AHEAD = 32  # chunks (~2 MiB) in flight between reading and writing


def read_entry(objects: ObjectStore, entry: FileEntry,
               cache: dict[str, bytes] | None = None) -> Iterator[bytes]:
    """The verified bytes of a file, chunk by chunk (``cache`` keeps the last pack)."""
    for digest, length, offset in entry.chunks:
        if offset == 0 and cache is None:
            blob = objects.get_bytes(digest)  # verified against its digest
        elif cache is None or digest not in cache:
            blob = objects.get_bytes(digest)
            if cache is not None:
                cache.clear()
                cache[digest] = blob
        else:
            blob = cache[digest]
        yield blob if offset == 0 and length == len(blob) else blob[offset:offset + length]


def restore_file(objects: ObjectStore, entry: FileEntry, dest: Path,
                 cache: dict[str, bytes] | None = None) -> None:
    """Write ``entry``'s bytes to ``dest`` atomically, verifying every blob and the whole.

    For a file of many chunks a writer thread writes while this one reads and verifies
    the next chunks (both release the GIL in the kernel), at most ``_WRITE_AHEAD``
    chunks apart.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.mloop-tmp")
    whole = new_hasher()
    try:
        with open(tmp, "wb") as f:
            if len(entry.chunks) < 4:
                for data in read_entry(objects, entry, cache):
                    whole.update(data)
                    f.write(data)
            else:
                with ThreadPoolExecutor(max_workers=1) as writer:
                    pending: deque[Future[int]] = deque()
                    for data in read_entry(objects, entry, cache):
                        whole.update(data)
                        pending.append(writer.submit(f.write, data))
                        if len(pending) > _WRITE_AHEAD:
                            pending.popleft().result()
                    for done in pending:
                        done.result()
        if whole.hexdigest() != entry.digest:
            raise CorruptObjectError(f"Restored bytes of {entry.path} do not match the version's "
                                     "digest; nothing was replaced. Pull the data again.")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


PATCH_MIN_SIZE = 4 << 20  # smaller files are rewritten whole: cheap, and atomic


def patch_file(objects: ObjectStore, current: FileEntry, target: FileEntry, dest: Path) -> bool:
    """Turn ``dest`` (which holds ``current``'s bytes) into ``target`` by rewriting only the
    chunks that differ, as ``rsync --inplace`` does; ``True`` when done and verified.

    Switching a 1 GB file between versions that differ by 1% writes ~10 MB instead of
    1 GB. Used only when it pays and is safe: a large regular file with no other hard
    link, at most half of it to rewrite. The result is hashed against the version's
    digest; on a mismatch (or ``False``) the caller rewrites the file whole and
    atomically. An interrupted patch leaves a file whose stat no longer matches the
    cache, so ``status`` reports it modified and re-running ``checkout`` restores it.
    """
    try:
        st = dest.stat()
    except FileNotFoundError:
        return False
    if (target.size < PATCH_MIN_SIZE or st.st_size != current.size or st.st_nlink != 1
            or not dest.is_file()):
        return False
    have: dict[int, tuple[str, int, int]] = {}
    pos = 0
    for chunk in current.chunks:
        have[pos] = chunk
        pos += chunk[1]
    todo: list[tuple[int, Chunk]] = []
    pos = 0
    for chunk in target.chunks:
        if have.get(pos) != chunk:
            todo.append((pos, chunk))
        pos += chunk[1]
    if sum(c[1] for _, c in todo) > target.size // 2:
        return False
    fd = os.open(dest, os.O_RDWR)
    try:
        for pos, (digest, length, offset) in todo:
            blob = objects.get_bytes(digest)  # verified
            data = blob if offset == 0 and length == len(blob) else blob[offset:offset + length]
            view = memoryview(data)
            while view:
                view = view[os.pwrite(fd, view, pos + len(data) - len(view)):]
        os.ftruncate(fd, target.size)
    finally:
        os.close(fd)
    return hash_file(dest) == target.digest
