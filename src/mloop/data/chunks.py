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
from typing import BinaryIO

from mloop.core.disk import writing
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

    A chunk is a slice of a blob: a small file is a slice of a *pack* that holds many
    small files back to back; a large file's content-defined chunks are slices of packs
    of ~4 MiB of new chunks (earlier versions stored one blob per chunk: offset 0, whole
    blob; both read the same). ``ids`` are the chunks' own digests, parallel to
    ``chunks``: what lets the next version reuse a chunk wherever it is packed.
    """

    path: str  # relative, POSIX
    size: int
    digest: str  # BLAKE3 of the whole file
    chunks: tuple[Chunk, ...]
    ids: tuple[str, ...] = ()

    def chunk_keys(self) -> tuple[object, ...]:
        """What identifies each chunk's content (its id, else its location)."""
        return self.ids if self.ids else self.chunks

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "path": self.path, "size": self.size, "digest": self.digest,
            "chunks": [[d, n] if off == 0 else [d, n, off] for d, n, off in self.chunks]}
        if self.ids:
            out["ids"] = list(self.ids)
        return out

    @staticmethod
    def from_json(data: dict[str, object]) -> FileEntry:
        chunks = tuple((str(c[0]), int(c[1]), int(c[2]) if len(c) > 2 else 0)
                       for c in data["chunks"])  # type: ignore[attr-defined]
        return FileEntry(str(data["path"]), int(data["size"]),  # type: ignore[call-overload]
                         str(data["digest"]), chunks,
                         tuple(data.get("ids", ())))  # type: ignore[arg-type]


def _cutter() -> object:
    from pyfastcdc.cy import FastCDC

    return FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


def _store_blob(objects: ObjectStore, data: bytes | memoryview,
                source: tuple[int, int] | None = None,
                copied: list[str] | None = None) -> str:
    """Store ``data`` under its digest; ``source``: ``(fd, offset)`` of a file holding the
    same bytes there, which a local store copies from in the kernel (a blob so written
    is listed in ``copied``)."""
    digest = hash_bytes(data)
    if objects.put_chunk(digest, data, source) and source is not None and copied is not None:
        copied.append(digest)
    return digest


CHUNK_PACK = 4 << 20  # new chunks of large files are stored in packs of about this size
_PACKS_IN_FLIGHT = 4  # packs being hashed and written at once (bounds memory to ~16 MiB)
BLOCK = 16 << 20  # a large file is read, cut and hashed this many bytes at a time


class _Packer:
    """Collects new chunks into pack blobs, hashed and written on a pool.

    Chunks are slices of the block being read; a pack of chunks that lie back to back
    in one block (a new file: all of them) is that slice of the block, with no copy, and
    with ``source`` (the file's descriptor) a store that can is given where those bytes
    lie in the file, to copy them in the kernel.
    """

    def __init__(self, objects: ObjectStore, pool: ThreadPoolExecutor | None,
                 source: int | None = None) -> None:
        self.objects = objects
        self.pool = pool
        self.source = source
        self.copied: list[str] = []  # packs written by copying from ``source``
        self.base = 0  # the block's offset in the file
        self.block: memoryview | None = None
        self.members: list[tuple[int, int, int]] = []  # (slot, start in block, length)
        self.size = 0
        self.pending: deque[tuple[Future[str], list[tuple[int, int]], memoryview]] = deque()
        self.placed: dict[int, Chunk] = {}
        self.lengths: dict[int, int] = {}  # slot -> length, of the chunks in packs

    def add(self, slot: int, block: memoryview, start: int, length: int,
            base: int = 0) -> None:
        if block is not self.block:
            self.flush()  # packs do not span blocks
            self.block, self.base = block, base
        self.members.append((slot, start, length))
        self.size += length
        if self.size >= CHUNK_PACK:
            self.flush()

    def flush(self) -> None:
        if not self.members or self.block is None:
            return
        block, members = self.block, self.members
        first, last = members[0], members[-1]
        source = None
        if last[1] + last[2] - first[1] == self.size:  # back to back: a slice of the block
            data: bytes | memoryview = block[first[1]:last[1] + last[2]]
            if self.source is not None:
                source = (self.source, self.base + first[1])
        else:
            data = b"".join(block[a:a + n] for _, a, n in members)
        placed, offset = [], 0
        for slot, _, length in members:
            placed.append((slot, offset))
            offset += length
        self.members, self.size = [], 0
        self.lengths.update((slot, length) for slot, _, length in members)
        if self.pool is None:
            self._place(_store_blob(self.objects, data, source, self.copied), placed)
            return
        self.pending.append((self.pool.submit(_store_blob, self.objects, data, source,
                                              self.copied), placed, block))
        while len(self.pending) > _PACKS_IN_FLIGHT:
            self._settle()

    def release(self, block: memoryview) -> None:
        """Store every pack taken from ``block`` (its buffer is about to be reused)."""
        if self.block is block:
            self.flush()
            self.block = None
        while any(b is block for _, _, b in self.pending):
            self._settle()

    def _settle(self) -> None:
        job, placed, _ = self.pending.popleft()
        self._place(job.result(), placed)

    def _place(self, pack: str, placed: list[tuple[int, int]]) -> None:
        for slot, offset in placed:
            self.placed[slot] = (pack, self.lengths[slot], offset)

    def finish(self) -> dict[int, Chunk]:
        self.flush()
        self.drain()
        return self.placed

    def drain(self) -> None:
        """Wait for every pack in flight (also on an error: they read the blocks)."""
        while self.pending:
            self._settle()


