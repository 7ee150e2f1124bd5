"""A table version's summary and drift profile: computed on first use, then kept.

``mloop data add`` summarises a small table (up to :data:`EAGER_BYTES`) while it chunks
it, on the other core, for a fraction of a second. A larger table is versioned as bytes
only: reading and profiling it would cost more than versioning it. :func:`ensure`
computes its summary the first time something reads it (``mloop data show``, ``mloop
monitor drift --reference NAME@N``, a model card, ``mloop.data.get(ref,
summarize=True)``): with the same function an add runs, on the same bytes (the working
file when the stat cache says it still holds them, else a verified copy restored from
the object store), so the result is the one an eager add would have stored. It is kept
by content: the profile as a blob, the summary in the row of every version with the
same tree, in one transaction. Two first readers at once compute the same thing and the
first write stays.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from mloop.data import stats as _stats
from mloop.data.catalog import cached_stats, read_tree
from mloop.data.chunks import restore_file
from mloop.data.model import DatasetVersion, VersionKind
from mloop.project import PROJECT_DIR, Project
from mloop.repositories import backend

EAGER_BYTES = 16 << 20  # tables up to this size are summarised by the add itself


def deferred(version: DatasetVersion) -> bool:
    """Whether ``version`` is a table whose summary has not been computed yet."""
    return (version.stats is None and version.kind == VersionKind.FILE and version.size > 0
            and _stats.table_format(version.source_path) is not None)


def store_profile(project: Project, summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` as a version row keeps it: the distribution profile moved to a blob
    (what drift tests read), its digest under ``profile``."""
    out = dict(summary)
    profile = out.pop(_stats.PROFILE_KEY, None)
    if profile is not None:
        out["profile"] = project.objects.put_bytes(
            json.dumps(profile, separators=(",", ":")).encode())
    return out


def ensure(project: Project, version: DatasetVersion) -> DatasetVersion:
    """``version`` with its table summary, computed and stored first if it was deferred.

    Returns ``version`` unchanged when it has a summary already, is not one CSV or
    Parquet file, or does not parse as a table (then nothing is stored, and the next
    call tries again).
    """
    if not deferred(version):
        return version
    summary = _compute(project, version)
    if summary is None:
        return version
    stats = store_profile(project, summary)
    backend(project).datasets.fill_summary(version.tree, stats)
    return dataclasses.replace(version, stats=stats, rows=stats.get("rows"))


def _compute(project: Project, version: DatasetVersion) -> dict[str, Any] | None:
    entries = read_tree(project, version)
    if len(entries) != 1:
        return None
    entry = entries[0]
    local = project.root / version.source_path
    if _holds(project, local, version.source_path, entry.digest):
        summary = _stats.summarize_path(local)
        if _holds(project, local, version.source_path, entry.digest):  # not edited meanwhile
            return summary
    # mloop's own folder: ignored by git, on the project's disk
    with tempfile.TemporaryDirectory(dir=project.root / PROJECT_DIR, prefix="summary-") as tmp:
        copy = Path(tmp) / local.name  # the same name: the format is read from it
        restore_file(project.objects, entry, copy)  # verified against the digest
        return _stats.summarize_path(copy)


def _holds(project: Project, local: Path, source: str, digest: str) -> bool:
    """Whether the working file still holds ``digest``, by the stat cache (no read)."""
    try:
        st = local.stat()
    except OSError:
        return False
    hit = cached_stats(project, [source]).get(source)
    return hit is not None and hit == (st.st_size, st.st_mtime_ns, st.st_ino, digest)
