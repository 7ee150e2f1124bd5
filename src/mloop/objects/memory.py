"""An in-process object store: the fake for tests and throw-away projects."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from mloop.core.hashing import hash_bytes
from mloop.errors import ObjectNotFoundError
from mloop.objects.base import ObjectStore, check_digest, check_record_name, corrupt


class MemoryObjectStore:
    """Blobs in a dict. ``corrupt_for_test`` lets tests flip bytes behind its back."""

    copies_from_source = False

    def __init__(self) -> None:
        self.url = f"mem://{id(self):x}"
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._records: dict[str, bytes] = {}

    def put_bytes(self, data: bytes) -> str:
        digest = hash_bytes(data)
        with self._lock:
            self._blobs.setdefault(digest, bytes(data))
        return digest

    def put_file(self, path: str | Path) -> str:
        return self.put_bytes(Path(path).read_bytes())

    def put_chunk(self, digest: str, data: bytes | memoryview,
                  source: tuple[int, int] | None = None) -> bool:
        check_digest(digest)
        with self._lock:
            if digest in self._blobs:
                return False
            self._blobs[digest] = bytes(data)
        return True

    def sync(self) -> None:
        """Nothing to flush: memory is as durable as it gets."""

    def forget_unsynced(self) -> None:
        """Nothing to forget (see :meth:`sync`)."""

    def get_bytes(self, digest: str) -> bytes:
        try:
            data = self._blobs[check_digest(digest)]
        except KeyError:
            raise ObjectNotFoundError(f"Object {digest[:12]}… is not in {self.url}.") from None
        if (actual := hash_bytes(data)) != digest:
            raise corrupt(digest, self.url, actual)
        return data

    def get_file(self, digest: str, dest: str | Path) -> None:
        data = self.get_bytes(digest)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(dest)

    def exists(self, digest: str) -> bool:
        return check_digest(digest) in self._blobs

    def missing(self, digests: Iterable[str]) -> set[str]:
        return {d for d in set(digests) if d not in self._blobs}

    def size(self, digest: str) -> int:
        return len(self.get_bytes(digest))

    def delete(self, digest: str) -> None:
        with self._lock:
            self._blobs.pop(check_digest(digest), None)

    def iter_digests(self) -> Iterator[str]:
        return iter(list(self._blobs))

    def put_record(self, name: str, data: bytes) -> bytes | None:
        check_record_name(name)
        with self._lock:
            found = self._records.get(name)
            if found is None:
                self._records[name] = bytes(data)
        return found

    def get_record(self, name: str) -> bytes | None:
        return self._records.get(check_record_name(name))

    def list_records(self, folder: str) -> list[str]:
        prefix = check_record_name(folder) + "/"
        return sorted(k[len(prefix):] for k in self._records
                      if k.startswith(prefix) and "/" not in k[len(prefix):])

    def corrupt_for_test(self, digest: str, data: bytes) -> None:
        """Replace a blob's bytes without updating its name (to test verification)."""
        self._blobs[digest] = data


# mypy checks here that the class implements the protocol (records included) in full
_IMPLEMENTS: type[ObjectStore] = MemoryObjectStore