_RING = 4  # block buffers, reused in turn: fresh 16 MiB buffers cost a page fault per 4 KiB


def _read_fresh(f: BinaryIO, buf: bytearray) -> int:
    """Up to :data:`BLOCK` bytes of ``f`` into ``buf`` after its first ``MAX_CHUNK``
    bytes (room for the carry); how many were read."""
    view = memoryview(buf)[MAX_CHUNK:MAX_CHUNK + BLOCK]
    got = 0
    while got < BLOCK:
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _new_buffer() -> bytearray:
    return bytearray(MAX_CHUNK + BLOCK)  # a carried chunk is at most MAX_CHUNK


def _blocks(path: Path, take: Callable[[], bytearray] = _new_buffer,
            ) -> Iterator[tuple[memoryview, int, list[tuple[int, int]], int]]:
    """The file as (block, where its new bytes start, its chunks as (start, length), the
    block's offset in the file).

    FastCDC decides a cut from the bytes since the previous cut only (at most
    ``MAX_CHUNK`` of them), so cutting block by block gives the cuts of the whole file
    as long as each block's last chunk, which may have been cut short by the block's
    end, is carried over to the next block instead (the last block's is final).
    ``take``: the buffer to read the next block into. A thread reads the next block
    while this one is cut (reading waits on the disk, cutting on the CPU: overlapped,
    a cold gigabyte costs the longer of the two instead of their sum); the first block
    is read here, so a file of one block (most files of a folder) starts no thread.
    """
    cutters = (_cutter(), _cutter())  # one per thread: a FastCDC object is not shared
    carry = b""
    base = 0
    with open(path, "rb", buffering=0) as f, ThreadPoolExecutor(max_workers=1) as reader, \
            ThreadPoolExecutor(max_workers=1) as helper:
        buf = take()
        fresh = _read_fresh(f, buf)
        while True:
            eof = fresh < BLOCK
            if not eof:
                following = take()
                pending = reader.submit(_read_fresh, f, following)
            start = MAX_CHUNK - len(carry)
            view = memoryview(buf)
            view[start:MAX_CHUNK] = carry
            block = view[start:MAX_CHUNK + fresh]
            if not block:
                return
            cuts = _cut_block(cutters, helper, block)
            if not eof and len(cuts) > 1:
                tail = cuts.pop()
                carry = bytes(block[tail[0]:])
            else:
                carry = b""
            yield block, len(block) - fresh, cuts, base
            base += len(block) - len(carry)
            if eof:  # the last block's chunks are final: nothing is carried
                return
            buf, fresh = following, pending.result()


SPLIT_MIN = 2 << 20  # blocks from this size on are cut by two threads, one per half


