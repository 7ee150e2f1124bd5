"""Blobs in a local folder: ``<root>/ab/cdef…``, written temp file → fsync → rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from mloop.core.disk import writing
from mloop.core.hashing import CHUNK, hash_bytes, new_hasher
from mloop.errors import ObjectNotFoundError
from mloop.objects.base import (
    RECORDS,
    ObjectStore,
    check_digest,
    check_record_name,
    corrupt,
    object_relpath,
)

_TMP = "tmp"
QUARANTINE = "quarantine"  # corrupt blobs moved aside by `mloop fsck --repair`
# blobs being written: `<root>/tmp/*.tmp` and `<root>/ab/<rest>.<pid>.<tid>.tmp`
TEMP_SUFFIX = ".tmp"


class LocalObjectStore:
    """A content-addressed folder. Stored files are read-only so an edit cannot corrupt them."""

    copies_from_source = True  # put_chunk copies with copy_file_range where it can

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        (self.root / _TMP).mkdir(parents=True, exist_ok=True)
        self._made: set[str] = set()
        self._unsynced: list[Path] = []
        self._unsynced_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalObjectStore({self.url!r})"

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists yet)."""
        return self.root / object_relpath(digest)

    def put_bytes(self, data: bytes) -> str:
        digest = hash_bytes(data)
        if not self.path(digest).exists():
            with writing(self.url), self._temp() as (fd, tmp):
                _write_all(fd, data)
                self._commit(fd, tmp, digest)
        return digest

    def put_chunk(self, digest: str, data: bytes | memoryview,
                  source: tuple[int, int] | None = None) -> bool:
        """Store ``data`` under ``digest`` (computed by the caller from these very bytes).

        ``source``: ``(fd, offset)`` of an open file that holds these same bytes at that
        offset (the file they were just read from). The blob is then copied from it in
        the kernel (``copy_file_range``: no copy through this process, about a quarter
        of the CPU of writing the buffer on Linux); where that is not possible the
        buffer is written as usual.

        For bulk writers (data versioning writes thousands of chunks per GB): no fsync
        per blob; the caller calls :meth:`sync` once before recording anything that needs
        the blobs (a blob of 1 MiB or more is handed to the disk at once, so that sync
        has little left to wait for). The write is still temp file + rename, so a reader
        never sees half a blob. Returns whether a new blob was written (an existing one
        is touched instead).
        """
        final = self.path(digest)
        if final.exists():
            self.touch(digest)
            return False
        folder = final.parent
        if folder.name not in self._made:
            folder.mkdir(exist_ok=True)
            self._made.add(folder.name)
        tmp = f"{final}.{os.getpid()}.{threading.get_ident()}{TEMP_SUFFIX}"
        with writing(self.url):
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
            except FileNotFoundError:  # the folder was removed behind our back
                folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
            try:
                try:
                    if source is None:
                        _write_all(fd, data)
                    else:
                        _copy_all(source[0], source[1], fd, data)
                    if len(data) >= _EARLY_WRITEBACK:
                        _start_writeback(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, final)
            except BaseException:  # a full disk, an interrupt: leave no half-written file
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        with self._unsynced_lock:
            self._unsynced.append(final)
        return True

    def forget_unsynced(self) -> None:
        """Drop the list of blobs :meth:`sync` would flush (the caller chose not to)."""
        with self._unsynced_lock:
            self._unsynced = []

    def sync(self) -> None:
        """Flush every blob written with :meth:`put_chunk` to stable storage.

        A few blobs are fsynced one by one (with their folders); many are flushed with
        one system-wide sync, which is far cheaper than thousands of fsyncs.
        """
        with self._unsynced_lock:
            pending, self._unsynced = self._unsynced, []
        if len(pending) > 64:
            os.sync()
            return
        for path in pending:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for folder in {p.parent for p in pending}:
            _fsync_dir(folder)

    def put_file(self, path: str | Path) -> str:
        # One pass: hash while copying into a temp file, then rename it into place.
        hasher = new_hasher()
        with open(path, "rb") as src, writing(self.url), self._temp() as (fd, tmp):
            while chunk := src.read(CHUNK):
                hasher.update(chunk)
                _write_all(fd, chunk)
            digest = hasher.hexdigest()
            if not self.path(digest).exists():
                self._commit(fd, tmp, digest)
        return digest

    def get_bytes(self, digest: str) -> bytes:
        data = self._read(digest)
        actual = hash_bytes(data)
        if actual != digest:
            raise corrupt(digest, self.url, actual)
        return data

    def get_file(self, digest: str, dest: str | Path) -> None:
        src = self.path(check_digest(digest))
        dest = Path(dest)
        with writing(str(dest.parent)):
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._copy_out(src, digest, dest)

    def _copy_out(self, src: Path, digest: str, dest: Path) -> None:
        hasher = new_hasher()
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    hasher.update(chunk)
                    _write_all(fd, chunk)
            os.fchmod(fd, 0o644)
            os.close(fd)
            fd = -1
            if (actual := hasher.hexdigest()) != digest:
                raise corrupt(digest, self.url, actual)
            os.replace(tmp, dest)
        except FileNotFoundError:
            raise ObjectNotFoundError(self._missing_msg(digest)) from None
        finally:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def open_blob(self, digest: str) -> BinaryIO:
        """The stored file, open for reading (not verified: the reader hashes what it
        reads; the server streams from it)."""
        try:
            return open(self.path(check_digest(digest)), "rb")  # the caller closes it
        except FileNotFoundError:
            raise ObjectNotFoundError(self._missing_msg(digest)) from None

    def exists(self, digest: str) -> bool:
        return self.path(check_digest(digest)).exists()

    def touch(self, digest: str) -> None:
        """Mark a blob as just used (garbage collection spares recent blobs)."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path(check_digest(digest)))

    def missing(self, digests: Iterable[str]) -> set[str]:
        return {d for d in set(digests) if not self.exists(d)}

    def size(self, digest: str) -> int:
        try:
            return self.path(check_digest(digest)).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFoundError(self._missing_msg(digest)) from None

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(check_digest(digest)).unlink()

    def temp_files(self) -> Iterator[tuple[str, os.stat_result]]:
        """(path, stat) of every temporary file: a write in progress, or one a killed
        process or a full disk left behind."""
        for folder in (self.root / _TMP, *self._prefix_folders()):
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as it:
                for entry in it:
                    if entry.name.endswith(TEMP_SUFFIX):
                        with contextlib.suppress(FileNotFoundError):
                            yield entry.path, entry.stat(follow_symlinks=False)

    def remove_stale_temp(self, older_than: float) -> tuple[int, int]:
        """Delete temporary files not modified for ``older_than`` seconds; (files, bytes).

        A live writer keeps its file's mtime fresh (it writes a blob within seconds), so
        age alone tells an abandoned file from one being written, also when several
        hosts share the folder and process ids mean nothing.
        """
        cutoff = time.time() - older_than
        removed = freed = 0
        for path, st in list(self.temp_files()):
            if st.st_mtime < cutoff:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed += 1
                    freed += st.st_size
        return removed, freed

    def quarantine(self, digest: str) -> Path | None:
        """Move a (corrupt) blob aside to ``<root>/quarantine/`` so a good copy can take its
        place; returns where it went (``None`` when there was no blob)."""
        src = self.path(check_digest(digest))
        folder = self.root / QUARANTINE
        folder.mkdir(exist_ok=True)
        dest = folder / f"{digest}.{time.time_ns()}"
        try:
            os.replace(src, dest)
        except FileNotFoundError:
            return None
        return dest

    def _prefix_folders(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if len(p.name) == 2 and p.is_dir())

    def iter_digests(self) -> Iterator[str]:
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) == 2 and folder.is_dir():
                for entry in os.scandir(folder):
                    if not entry.name.endswith(".tmp"):
                        yield folder.name + entry.name

    # -- named records (see RecordStore) ---------------------------------------------

    def _record_path(self, name: str) -> Path:
        return self.root / RECORDS / check_record_name(name)

    def put_record(self, name: str, data: bytes) -> bytes | None:
        final = self._record_path(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        with writing(self.url), self._temp() as (fd, tmp):
            _write_all(fd, data)
            os.fsync(fd)
            try:
                os.link(tmp, final)  # atomic and exclusive: an existing record stays
            except FileExistsError:
                return final.read_bytes()
        _fsync_dir(final.parent)
        return None

    def get_record(self, name: str) -> bytes | None:
        try:
            return self._record_path(name).read_bytes()
        except FileNotFoundError:
            return None

    def list_records(self, folder: str) -> list[str]:
        try:
            with os.scandir(self.root / RECORDS / check_record_name(folder)) as it:
                return sorted(e.name for e in it if e.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return []

    # -- internals -------------------------------------------------------------------

    def _read(self, digest: str) -> bytes:
        try:
            return self.path(check_digest(digest)).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(self._missing_msg(digest)) from None

    def _missing_msg(self, digest: str) -> str:
        return (f"Object {digest[:12]}… is not in {self.url}. If it was pushed to a remote, "
                "pull it; otherwise the artifact that needs it must be logged again.")

    @contextlib.contextmanager
    def _temp(self) -> Iterator[tuple[int, str]]:
        fd, tmp = tempfile.mkstemp(dir=self.root / _TMP, suffix=".tmp")
        try:
            yield fd, tmp
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _commit(self, fd: int, tmp: str, digest: str) -> None:
        os.fsync(fd)
        os.fchmod(fd, 0o444)
        final = self.path(digest)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)  # atomic; a concurrent writer of the same digest is harmless
        _fsync_dir(final.parent)


def _copy_all(src: int, offset: int, fd: int, data: bytes | memoryview) -> None:
    """``data`` into ``fd``, copied from ``src`` at ``offset`` (which holds the same bytes)
    by the kernel; what it cannot copy (no ``copy_file_range``, another file system on an
    old kernel, a file that got shorter) is written from ``data``."""
    view, done = memoryview(data), 0
    copy = getattr(os, "copy_file_range", None)
    while copy is not None and done < len(view):
        try:
            n = copy(src, fd, len(view) - done, offset + done)
        except OSError:
            break
        if not n:
            break
        done += n
    if done < len(view):
        _write_all(fd, view[done:])


_EARLY_WRITEBACK = 1 << 20  # blobs of bulk writes from this size on go to disk at once


def _start_writeback(fd: int) -> None:
    """Have the kernel start writing ``fd``'s pages to disk now, without waiting: a large
    add's blobs then reach the disk while the next ones are read and hashed, and the
    one :meth:`LocalObjectStore.sync` at the end has little left to wait for (Linux
    starts writeback of dirty pages on ``POSIX_FADV_DONTNEED``; elsewhere a no-op)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable (POSIX); not supported on every platform.
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
            os.fsync(dfd)
    finally:
        os.close(dfd)



# mypy checks here that the class implements the protocol (records included) in full
_IMPLEMENTS: type[ObjectStore] = LocalObjectStore
