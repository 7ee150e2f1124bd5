"""Blobs behind any fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``memory://…``)."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import fsspec

from mloop.core.hashing import CHUNK, hash_bytes, new_hasher
from mloop.core.redact import redact
from mloop.errors import ConfigError, MloopError, ObjectNotFoundError, ServiceUnavailableError
from mloop.objects.base import (
    RECORDS,
    ObjectStore,
    check_digest,
    check_record_name,
    corrupt,
    object_relpath,
)

# Libraries whose exceptions mean "the other side could not be reached or refused us":
# fsspec drivers raise their transport's own errors (aiohttp for http(s), botocore for
# S3, google-auth for GCS, azure-core, paramiko …) rather than OSError subclasses.
_TRANSPORTS = frozenset({"aiohttp", "botocore", "aiobotocore", "requests", "urllib3",
                         "google", "gcsfs", "azure", "adlfs", "paramiko", "ssl", "socket"})


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | PermissionError):
        return True
    if isinstance(exc, FileNotFoundError | MloopError) or (
            isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return False  # a missing blob, an error mloop raised on purpose, a full local disk
    return type(exc).__module__.split(".")[0] in _TRANSPORTS or (
        isinstance(exc, OSError) and exc.errno is not None)


@contextlib.contextmanager
def _reachable(url: str) -> Iterator[None]:
    """Network and permission failures of a remote store as one ServiceUnavailableError
    (exit 69) naming the store, secrets hidden, instead of a transport's traceback."""
    try:
        yield
    except Exception as exc:
        if not _is_transport_error(exc):
            raise
        from mloop.core.redact import redact

        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailableError(redact(
            f"The object store at {url} cannot be used: {detail}. Check the URL, the "
            "network and the credentials, then run the command again (only what is still "
            "missing travels).")) from exc