def _cut_block(cutters: tuple[object, object], helper: ThreadPoolExecutor | None,
               block: memoryview) -> list[tuple[int, int]]:
    """The cuts of ``block`` as (start, length), as one FastCDC pass from its start finds
    them, found by two threads (FastCDC releases the GIL while it scans).

    The helper cuts the second half as if a chunk began at its middle; this thread cuts
    from the start until one of its cuts lands on a cut of the helper's. FastCDC decides
    each cut from the bytes since the previous cut alone, so from that shared cut on the
    helper's cuts are the true ones. Where they never meet (data so regular that every
    chunk is the maximum size), this thread simply cuts the whole block.
    """
    first, second = cutters
    if helper is None or len(block) < SPLIT_MIN:
        return [(c.offset, c.length) for c in first.cut_buf(block)]  # type: ignore[attr-defined]
    middle = len(block) // 2
    later = helper.submit(_cuts_from, second, block, middle)
    cuts: list[tuple[int, int]] = []
    try:
        starts: dict[int, int] | None = None
        for c in first.cut_buf(block):  # type: ignore[attr-defined]
            cuts.append((c.offset, c.length))
            end = c.offset + c.length
            if end < middle:
                continue
            if starts is None:
                starts = {start: i for i, (start, _) in enumerate(later.result())}
            met = starts.get(end)
            if met is not None:
                cuts.extend(later.result()[met:])
                break
    finally:
        later.result()  # the helper reads the block: done with it before it is reused
    return cuts


def _cuts_from(cutter: object, block: memoryview, start: int) -> list[tuple[int, int]]:
    return [(start + c.offset, c.length) for c in cutter.cut_buf(block[start:])]  # type: ignore[attr-defined]


def _hash_chunks(block: memoryview, cuts: list[tuple[int, int]]) -> list[str]:
    return [hash_bytes(block[a:a + n]) for a, n in cuts]


def chunk_file(objects: ObjectStore, path: Path, rel: str,
               pool: ThreadPoolExecutor | None = None,
               reused: dict[str, Chunk] | None = None) -> FileEntry:
    """Cut ``path`` into chunks and store the new ones in packs; returns its entry.

    ``reused``: chunk id → where the version this one follows keeps that chunk. A
    version references it, so garbage collection keeps it, and it is neither written
    nor touched again (re-adding a 1 GB file with 1% appended writes ~1% of it).

    The file is read once, in blocks. With a ``pool`` the work of a block is spread
    over the cores (BLAKE3 releases the GIL): the whole-file digest advances on one
    thread, the block's chunks are hashed on the pool while the next block is read and
    cut, and packs are hashed and written on the pool, a bounded number in flight.
    Packs turn 16,000 blobs per GB into ~250, which is what a file system and a remote
    can write quickly.
    """
    before = path.stat()
    size = before.st_size
    if size == 0:
        return FileEntry(rel, 0, new_hasher().hexdigest(), ())
    reused = reused or {}
    ids: list[str] = []
    lengths: list[int] = []
    found: dict[int, Chunk] = {}  # slot -> an existing location
    first: dict[str, int] = {}  # chunk id -> the slot that stores it in this file
    same: dict[int, int] = {}  # slot -> earlier slot with the same bytes
    present: set[str] = set()
    # packs are copied from the file by a store that can (same bytes, read again by the
    # kernel: a file that changes meanwhile fails the check at the end, packs removed)
    source = os.open(path, os.O_RDONLY) if objects.copies_from_source else None
    packer = _Packer(objects, pool, source)
    whole = new_hasher()
    updates: list[Future[object]] = []
    views: list[memoryview] = []  # each block read so far
    ring: deque[tuple[bytearray, int]] = deque()  # (buffer, the block read into it)

    taken = [0]  # buffers handed out: the index of the block read into the next one

    def take() -> bytearray:
        if len(ring) < _RING:
            buf = _new_buffer()
        else:  # the oldest block: hashed (the queue below is one deep), packs stored
            buf, k = ring.popleft()
            updates[k].result()
            packer.release(views[k])
        ring.append((buf, taken[0]))
        taken[0] += 1
        return buf

    # the whole-file digest: one thread, blocks in order
    with ThreadPoolExecutor(max_workers=1) as order:
        hashed: deque[tuple[memoryview, list[tuple[int, int]], int,
                            Future[list[str]] | list[str]]] = deque()

        def settle() -> None:
            block, cuts, base, job = hashed.popleft()
            digests = job if isinstance(job, list) else job.result()
            for (start, length), digest in zip(cuts, digests, strict=True):
                slot = len(ids)
                ids.append(digest)
                lengths.append(length)
                old = reused.get(digest)
                if old is not None and (old[0] in present or objects.exists(old[0])):
                    present.add(old[0])
                    found[slot] = old
                elif digest in first:
                    same[slot] = first[digest]
                else:
                    first[digest] = slot
                    packer.add(slot, block, start, length, base)

        try:
            for block, fresh_from, cuts, base in _blocks(path, take):
                views.append(block)
                updates.append(order.submit(whole.update, block[fresh_from:]))
                hashed.append((block, cuts, base, pool.submit(_hash_chunks, block, cuts)
                               if pool is not None else _hash_chunks(block, cuts)))
                while len(hashed) > 1:  # this block is hashed while the next is read
                    settle()
            while hashed:
                settle()
            placed = packer.finish()
        finally:
            packer.drain()
            if source is not None:
                os.close(source)
    for update in updates:
        update.result()  # raises what the hashing thread raised
    chunks = [found.get(i) or placed[same.get(i, i)] for i in range(len(ids))]
    file_digest = whole.hexdigest()
    after = path.stat()
    if ((after.st_size, after.st_mtime_ns) != (size, before.st_mtime_ns)
            or sum(lengths) != size):
        for pack in packer.copied:  # copied from the file as it is now, not as hashed
            objects.delete(pack)
        raise InvalidInputError(f"{path} changed while mloop was reading it; run the command "
                                "again when nothing is writing to it.")
    return FileEntry(rel, size, file_digest, tuple(chunks), tuple(ids))


