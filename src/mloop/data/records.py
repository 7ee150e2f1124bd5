"""What a remote knows of each data version, and recording a version another clone made.

``mloop data push`` writes, beside the blobs, one record per version:
``records/data/<dataset>/<number>.json`` with its tree digest, number, author, message,
time, summary and lineage. A record is written once and never replaced, so two clones
that both made ``train@4`` from different data find out (a :class:`ConflictError` on push
or pull), and neither's version is silently lost. ``mloop data pull`` (and ``checkout``
of data already fetched) records a version under the name and number its pointer file
or record says; a clone never has to know version numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from mloop import lineage
from mloop.core.hashing import is_digest
from mloop.core.paths import safe_relpath
from mloop.core.schema import Schema, validate
from mloop.core.text import check_optional, check_text
from mloop.core.uris import MAX_VERSION, check_name
from mloop.data.catalog import get, project_relpath
from mloop.data.model import DatasetVersion, VersionKind, decode_tree
from mloop.data.pointer import SUFFIX, read_pointer
from mloop.errors import ConflictError, InvalidInputError, NotFoundError
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.datasets import NewVersion

FORMAT = 1
RECORD_FOLDER = "data"


class VersionRecord(Schema):
    """One dataset version as a remote keeps it (JSON)."""

    # a record a newer mloop wrote may carry more: ignored, not refused
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    format: int = FORMAT
    dataset: str
    version: int = Field(ge=1, le=MAX_VERSION)
    tree: str
    kind: str
    path: str
    size: int = Field(ge=0)
    files: int = Field(ge=0)
    rows: int | None = None
    stats: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    message: str | None = None
    user: str | None = None
    command: str | None = None
    created_at: int
    parents: list[dict[str, str]] = Field(default_factory=list)  # lineage edges into it

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(), sort_keys=True, indent=1).encode()


def record_name(dataset: str, version: int) -> str:
    """Where a version's record lives in a remote's record space."""
    return f"{RECORD_FOLDER}/{dataset}/{version}.json"


def record_of(project: Project, version: DatasetVersion) -> VersionRecord:
    """The record of a local version, with the lineage edges that lead into it."""
    upstream, _ = lineage.neighbours(project, version.uri)
    return VersionRecord(
        dataset=version.name, version=version.version, tree=version.tree, kind=version.kind,
        path=version.source_path, size=version.size, files=version.files, rows=version.rows,
        stats=version.stats, validation=version.validation, message=version.message,
        user=version.user, command=version.command, created_at=version.created_at,
        parents=[{"src": e.src, "relation": e.relation} for e in upstream])


def parse_record(data: bytes, where: str) -> VersionRecord:
    """A record read from a remote, checked: names, digest, path and text a database
    holds (a remote is shared, so its records are input like any other)."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise InvalidInputError(f"{where} is not a version record ({exc}); delete it from "
                                "the remote and push that version again.") from None
    rec = validate(VersionRecord, raw, source=where)
    check_name(rec.dataset, "dataset name")
    if not is_digest(rec.tree) or rec.kind not in tuple(VersionKind):
        raise InvalidInputError(f"{where}: 'tree' must be a blob digest and 'kind' file or "
                                "folder; delete the record and push that version again.")
    safe_relpath(rec.path)
    for value, what in ((rec.message, "message"), (rec.user, "user"),
                        (rec.command, "command")):
        check_optional(value, f"{where}: {what}")
    return rec


def from_tree(project: Project, dataset: str, version: int, tree: str,
              path: str) -> VersionRecord:
    """A record made from a tree blob already here (a pointer names only the dataset,
    number and tree): no author, message or time are known."""
    data = decode_tree(project.objects.get_bytes(tree))
    files = data["files"]
    return VersionRecord(dataset=dataset, version=version, tree=tree, kind=data["kind"],
                         path=path, size=sum(int(f["size"]) for f in files),
                         files=len(files), created_at=0,
                         message="recorded from its pointer file")


