"""BLAKE3 content hashes: the names of every blob mloop stores.

BLAKE3 hashes at several GB/s per core, so hashing never dominates an upload, and its
256-bit digests make accidental collisions a non-issue.
"""

from __future__ import annotations

import re
from pathlib import Path

from blake3 import blake3

CHUNK = 1 << 20  # 1 MiB reads: large enough to amortise syscalls, small enough for memory
DIGEST_HEX_LEN = 64
_DIGEST = re.compile(f"[0-9a-f]{{{DIGEST_HEX_LEN}}}")


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex BLAKE3 digest of ``data`` (any bytes-like object)."""
    return blake3(data).hexdigest()


def hash_file(path: str | Path, *, threads: int | None = None) -> str:
    """Hex BLAKE3 digest of a file's bytes, read in 1 MiB chunks.

    Files over 64 MiB are hashed on all cores unless ``threads`` says otherwise.
    """
    if threads is None:
        threads = blake3.AUTO if Path(path).stat().st_size > 64 * CHUNK else 1
    h = blake3(max_threads=threads)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def is_digest(text: str) -> bool:
    """Whether ``text`` looks like a hex digest made by this module."""
    return _DIGEST.fullmatch(text) is not None


def new_hasher() -> blake3:
    """A fresh incremental hasher (``update(bytes)``, ``hexdigest()``)."""
    return blake3()
