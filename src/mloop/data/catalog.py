"""Reading datasets and versions: resolve refs, list, log, read trees, walk paths.

This is the read side of :mod:`mloop.data.versions`. It imports no SQLAlchemy: its
queries are portable SQL run through :mod:`mloop.store.lite`, so that ``mloop data
status``, ``checkout``, ``log`` and ``show`` start in a fraction of the time the full
store takes to import.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from mloop.core.uris import DataURI, check_name, is_version, parse_uri, version_number
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
        if uri.ref is None or uri.ref == "latest":  # "train@latest" reads as it says
            where += " ORDER BY v.version DESC LIMIT 1"
        elif is_version(uri.ref):
            where += " AND v.version = :version"
            params["version"] = version_number(uri.ref, ref)
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


_WHOLE_CACHE = 2000


def cached_stats(project: Project, paths: list[str]) -> dict[str, tuple[int, int, int, str]]:
    """The stat cache: project path → (size, mtime_ns, inode, digest) when last hashed."""
    out: dict[str, tuple[int, int, int, str]] = {}
    columns = "SELECT path, size, mtime_ns, inode, digest FROM stat_cache"
    with lite(project).read() as q:
        if len(paths) > _WHOLE_CACHE:  # a big folder: one scan beats many IN lists
            wanted = set(paths)
            for r in q.all(columns):
                if r["path"] in wanted:
                    out[r["path"]] = (r["size"], r["mtime_ns"], r["inode"], r["digest"])
            return out
        for start in range(0, len(paths), 900):
            placeholders, params = in_list("p", paths[start:start + 900])
            for r in q.all(f"{columns} WHERE path IN ({placeholders})", params):
                out[r["path"]] = (r["size"], r["mtime_ns"], r["inode"], r["digest"])
    return out


def read_tree(project: Project, version: DatasetVersion) -> list[FileEntry]:
    """The files of a version, with their chunk lists."""
    data = decode_tree(project.objects.get_bytes(version.tree))
    return [FileEntry.from_json(f) for f in data["files"]]


def tree_digests(project: Project, version: DatasetVersion) -> list[tuple[str, str]]:
    """(path, digest) of each file of a version: what status compares, without chunk lists."""
    data = decode_tree(project.objects.get_bytes(version.tree))
    return [(f["path"], f["digest"]) for f in data["files"]]


def project_relpath(project: Project, path: Path) -> str:
    """``path`` relative to the project root; data outside the project is refused."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(project.root).as_posix()
    except ValueError:
        raise InvalidInputError(f"{path} is outside the project at {project.root}; move or copy "
                                "it inside the project to version it.") from None


def scan(path: Path) -> tuple[str, list[tuple[str, str, os.stat_result]]]:
    """("file" | "folder", [(file path, path inside the version, its stat)]), sorted.

    One ``scandir`` walk on plain strings: a folder of 20,000 files costs one stat each
    and no path objects. ``.mloop`` folders and ``*.mloop`` pointer files are skipped.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidInputError(f"Cannot add {str(path)!r}: no such file or folder.") from None
    if stat.S_ISREG(st.st_mode):
        return "file", [(str(path), path.name, st)]
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"Cannot add {str(path)!r}: not a regular file or folder.")
    out: list[tuple[str, str, os.stat_result]] = []
    stack = [(str(path), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != ".mloop":
                        stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif not entry.name.endswith(POINTER_SUFFIX) and entry.is_file():
                    out.append((entry.path, prefix + entry.name, entry.stat()))
    out.sort(key=lambda item: item[1])
    return "folder", out


def collect(path: Path) -> tuple[str, list[tuple[Path, str]]]:
    """("file" | "folder", [(local path, path inside the version)]), sorted."""
    kind, files = scan(path)
    return kind, [(Path(full), rel) for full, rel, _ in files]
