"""The object-store interface every backend implements."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from mloop.core.hashing import is_digest
from mloop.errors import CorruptObjectError, InvalidInputError

RECORDS = "records"  # named records live in <root>/records/, beside the blob folders
_RECORD_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}\Z")


@runtime_checkable
class RecordStore(Protocol):
    """Small named records beside the blobs (what a remote knows of each data version).

    A record is written once: :meth:`put_record` never replaces one, so two writers of
    the same name can tell that they disagree instead of one overwriting the other.
    """

    def put_record(self, name: str, data: bytes) -> bytes | None:
        """Write record ``name`` unless it exists; ``None`` when written, else the bytes
        already there."""
        ...

    def get_record(self, name: str) -> bytes | None:
        """The bytes of record ``name``, ``None`` when there is none."""
        ...

    def list_records(self, folder: str) -> list[str]:
        """The names (last part only) of the records directly in ``folder``, sorted."""
        ...


@runtime_checkable
class ObjectStore(RecordStore, Protocol):
    """Immutable blobs addressed by the hex BLAKE3 digest of their bytes.

    Writes are atomic (a reader never sees half a blob) and idempotent (putting bytes
    that are already stored costs a lookup, not a write). Reads verify the digest and
    raise :class:`CorruptObjectError` on a mismatch. Beside the blobs, every store
    keeps named records (:class:`RecordStore`): remotes share what they know of each
    data version through them.

    Bulk writers (data versioning, pushes and pulls: thousands of blobs) use
    :meth:`put_chunk` for each blob, then :meth:`sync` once before recording anything
    that needs the blobs, or :meth:`forget_unsynced` when their durability policy
    asks for no flush.
    """

    url: str
    copies_from_source: bool
    """Whether :meth:`put_chunk` uses its ``source`` hint (copies the bytes from the
    file in the kernel); a bulk writer opens the file for it only then."""

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its digest."""
        ...

    def put_file(self, path: str | Path) -> str:
        """Store a file's bytes (streamed, any size); return its digest."""
        ...

    def put_chunk(self, digest: str, data: bytes | memoryview,
                  source: tuple[int, int] | None = None) -> bool:
        """Store ``data`` under ``digest``, which the caller computed from these very
        bytes (not hashed again); return whether a new blob was written.

        ``source``: ``(fd, offset)`` of an open file holding the same bytes at that
        offset, a hint a store with :attr:`copies_from_source` copies from in the kernel
        (others ignore it; the stored blob is the same either way). An existing blob is
        not rewritten (a local store marks it as just used, so garbage collection spares
        it). Atomic like every write, but not necessarily durable: no fsync per blob,
        see :meth:`sync`.
        """
        ...

    def sync(self) -> None:
        """Make every blob written by :meth:`put_chunk` so far durable (one flush for a
        whole bulk write); a no-op where a write is final when it returns (a remote
        store's PUT, memory)."""
        ...

    def forget_unsynced(self) -> None:
        """Drop the blobs :meth:`sync` would flush (the caller's durability policy asks
        for none); a no-op where there is nothing to flush."""
        ...

    def get_bytes(self, digest: str) -> bytes:
        """The verified bytes of a blob."""
        ...

    def get_file(self, digest: str, dest: str | Path) -> None:
        """Write a blob to ``dest`` atomically after verifying it."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether the blob is stored."""
        ...

    def missing(self, digests: Iterable[str]) -> set[str]:
        """The subset of ``digests`` not stored here (one batched look-up where possible)."""
        ...

    def size(self, digest: str) -> int:
        """Size of a stored blob in bytes."""
        ...

    def delete(self, digest: str) -> None:
        """Remove a blob (no error if absent)."""
        ...

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in no particular order."""
        ...


def check_record_name(name: str) -> str:
    """``data/train/4.json``: parts of letters, digits, ``_.-`` (never ``..``)."""
    parts = name.split("/")
    if not all(_RECORD_PART.match(p) for p in parts):
        raise InvalidInputError(f"{name!r} is not a record name (parts of letters, digits, "
                                "'_', '.' or '-', separated by '/').")
    return name


def object_relpath(digest: str) -> str:
    """``ab/cdef…``: the first two hex digits name a folder, as git and DVC do."""
    check_digest(digest)
    return f"{digest[:2]}/{digest[2:]}"


def check_digest(digest: str) -> str:
    if not is_digest(digest):
        raise InvalidInputError(f"{digest!r} is not a blob digest (64 lowercase hex digits).")
    return digest


def corrupt(digest: str, where: str, actual: str) -> CorruptObjectError:
    return CorruptObjectError(
        f"Object {digest[:12]}… in {where} is corrupt: its bytes now hash to {actual[:12]}…. "
        "Delete the file and restore it from a remote or re-log the artifact; "
        "nothing was read from it."
    )