def conflict(ref: str, ours: str, theirs: str, where: str, fix: str) -> ConflictError:
    return ConflictError(f"{ref} is different data {where} (tree {theirs[:12]}…) than here "
                         f"(tree {ours[:12]}…): two clones each made their own {ref}. "
                         f"Nothing was overwritten. {fix}")


def restore(project: Project, rec: VersionRecord, *, path: str | None = None,
            where: str = "on the remote") -> tuple[DatasetVersion, bool]:
    """Record ``rec`` locally under its own name and number (``path``: where its pointer
    is, if not where it was added); returns the version and whether it is new here.

    A different version already holding that number here is a :class:`ConflictError`.
    The tree and chunk blobs must be here already (the caller fetched them).
    """
    source = check_text(safe_relpath(path if path is not None else rec.path), "path", 1000)
    if source.split("/")[0] in (".git", ".mloop"):
        raise InvalidInputError(f"{rec.ref} would be checked out into {source}, inside "
                                "mloop's or git's own folder; refused.")
    try:
        have = get(project, rec.ref)
    except NotFoundError:
        have = None
    new = False
    if have is None:
        try:
            _insert(project, rec, source)
            new = True
        except ConflictError:  # another process recorded that number meanwhile
            new = False
        have = get(project, rec.ref)
    if have.tree != rec.tree:
        raise conflict(rec.ref, have.tree, rec.tree, where,
                       f"Keep both by versioning yours under another name "
                       f"(`mloop data add {have.source_path} --name {rec.dataset}-mine`).")
    for edge in rec.parents if new else []:
        if edge.get("src") and edge.get("relation"):
            lineage.add_edge(project, edge["src"], have.uri, edge["relation"])
    return have, new


def _insert(project: Project, rec: VersionRecord, source: str) -> None:
    backend(project).datasets.record_version(rec.dataset, rec.version, NewVersion(
        tree=rec.tree, kind=rec.kind, source_path=source, size=rec.size, files=rec.files,
        rows=rec.rows, stats=rec.stats, validation=rec.validation, message=rec.message,
        user=rec.user, command=rec.command, created_at=rec.created_at))


def pointer_target(project: Project, pointer: Path) -> tuple[str, int, str | None, str]:
    """(dataset, number, tree digest or None, project path of the data) of a pointer."""
    body = read_pointer(pointer)
    tree = body.get("tree")
    if tree is not None and not (isinstance(tree, str) and is_digest(tree)):
        raise InvalidInputError(f"{pointer}: 'tree' is not a blob digest; restore the file "
                                "from git.")
    data = pointer.with_name(pointer.name[:-len(SUFFIX)])
    return (str(body["dataset"]), int(str(body["version"])), tree,
            project_relpath(project, data))


def known_version(project: Project, pointer: Path) -> DatasetVersion | None:
    """The version a pointer names, recorded here from its tree when the tree and every
    chunk are here already (fetched, or in a shared object store); ``None`` when they
    are not (``mloop data pull`` fetches them)."""
    dataset, number, tree, source = pointer_target(project, pointer)
    ref = f"{dataset}@{number}"
    try:
        have = get(project, ref)
    except NotFoundError:
        have = None
    if have is not None:
        if tree is not None and have.tree != tree:
            raise conflict(ref, have.tree, tree, f"in {pointer}",
                           "Restore the pointer file from git, or pull the other clone's "
                           "data into a dataset of another name.")
        return have
    if tree is None or not project.objects.exists(tree):
        return None
    if project.objects.missing(blobs_of(project.objects.get_bytes(tree), tree)):
        return None
    return restore(project, from_tree(project, dataset, number, tree, source),
                   path=source, where=f"in {pointer}")[0]


def blobs_of(tree_bytes: bytes, tree: str) -> set[str]:
    """Every blob a version's files need: its tree and all its chunks."""
    data = decode_tree(tree_bytes)
    return {tree} | {c[0] for f in data["files"] for c in f["chunks"]}


def profile_of(stats: dict[str, Any] | None) -> str | None:
    """The drift profile blob a version's summary points at, if any (it travels when
    the other side has it; drift tests rebuild it otherwise)."""
    profile = (stats or {}).get("profile")
    return profile if isinstance(profile, str) and is_digest(profile) else None
