"""Run ids and artifact listings read without SQLAlchemy (the model-loading path).

``mloop.load_model`` in a fresh process must not pay for importing SQLAlchemy (~0.2 s
of a ~1 s cold load): the look-ups are the runs repository's plain-SQL half
(:mod:`mloop.repositories.runs`), which runs them over ``sqlite3`` on the embedded
store and through the full Store anywhere else.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mloop.core.ids import short_id
from mloop.core.paths import safe_join, safe_relpath
from mloop.errors import ArtifactNotFoundError
from mloop.repositories.runs import list_artifacts, resolve_run_id

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["download", "list_artifacts", "read_artifact", "resolve_run_id"]


def read_artifact(project: Project, run_id: str, path: str) -> bytes:
    """The verified bytes of one artifact file."""
    rel = safe_relpath(path)
    found = [a for a in list_artifacts(project, run_id, rel) if a.path == rel]
    if not found:
        raise ArtifactNotFoundError(
            f"Run {short_id(run_id)} has no artifact {rel!r}. "
            f"See `mloop runs show {short_id(run_id)}`.")
    return project.objects.get_bytes(found[0].digest)


def download(project: Project, run_id: str, path: str, dest: str | Path) -> Path:
    """Copy an artifact file, or a folder of them, into ``dest``; returns the local path.

    Every byte is verified against its digest before it is written.
    """
    items = list_artifacts(project, run_id, path)
    if not items:
        raise ArtifactNotFoundError(
            f"Run {short_id(run_id)} has no artifact at {path or '/'!r}. "
            f"See `mloop runs show {short_id(run_id)}`.")
    rel = safe_relpath(path, allow_empty=True)
    dest = Path(dest)
    if len(items) == 1 and items[0].path == rel:
        target = dest / PurePosixPath(rel).name if dest.is_dir() else dest
        project.objects.get_file(items[0].digest, target)
        return target
    root = dest / PurePosixPath(rel).name if rel else dest
    for item in items:
        sub = item.path[len(rel) + 1:] if rel else item.path
        project.objects.get_file(item.digest, safe_join(root, sub))
    return root
