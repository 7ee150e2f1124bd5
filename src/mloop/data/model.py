"""What data versioning returns: plain records."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from mloop.core.clock import ms_to_datetime


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset (a file or a folder)."""

    name: str
    version: int
    tree: str  # object-store digest of the version's file list
    kind: str  # "file" or "folder"
    source_path: str  # project-relative path it was added from
    size: int
    files: int
    rows: int | None
    stats: dict[str, Any] | None
    validation: dict[str, Any] | None
    message: str | None
    user: str | None
    command: str | None
    created_at: int
    tags: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"data:/{self.name}@{self.version}"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        created = ms_to_datetime(self.created_at)
        return {"name": self.name, "version": self.version, "uri": self.uri,
                "tree": self.tree, "kind": self.kind, "path": self.source_path,
                "size": self.size, "files": self.files, "rows": self.rows,
                "message": self.message, "user": self.user, "command": self.command,
                "created_at": created.isoformat(timespec="milliseconds") if created else None,
                "tags": list(self.tags), "stats": self.stats, "validation": self.validation}


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def encode_tree(tree: dict[str, Any]) -> bytes:
    """A version's file list as stored: compact JSON, zlib-compressed.

    A folder of 20,000 files lists 20,000 digests; compressed, its tree is a fraction of
    the size to store and to push.
    """
    return zlib.compress(dumps(tree).encode(), 1)  # level 1: ~5x faster, a little larger


def decode_tree(data: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_tree` (plain JSON trees are read too)."""
    raw = data if data[:1] == b"{" else zlib.decompress(data)
    tree: dict[str, Any] = json.loads(raw)
    return tree
