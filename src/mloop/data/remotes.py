"""Remotes: other object stores (any fsspec URL) that versions are pushed to and pulled from.

Only blobs the other side lacks travel, several at a time. Blobs are content-addressed
and written atomically, so an interrupted push or pull leaves nothing half-done: running
it again sends what is still missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import delete, select

from mloop.core.clock import now_ms
from mloop.core.progress import progress
from mloop.core.settings import redact_uri
from mloop.core.uris import check_name
from mloop.data.catalog import get, list_datasets, log
from mloop.data.model import DatasetVersion, decode_tree
from mloop.errors import ConfigError, NotFoundError
from mloop.objects import ObjectStore, open_object_store
from mloop.project import Project
from mloop.store.schema import remotes

DEFAULT_REMOTE = "origin"
_WORKERS = 8


@dataclass(frozen=True)
class Remote:
    name: str
    url: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "url": redact_uri(self.url)}


def add_remote(project: Project, name: str, url: str) -> Remote:
    """Register (or re-point) a remote; checks that it can be opened."""
    check_name(name, "remote name")
    open_object_store(url)
    store = project.store
    stmt = store.insert(remotes).values(name=name, url=url, created_at=now_ms())
    with store.write() as conn:
        conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"url": url}))
    return Remote(name, url)


def list_remotes(project: Project) -> list[Remote]:
    with project.store.read() as conn:
        rows = conn.execute(select(remotes).order_by(remotes.c.name)).all()
    return [Remote(r.name, r.url) for r in rows]


def remove_remote(project: Project, name: str) -> None:
    with project.store.write() as conn:
        if conn.execute(delete(remotes).where(remotes.c.name == name)).rowcount == 0:
            raise NotFoundError(f"No remote named {name!r}; see `mloop remote list`.")


def open_remote(project: Project, name: str | None) -> ObjectStore:
    known = {r.name: r for r in list_remotes(project)}
    if name is None:
        if not known:
            raise ConfigError("No remote configured. Add one: `mloop remote add origin "
                              "s3://bucket/prefix` (or file:///path for a folder).")
        name = DEFAULT_REMOTE if DEFAULT_REMOTE in known else sorted(known)[0]
    if name not in known:
        raise NotFoundError(f"No remote named {name!r}; see `mloop remote list`.")
    try:
        return open_object_store(known[name].url)
    except Exception as exc:
        raise ConfigError(f"Remote {name!r} ({redact_uri(known[name].url)}) cannot be "
                          f"opened: {exc}") from exc


def version_blobs(tree_bytes: bytes, tree: str) -> set[str]:
    """Every blob a version needs: its tree and all its chunks."""
    data = decode_tree(tree_bytes)
    return {tree} | {c[0] for f in data["files"] for c in f["chunks"]}


def _versions(project: Project, refs: Iterable[str] | None) -> list[DatasetVersion]:
    if refs:
        return [get(project, r) for r in refs]
    return [v for latest in list_datasets(project) for v in log(project, latest.name)]


def _flush(project: Project) -> bool:
    return bool(project.settings.sqlite_synchronous == "full")


@dataclass(frozen=True)
class TransferResult:
    versions: int
    blobs: int
    sent: int
    bytes: int


def _copy(src: ObjectStore, dst: ObjectStore, digests: set[str], what: str, *,
          quiet: bool, flush: bool) -> tuple[int, int]:
    missing = dst.missing(digests)
    total = 0
    with progress(len(missing), what, quiet=quiet) as bar, \
            ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        put_chunk = getattr(dst, "put_chunk", None)

        def one(digest: str) -> int:
            data = src.get_bytes(digest)  # verified before it travels
            if put_chunk is not None:
                put_chunk(digest, data)  # bulk write; one sync below
            else:
                dst.put_bytes(data)
            return len(data)

        for size in pool.map(one, sorted(missing)):
            total += size
            bar.advance()
    if flush and hasattr(dst, "sync"):
        dst.sync()  # same durability policy as adds: see sqlite_synchronous
    elif hasattr(dst, "forget_unsynced"):
        dst.forget_unsynced()
    return len(missing), total


def push(project: Project, remote: str | None = None, refs: Iterable[str] | None = None,
         *, quiet: bool = False) -> TransferResult:
    """Send the blobs of every version (or of ``refs``) that the remote lacks."""
    dst = open_remote(project, remote)
    versions = _versions(project, refs)
    needed: set[str] = set()
    for v in versions:
        needed |= version_blobs(project.objects.get_bytes(v.tree), v.tree)
    sent, size = _copy(project.objects, dst, needed, "Pushing", quiet=quiet,
                       flush=_flush(project))
    return TransferResult(len(versions), len(needed), sent, size)


def pull(project: Project, remote: str | None = None, refs: Iterable[str] | None = None,
         *, quiet: bool = False) -> TransferResult:
    """Fetch the blobs of every version (or of ``refs``) that this project lacks."""
    src = open_remote(project, remote)
    versions = _versions(project, refs)
    needed: set[str] = set()
    for v in versions:
        tree_bytes = (project.objects.get_bytes(v.tree) if project.objects.exists(v.tree)
                      else src.get_bytes(v.tree))
        needed |= version_blobs(tree_bytes, v.tree)
    got, size = _copy(src, project.objects, needed, "Pulling", quiet=quiet,
                      flush=_flush(project))
    return TransferResult(len(versions), len(needed), got, size)