SMALL_FILE = MIN_CHUNK  # smaller files are packed together instead of one blob each
PACK_SIZE = 32 << 20


_READ_BATCH = 512  # small files read and hashed per task
_BATCHES_IN_FLIGHT = 8  # bounds memory: at most ~64 MiB of small files read ahead


def _read_small(batch: list[tuple[str | Path, str, int]]) -> list[tuple[str, bytes, str]]:
    """(rel, bytes, digest) of each file: one open, one read, one close (the size is
    known: a short read is the end of the file)."""
    out = []
    for path, rel, size in batch:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, size + 1)
            if len(data) > size:  # it grew since the walk: read what it holds now
                parts = [data]
                while part := os.read(fd, 1 << 20):
                    parts.append(part)
                data = b"".join(parts)
        finally:
            os.close(fd)
        out.append((rel, data, hash_bytes(data)))
    return out


def _read_ahead(pool: ThreadPoolExecutor | None,
                items: list[tuple[str | Path, str, int]]) -> Iterator[tuple[str, bytes, str]]:
    """The small files' bytes and digests in order, read by the pool a bounded number of
    batches ahead (reads release the GIL: a cold cache waits on several at once)."""
    batches = [items[i:i + _READ_BATCH] for i in range(0, len(items), _READ_BATCH)]
    if pool is None or len(batches) < 2:
        for batch in batches:
            yield from _read_small(batch)
        return
    pending: deque[Future[list[tuple[str, bytes, str]]]] = deque()
    for batch in batches:
        pending.append(pool.submit(_read_small, batch))
        if len(pending) >= _BATCHES_IN_FLIGHT:
            yield from pending.popleft().result()
    while pending:
        yield from pending.popleft().result()


def _pack_small(objects: ObjectStore, items: list[tuple[str | Path, str, int]],
                known: dict[str, tuple[Chunk, ...]],
                pool: ThreadPoolExecutor | None = None) -> list[FileEntry]:
    """Store small files back to back in pack blobs; a file seen before keeps its place.

    Thousands of 4 KiB files cost a handful of blobs instead of thousands, to write,
    to list and to push. ``items``: (path, path inside the version, size at the walk).
    Files are read and hashed on the pool, in batches; packs are laid out in the order
    of ``items`` whatever the timing, and written on the pool while reading goes on.
    """
    out: list[FileEntry] = []
    buffer = bytearray()
    waiting: list[tuple[str, int, str, int]] = []  # (rel, size, digest, offset)
    writes: list[tuple[Future[str] | str, list[tuple[str, int, str, int]]]] = []

    def flush_pack() -> None:
        if not waiting:
            return
        data = bytes(buffer)
        job = (pool.submit(_store_blob, objects, data) if pool is not None
               else _store_blob(objects, data))
        writes.append((job, list(waiting)))
        buffer.clear()
        waiting.clear()

    for rel, data, digest in _read_ahead(pool, items):
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
    for job, members in writes:
        pack = job if isinstance(job, str) else job.result()
        out.extend(FileEntry(rel, size, digest, ((pack, size, off),))
                   for rel, size, digest, off in members)
    # files identical to one packed in this same add point at that copy
    placed = {e.digest: e.chunks for e in out if e.chunks}
    return [e if e.chunks or not e.size else FileEntry(e.path, e.size, e.digest,
                                                          placed[e.digest]) for e in out]


