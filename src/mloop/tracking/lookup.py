"""Run ids and artifact listings read without SQLAlchemy (the model-loading path).

``mloop.load_model`` in a fresh process must not pay for importing SQLAlchemy (~0.2 s
of a ~1 s cold load): these look-ups go through :mod:`mloop.store.lite`, which runs
them over ``sqlite3`` on the embedded store and through the full Store anywhere else
(PostgreSQL, or a store not at this release's schema).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mloop.core.ids import short_id
from mloop.core.paths import safe_join, safe_relpath
from mloop.errors import ArtifactNotFoundError, InvalidInputError, RunNotFoundError
from mloop.store.lite import lite
from mloop.tracking.model import ArtifactInfo

if TYPE_CHECKING:
    from mloop.project import Project

_HEX = frozenset("0123456789abcdef")


def resolve_run_id(project: Project, run_id: str) -> str:
    """The full id of a run given its id, or a unique prefix or suffix of >= 6 hex digits.

    Short ids shown by the CLI are suffixes (see :func:`mloop.core.ids.short_id`).
    """
    run_id = run_id.strip().lower() if isinstance(run_id, str) else ""
    hexadecimal = all(c in _HEX for c in run_id)
    if len(run_id) >= 6 and hexadecimal:
        with lite(project).read() as q:
            if len(run_id) == 32:
                if q.all("SELECT id FROM runs WHERE id = :id", {"id": run_id}):
                    return run_id
            else:  # hex digits only: nothing in the pattern is a LIKE wildcard
                for pattern in (run_id + "%", "%" + run_id):
                    found = q.all("SELECT id FROM runs WHERE id LIKE :p LIMIT 2",
                                  {"p": pattern})
                    if len(found) > 1:
                        raise InvalidInputError(f"Run id {run_id!r} matches several runs; "
                                                "give more digits.")
                    if found:
                        return str(found[0]["id"])
    why = ""
    if not hexadecimal:
        why = " (run ids are hexadecimal: 0-9 and a-f)"
    elif len(run_id) < 6:
        why = (f" ({len(run_id)} characters: give at least 6 characters of an id, as the "
               "12 that `mloop runs list` shows)")
    raise RunNotFoundError(f"No run with id {run_id!r}{why}. List runs with `mloop runs list`.")


def list_artifacts(project: Project, run_id: str, path: str = "") -> list[ArtifactInfo]:
    """Artifacts of a run at or under ``path`` (all of them for ``""``)."""
    rel = safe_relpath(path, allow_empty=True)
    sql = "SELECT path, size, digest FROM artifacts WHERE run_id = :run"
    params: dict[str, object] = {"run": run_id}
    if rel:  # a prefix compared as text: '%' and '_' in a path are not wildcards
        sql += " AND (path = :rel OR substr(path, 1, :n) = :under)"
        params.update(rel=rel, n=len(rel) + 1, under=rel + "/")
    with lite(project).read() as q:
        rows = q.all(sql + " ORDER BY path", params)
    return [ArtifactInfo(r["path"], r["size"], r["digest"]) for r in rows]


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
