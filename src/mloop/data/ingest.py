"""``mloop data add``: snapshot a file or folder as the next version of a dataset."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mloop.core.process import command_line, current_user
from mloop.core.redact import get_logger
from mloop.core.text import check_optional, check_text
from mloop.core.uris import check_name
from mloop.data import stats as _stats
from mloop.data import summary as _summary
from mloop.data.catalog import get, list_datasets, project_relpath, read_tree
from mloop.data.chunks import FileEntry
from mloop.data.model import DatasetVersion, VersionKind
from mloop.data.pointer import ignore_pattern, write_pointer
from mloop.data.repair import damaged, rebuild
from mloop.data.versions import MAX_PATH, insert_version, snapshot, store_tree
from mloop.data.workspace import current_digests, remember_stats
from mloop.errors import InvalidInputError, NotFoundError
from mloop.project import Project

log = get_logger(__name__)


def default_name(path: Path) -> str:
    """``data/train.csv`` → ``train``; a folder → its name."""
    stem = path.name.split(".")[0] if path.is_file() else path.name
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem).strip("-.")
    return cleaned or "data"


def add(project: Project, path: str | Path, name: str | None = None,
        message: str | None = None, *, quiet: bool = False) -> DatasetVersion:
    """Version ``path`` (a file or folder inside the project) as dataset ``name``.

    The name defaults to the dataset already tracking this path, else the file stem.
    Only chunks the store lacks are written. Content equal to the latest version makes
    no new version: the latest is returned, and a ``message`` is not recorded (a
    version's message is fixed when it is made), which a warning says. Writes
    ``PATH.mloop`` and a .gitignore entry. A table's summary and drift profile are
    computed here up to 16 MiB, else on first use (:mod:`mloop.data.summary`).
    """
    check_optional(message, "message")
    local = Path(path)
    if not local.exists():
        raise InvalidInputError(f"Cannot add {str(local)!r}: no such file or folder.")
    if local.name in ("", ".", ".."):  # "data/.." names a folder by where it leads
        local = Path(os.path.abspath(local))
    if local.resolve() == project.root.resolve():
        raise InvalidInputError("Cannot add the project folder itself: add a file or a "
                                "folder inside it (e.g. `mloop data add data/`).")
    ignore_pattern(local.name)  # a name .gitignore cannot hold is refused before any work
    source = check_text(project_relpath(project, local), "path", MAX_PATH)
    name = check_name(name, "dataset name") if name else _tracked_name(project, source, local)
    try:
        latest: DatasetVersion | None = get(project, name)
    except NotFoundError:
        latest = None
    previous = (read_tree(project, latest)
                if latest is not None and latest.source_path == source else None)
    if latest is not None and previous is not None and _unchanged(
            project, latest, previous, local, source):
        lost = _lost(project, latest, previous)
        if not lost:
            write_pointer(local, latest)  # known bytes, known stat: nothing to read or store
            return _kept(latest, message)
        # not rebuilt: store the bytes afresh (a new version), reusing no damaged blob
        previous = [e for e in previous if not any(c[0] in lost for c in e.chunks)]
    # A small table is summarised while its bytes are chunked (both release the GIL); a
    # larger one on first use (mloop.data.summary): profiling is not the add's work.
    eager = local.is_file() and local.stat().st_size <= _summary.EAGER_BYTES
    with ThreadPoolExecutor(max_workers=1) as side:
        summary_job = side.submit(_stats.summarize_path, local) if eager else None
        kind, entries, stats = snapshot(project, local, quiet=quiet, previous=previous or (),
                                        source=source)
        summary = summary_job.result() if summary_job is not None else None
    if summary is not None:  # its profile (what drift tests read) becomes a blob
        summary = _summary.store_profile(project, summary)
    tree = store_tree(project, kind, entries)
    if latest is not None and latest.tree == tree and latest.source_path == source:
        version = _kept(latest, message)  # unchanged: no new version
    else:
        version = insert_version(project, name, kind=kind, tree=tree, source=source,
                                 entries=entries, extra={
            "rows": summary.get("rows") if summary else None,
            "stats": summary or None,
            "message": message, "user": current_user(), "command": command_line()})
    write_pointer(local, version)
    remember_stats(project, local, source, kind, entries, stats=stats)
    # Tracking registers the active run with mloop.lineage when it is imported: without
    # it no run is active, and importing lineage would slow every add.
    lineage = sys.modules.get("mloop.lineage")
    run_id = lineage.active_run_id() if lineage is not None else None
    if lineage is not None and run_id is not None:
        lineage.add_edge(project, f"runs:/{run_id}", version.uri, "output")
    return version


def _kept(latest: DatasetVersion, message: str | None) -> DatasetVersion:
    """The latest version, for content it already holds; a new message is not kept."""
    if message is not None and message != latest.message:
        log.warning("unchanged: %s already holds these bytes; message not recorded (a "
                    "version's message is fixed when it is made)", latest.ref)
    return latest


def _unchanged(project: Project, latest: DatasetVersion, previous: list[FileEntry],
               local: Path, source: str) -> bool:
    """Whether ``local`` still holds ``latest``, judged by the stat cache alone."""
    folder = latest.kind == VersionKind.FOLDER
    want = {(e.path if folder else local.name): e.digest for e in previous}
    return current_digests(project, local, source, cached_only=True) == want


def _lost(project: Project, latest: DatasetVersion, previous: list[FileEntry]) -> set[str]:
    """The blobs ``latest`` needs that are missing or truncated and could not be rebuilt
    from the (unchanged) files. Costs a stat per blob when nothing is wrong; a blob
    corrupted in place at the same size is for ``mloop fsck``."""
    bad = damaged(project.objects, previous)
    if bad:
        bad -= set(rebuild(project, bad, [(latest, previous)]))
    return bad


def _tracked_name(project: Project, source: str, local: Path) -> str:
    for version in list_datasets(project):
        if version.source_path == source:
            return version.name
    return default_name(local)