class FsspecObjectStore:
    """Content-addressed blobs on an fsspec file system.

    Object stores (S3, GCS, Azure) make each PUT atomic, so blobs are written straight
    to their final key; there is no rename to rely on there. A PUT is also final when
    it returns, so :meth:`sync` has nothing to do.
    """

    copies_from_source = False

    def __init__(self, url: str, **storage_options: Any) -> None:
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"Cannot open object store {redact(url)!r}: {exc}. Install the "
                              "fsspec driver for that scheme (e.g. pip install s3fs).") from exc
        self.url = url
        self.root = root.rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecObjectStore({redact(self.url)!r})"

    def _key(self, digest: str) -> str:
        return f"{self.root}/{object_relpath(digest)}"

    def put_bytes(self, data: bytes) -> str:
        digest = hash_bytes(data)
        self.put_chunk(digest, data)
        return digest

    def put_chunk(self, digest: str, data: bytes | memoryview,
                  source: tuple[int, int] | None = None) -> bool:
        if self.exists(digest):
            return False
        with _reachable(self.url):
            self.fs.pipe_file(self._key(digest), bytes(data))
        return True

    def sync(self) -> None:
        """Nothing to flush: each PUT was final when it returned."""

    def forget_unsynced(self) -> None:
        """Nothing to forget (see :meth:`sync`)."""

    def put_file(self, path: str | Path) -> str:
        hasher = new_hasher()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        if not self.exists(digest):
            key = self._key(digest)
            with _reachable(self.url):
                self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(path), key)
        return digest

    def get_bytes(self, digest: str) -> bytes:
        try:
            with _reachable(self.url):
                data = self.fs.cat_file(self._key(check_digest(digest)))
        except FileNotFoundError:
            raise ObjectNotFoundError(f"Object {digest[:12]}… is not in {self.url}.") from None
        if (actual := hash_bytes(data)) != digest:
            raise corrupt(digest, self.url, actual)
        return data

    def get_file(self, digest: str, dest: str | Path) -> None:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        os.close(fd)
        try:
            try:
                with _reachable(self.url):
                    self.fs.get_file(self._key(check_digest(digest)), tmp)
            except FileNotFoundError:
                raise ObjectNotFoundError(f"Object {digest[:12]}… is not in {self.url}.") from None
            hasher = new_hasher()
            with open(tmp, "rb") as f:
                while chunk := f.read(CHUNK):
                    hasher.update(chunk)
            if (actual := hasher.hexdigest()) != digest:
                raise corrupt(digest, self.url, actual)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob, open for reading (seekable; not verified: the reader hashes what it
        reads; the server streams from it)."""
        try:
            with _reachable(self.url):
                blob: BinaryIO = self.fs.open(self._key(check_digest(digest)), "rb")
        except FileNotFoundError:
            raise ObjectNotFoundError(f"Object {digest[:12]}… is not in {self.url}.") from None
        return blob

    def presign(self, digest: str, seconds: int) -> str | None:
        """A URL that downloads the blob without credentials for ``seconds`` (S3, GCS…),
        or ``None`` when the file system cannot sign one."""
        try:
            with _reachable(self.url):
                return str(self.fs.sign(self._key(check_digest(digest)), expiration=seconds))
        except NotImplementedError:
            return None

    def exists(self, digest: str) -> bool:
        with _reachable(self.url):
            return bool(self.fs.exists(self._key(check_digest(digest))))

    def missing(self, digests: Iterable[str]) -> set[str]:
        wanted = {check_digest(d) for d in digests}
        if len(wanted) < 16:
            return {d for d in wanted if not self.exists(d)}
        # One listing per prefix folder beats one HEAD request per blob on remote stores.
        present: set[str] = set()
        for prefix in {d[:2] for d in wanted}:
            with contextlib.suppress(FileNotFoundError), _reachable(self.url):
                present.update(prefix + p.rsplit("/", 1)[-1]
                               for p in self.fs.ls(f"{self.root}/{prefix}", detail=False))
        return wanted - present

    def size(self, digest: str) -> int:
        try:
            with _reachable(self.url):
                return int(self.fs.size(self._key(check_digest(digest))))
        except FileNotFoundError:
            raise ObjectNotFoundError(f"Object {digest[:12]}… is not in {self.url}.") from None

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError), _reachable(self.url):
            self.fs.rm_file(self._key(check_digest(digest)))

    def put_record(self, name: str, data: bytes) -> bytes | None:
        # Object stores offer no portable create-if-absent: look, write, and read back,
        # so that of two racing writers at least the later one sees the other's record.
        found = self.get_record(name)
        if found is not None:
            return found
        key = f"{self.root}/{RECORDS}/{check_record_name(name)}"
        with _reachable(self.url):
            self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(key, bytes(data))
        back = self.get_record(name)
        return None if back == data else back

    def get_record(self, name: str) -> bytes | None:
        try:
            with _reachable(self.url):
                return bytes(self.fs.cat_file(f"{self.root}/{RECORDS}/{check_record_name(name)}"))
        except FileNotFoundError:
            return None

    def list_records(self, folder: str) -> list[str]:
        try:
            with _reachable(self.url):
                found = self.fs.ls(f"{self.root}/{RECORDS}/{check_record_name(folder)}",
                                   detail=True)
        except FileNotFoundError:
            return []
        return sorted(str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in found
                      if e.get("type") == "file")

    def iter_digests(self) -> Iterator[str]:
        try:
            with _reachable(self.url):
                folders = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return
        for folder in folders:
            prefix = folder.rstrip("/").rsplit("/", 1)[-1]
            if len(prefix) == 2:
                with _reachable(self.url):
                    entries = self.fs.ls(folder, detail=False)
                for entry in entries:
                    yield prefix + entry.rsplit("/", 1)[-1]


# mypy checks here that the class implements the protocol (records included) in full
_IMPLEMENTS: type[ObjectStore] = FsspecObjectStore
