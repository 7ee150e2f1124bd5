"""Blobs behind any fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``memory://…``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fsspec

from mloop.core.hashing import CHUNK, hash_bytes, new_hasher
from mloop.core.redact import redact
from mloop.errors import ConfigError, ObjectNotFoundError
from mloop.objects.base import check_digest, corrupt, object_relpath


class FsspecObjectStore:
    """Content-addressed blobs on an fsspec file system.

    Object stores (S3, GCS, Azure) make each PUT atomic, so blobs are written straight
    to their final key; there is no rename to rely on there.
    """

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
        if not self.exists(digest):
            self.fs.pipe_file(self._key(digest), bytes(data))
        return digest

    def put_file(self, path: str | Path) -> str:
        hasher = new_hasher()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        if not self.exists(digest):
            key = self._key(digest)
            self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(path), key)
        return digest

    def get_bytes(self, digest: str) -> bytes:
        try:
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

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._key(check_digest(digest))))

    def missing(self, digests: Iterable[str]) -> set[str]:
        wanted = {check_digest(d) for d in digests}
        if len(wanted) < 16:
            return {d for d in wanted if not self.exists(d)}
        # One listing per prefix folder beats one HEAD request per blob on remote stores.
        present: set[str] = set()
        for prefix in {d[:2] for d in wanted}:
            with contextlib.suppress(FileNotFoundError):
                present.update(prefix + p.rsplit("/", 1)[-1]
                               for p in self.fs.ls(f"{self.root}/{prefix}", detail=False))
        return wanted - present

    def size(self, digest: str) -> int:
        try:
            return int(self.fs.size(self._key(check_digest(digest))))
        except FileNotFoundError:
            raise ObjectNotFoundError(f"Object {digest[:12]}… is not in {self.url}.") from None

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._key(check_digest(digest)))

    def iter_digests(self) -> Iterator[str]:
        try:
            folders = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return
        for folder in folders:
            prefix = folder.rstrip("/").rsplit("/", 1)[-1]
            if len(prefix) == 2:
                for entry in self.fs.ls(folder, detail=False):
                    yield prefix + entry.rsplit("/", 1)[-1]