def chunk_files(objects: ObjectStore, files: Iterable[tuple[str | Path, str]],
                on_done: Callable[[FileEntry], object] | None = None, *,
                flush: bool = True,
                previous: Iterable[FileEntry] = (),
                sizes: list[int] | None = None) -> list[FileEntry]:
    """Chunk several files over all cores; small files go into packs.

    ``previous`` (the entries of the version before) lets unchanged small files keep
    their place in an existing pack. With ``flush``, wait until the new blobs are on
    disk (once, for all of them) before returning. ``sizes``: each file's size when the
    caller walked them (else each is stat'ed here).
    """
    items = list(files)
    if sizes is None:
        sizes = [os.stat(p).st_size for p, _ in items]
    small = [(p, rel, n) for (p, rel), n in zip(items, sizes, strict=True) if n < SMALL_FILE]
    large = [(Path(p), rel) for (p, rel), n in zip(items, sizes, strict=True)
             if n >= SMALL_FILE]
    previous = list(previous)
    known = {e.digest: e.chunks for e in previous if 0 < e.size < SMALL_FILE and e.chunks}
    reused: dict[str, Chunk] = {}
    for e in previous:
        if e.size >= SMALL_FILE:
            # entries of earlier releases: one blob per chunk, named by its digest
            reused.update(zip(e.ids, e.chunks, strict=True) if e.ids else
                          ((c[0], c) for c in e.chunks if c[2] == 0))
    workers = max(2, min(8, os.cpu_count() or 2))
    out: list[FileEntry] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        if len(large) == 1:  # one big file: parallel inside it
            out.append(chunk_file(objects, large[0][0], large[0][1], pool, reused))
        elif large:  # many files: one per worker
            out.extend(pool.map(lambda item: chunk_file(objects, item[0], item[1],
                                                        reused=reused), large))
        out.extend(_pack_small(objects, small, known, pool))
    if on_done is not None:
        for entry in out:
            on_done(entry)
    if flush:
        objects.sync()  # one flush for the whole add, before any version refers to these blobs
    else:
        objects.forget_unsynced()
    return out


_WRITE_AHEAD = 32  # chunks (~2 MiB) in flight between reading and writing


def read_entry(objects: ObjectStore, entry: FileEntry,
               cache: dict[str, bytes] | None = None) -> Iterator[bytes]:
    """The verified bytes of a file, chunk by chunk.

    Consecutive chunks in one pack read it once; ``cache`` keeps the last pack across
    calls (small files of a folder share packs).
    """
    cache = {} if cache is None else cache
    for digest, length, offset in entry.chunks:
        blob = cache.get(digest)
        if blob is None:
            blob = objects.get_bytes(digest)  # verified against its digest
            cache.clear()
            cache[digest] = blob
        yield blob if offset == 0 and length == len(blob) else blob[offset:offset + length]


def restore_file(objects: ObjectStore, entry: FileEntry, dest: Path,
                 cache: dict[str, bytes] | None = None) -> None:
    """Write ``entry``'s bytes to ``dest`` atomically, verifying every blob and the whole.

    For a file of many chunks a writer thread writes while this one reads and verifies
    the next chunks (both release the GIL in the kernel), at most ``_WRITE_AHEAD``
    chunks apart.
    """
    with writing(str(dest.parent)):
        _restore(objects, entry, dest, cache)


def _restore(objects: ObjectStore, entry: FileEntry, dest: Path,
             cache: dict[str, bytes] | None) -> None:
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
    have: dict[int, object] = {}
    pos = 0
    for chunk, key in zip(current.chunks, current.chunk_keys(), strict=True):
        have[pos] = key
        pos += chunk[1]
    todo: list[tuple[int, Chunk]] = []
    pos = 0
    for chunk, key in zip(target.chunks, target.chunk_keys(), strict=True):
        if have.get(pos) != key:
            todo.append((pos, chunk))
        pos += chunk[1]
    if sum(c[1] for _, c in todo) > target.size // 2:
        return False
    fd = os.open(dest, os.O_RDWR)
    try:
        packs: dict[str, bytes] = {}
        for pos, (digest, length, offset) in todo:
            blob = packs.get(digest) or objects.get_bytes(digest)  # verified
            packs.clear()
            packs[digest] = blob
            data = blob if offset == 0 and length == len(blob) else blob[offset:offset + length]
            view = memoryview(data)
            while view:
                view = view[os.pwrite(fd, view, pos + len(data) - len(view)):]
        os.ftruncate(fd, target.size)
    finally:
        os.close(fd)
    return hash_file(dest) == target.digest
