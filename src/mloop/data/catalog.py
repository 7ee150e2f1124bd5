"""Reading datasets and versions: resolve refs, list, log, read trees, walk paths.

This is the read side of :mod:`mloop.data.versions`. It imports no SQLAlchemy: its
reads are the datasets repository's plain-SQL ones (:mod:`mloop.repositories.datasets`),
so that ``mloop data status``, ``checkout``, ``log`` and ``show`` start in a fraction of
the time the full store takes to import.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mloop.core.uris import DataURI, check_name, is_version, parse_uri, version_number
from mloop.data.chunks import FileEntry
from mloop.data.model import DatasetVersion, VersionKind, decode_tree
from mloop.errors import InvalidInputError, InvalidURIError
from mloop.project import Project
from mloop.repositories import backend

POINTER_SUFFIX = ".mloop"


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


def get(project: Project, ref: str) -> DatasetVersion:
    """The version a ref names; a bare name means the latest version."""
    uri = parse_ref(ref)
    selector: int | str | None = uri.ref
    if uri.ref is None or uri.ref == "latest":  # "train@latest" reads as it says
        selector = None
    elif is_version(uri.ref):
        selector = version_number(uri.ref, ref)
    return backend(project).datasets.find(uri.name, selector)


def log(project: Project, name: str) -> list[DatasetVersion]:
    """Every version of a dataset, newest first: the audit trail."""
    return backend(project).datasets.versions(name)


def list_datasets(project: Project) -> list[DatasetVersion]:
    """The latest version of every dataset."""
    return backend(project).datasets.latest_versions()


def source_paths(project: Project) -> list[str]:
    """Every project path a version was ever added from or checked out to."""
    return backend(project).datasets.source_paths()


def cached_stats(project: Project, paths: list[str]) -> dict[str, tuple[int, int, int, str]]:
    """The stat cache: project path → (size, mtime_ns, inode, digest) when last hashed."""
    found = backend(project).stat_cache.lookup(paths)
    return {p: (e.size, e.mtime_ns, e.inode, e.digest) for p, e in found.items()}


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
        return VersionKind.FILE, [(str(path), path.name, st)]
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
    return VersionKind.FOLDER, out


def collect(path: Path) -> tuple[str, list[tuple[Path, str]]]:
    """("file" | "folder", [(local path, path inside the version)]), sorted."""
    kind, files = scan(path)
    return kind, [(Path(full), rel) for full, rel, _ in files]
