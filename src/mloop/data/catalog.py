"""Reading datasets and versions: resolve refs, list, log, read trees, walk paths.

This is the read side of :mod:`mloop.data.versions`. It imports no SQLAlchemy: its
queries are portable SQL run through :mod:`mloop.store.lite`, so that ``mloop data
status``, ``checkout``, ``log`` and ``show`` start in a fraction of the time the full
store takes to import.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mloop.core.uris import DataURI, check_name, parse_uri
from mloop.data.chunks import FileEntry
from mloop.data.model import DatasetVersion, decode_tree
from mloop.errors import InvalidInputError, InvalidURIError, NotFoundError
from mloop.project import Project
from mloop.store.lite import Query, Row, in_list, lite

POINTER_SUFFIX = ".mloop"

# "user" is quoted: on PostgreSQL a bare `user` is the CURRENT_USER function.
_VERSION_COLUMNS = ('d.name, v.version, v.tree, v.kind, v.source_path, v.size, v.files, '
                    'v.rows, v.stats, v.validation, v.message, v."user", v.command, '
                    'v.created_at')
_VERSIONS = (f"SELECT {_VERSION_COLUMNS} FROM dataset_versions v "
             "JOIN datasets d ON d.id = v.dataset_id")


class DatasetNotFoundError(NotFoundError):
    code = "dataset_not_found"


def parse_ref(ref: str) -> DataURI:
    """``train``, ``train@2``, ``train@golden`` or ``data:/train@2``."""
    if ref.startswith("data:/"):
        parsed = parse_uri(ref)
        assert isinstance(parsed, DataURI)
        return parsed
    name, sep, rest = ref.partition("@")
    if sep and not rest:
        raise InvalidURIError(f"{ref!r}: nothing after '@'; write e.g. '{name}@2'.")
    return DataURI(check_name(name, "dataset name"), check_name(rest, "version or tag") if sep
                   else None)


def _to_version(row: Row, tags: list[str]) -> DatasetVersion:
    return DatasetVersion(
        name=row["name"], version=row["version"], tree=row["tree"], kind=row["kind"],
        source_path=row["source_path"], size=row["size"], files=row["files"],
        rows=row["rows"], stats=json.loads(row["stats"]) if row["stats"] else None,
        validation=json.loads(row["validation"]) if row["validation"] else None,
        message=row["message"], user=row["user"], command=row["command"],
        created_at=row["created_at"], tags=tags)


def _tags_of(q: Query, dataset_id: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in q.all("SELECT tag, version FROM dataset_tags WHERE dataset_id = :ds ORDER BY tag",
                   {"ds": dataset_id}):
        out.setdefault(r["version"], []).append(r["tag"])
    return out


def _dataset_id(q: Query, name: str, hint: str) -> str:
    rows = q.all("SELECT id FROM datasets WHERE name = :name", {"name": name})
    if not rows:
        raise DatasetNotFoundError(f"No dataset named {name!r}. {hint}")
    ds_id: str = rows[0]["id"]
    return ds_id


def get(project: Project, ref: str) -> DatasetVersion:
    """The version a ref names; a bare name means the latest version."""
    uri = parse_ref(ref)
    with lite(project).read() as q:
        ds = _dataset_id(q, uri.name, f"Add one with `mloop data add PATH --name {uri.name}`.")
        where = "v.dataset_id = :ds"
        params: dict[str, Any] = {"ds": ds}
        if uri.ref is None:
            where += " ORDER BY v.version DESC LIMIT 1"
        elif uri.ref.isdigit():
            where += " AND v.version = :version"
            params["version"] = int(uri.ref)
        else:
            tagged = q.all("SELECT version FROM dataset_tags WHERE dataset_id = :ds "
                           "AND tag = :tag", {"ds": ds, "tag": uri.ref})
            if not tagged:
                raise DatasetNotFoundError(f"Dataset {uri.name!r} has no version or tag "
                                           f"{uri.ref!r}. See `mloop data log {uri.name}`.")
            where += " AND v.version = :version"
            params["version"] = tagged[0]["version"]
        rows = q.all(f"{_VERSIONS} WHERE {where}", params)
        if not rows:
            raise DatasetNotFoundError(f"Dataset {uri.name!r} has no version {uri.ref}. "
                                       f"See `mloop data log {uri.name}`.")
        tags = _tags_of(q, ds).get(rows[0]["version"], [])
    return _to_version(rows[0], tags)


def log(project: Project, name: str) -> list[DatasetVersion]:
    """Every version of a dataset, newest first: the audit trail."""
    with lite(project).read() as q:
        ds = _dataset_id(q, name, "List them with `mloop data list`.")
        tags = _tags_of(q, ds)
        rows = q.all(f"{_VERSIONS} WHERE v.dataset_id = :ds ORDER BY v.version DESC",
                     {"ds": ds})
    return [_to_version(r, tags.get(r["version"], [])) for r in rows]


def list_datasets(project: Project) -> list[DatasetVersion]:
    """The latest version of every dataset."""
    with lite(project).read() as q:
        rows = q.all(f"{_VERSIONS} JOIN (SELECT dataset_id, MAX(version) AS latest "
                     "FROM dataset_versions GROUP BY dataset_id) m "
                     "ON m.dataset_id = v.dataset_id AND m.latest = v.version ORDER BY d.name")
    return [_to_version(r, []) for r in rows]


def source_paths(project: Project) -> list[str]:
    """Every project path a version was ever added from or checked out to."""
    with lite(project).read() as q:
        rows = q.all("SELECT DISTINCT source_path FROM dataset_versions ORDER BY source_path")
    return [r["source_path"] for r in rows]


def cached_stats(project: Project, paths: list[str]) -> dict[str, tuple[int, int, int, str]]:
    """The stat cache: project path → (size, mtime_ns, inode, digest) when last hashed."""
    out: dict[str, tuple[int, int, int, str]] = {}
    with lite(project).read() as q:
        for start in range(0, len(paths), 900):
            placeholders, params = in_list("p", paths[start:start + 900])
            for r in q.all("SELECT path, size, mtime_ns, inode, digest FROM stat_cache "
                           f"WHERE path IN ({placeholders})", params):
                out[r["path"]] = (r["size"], r["mtime_ns"], r["inode"], r["digest"])
    return out


def read_tree(project: Project, version: DatasetVersion) -> list[FileEntry]:
    """The files of a version, with their chunk lists."""
    data = decode_tree(project.objects.get_bytes(version.tree))
    return [FileEntry.from_json(f) for f in data["files"]]


def project_relpath(project: Project, path: Path) -> str:
    """``path`` relative to the project root; data outside the project is refused."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(project.root).as_posix()
    except ValueError:
        raise InvalidInputError(f"{path} is outside the project at {project.root}; move or copy "
                                "it inside the project to version it.") from None


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != ".mloop")
        for name in sorted(filenames):
            if not name.endswith(POINTER_SUFFIX):
                yield Path(dirpath) / name


def collect(path: Path) -> tuple[str, list[tuple[Path, str]]]:
    """("file" | "folder", [(local path, path inside the version)])."""
    if path.is_file():
        return "file", [(path, path.name)]
    if path.is_dir():
        return "folder", [(f, f.relative_to(path).as_posix()) for f in _walk(path)]
    raise InvalidInputError(f"Cannot add {str(path)!r}: no such file or folder.")
