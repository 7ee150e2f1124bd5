"""Data version control: datasets as immutable versions with chunk-level deduplication.

>>> import mloop
>>> v = mloop.data.add("data/train.csv", name="train", message="May export")  # doctest: +SKIP
>>> df = mloop.data.load("train@1")                                            # doctest: +SKIP

Every function takes ``project=`` (default: the current project).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.data.model import DatasetVersion
from mloop.project import Project, current_project

if TYPE_CHECKING:
    import pandas as pd

    from mloop.data.compare import DataDiff
    from mloop.data.garbage import GCResult
    from mloop.data.quality import ValidationResult
    from mloop.data.sync import TransferResult
    from mloop.data.workspace import CheckoutResult, PathStatus


def _m(name: str) -> Any:
    # Submodules load on first use (CLI start-up), and by full name: the functions
    # below share their names with the modules that implement them.
    return importlib.import_module(f"mloop.data.{name}")

__all__ = [
    "DatasetVersion",
    "add",
    "checkout",
    "diff",
    "gc",
    "get",
    "list_datasets",
    "load",
    "log",
    "pull",
    "push",
    "rollback",
    "status",
    "tag",
    "validate",
]


def _p(project: Project | None) -> Project:
    return project if project is not None else current_project()


def add(path: str | Path, name: str | None = None, message: str | None = None, *,
        project: Project | None = None) -> DatasetVersion:
    """Version a file or folder; only chunks the store lacks are written."""
    return _m("ingest").add(_p(project), path, name, message)


def get(ref: str, *, summarize: bool = False, project: Project | None = None) -> DatasetVersion:
    """The version ``ref`` names: ``train``, ``train@2``, ``train@golden``, ``data:/train@2``.

    With ``summarize``, a table whose add deferred its summary (over 16 MiB) gets it
    computed and stored first (once; later calls read it).
    """
    p = _p(project)
    version = _m("catalog").get(p, ref)
    return _m("summary").ensure(p, version) if summarize else version


def log(name: str, *, project: Project | None = None) -> list[DatasetVersion]:
    """Every version of a dataset, newest first."""
    return _m("catalog").log(_p(project), name)


def list_datasets(*, project: Project | None = None) -> list[DatasetVersion]:
    """The latest version of each dataset."""
    return _m("catalog").list_datasets(_p(project))


def checkout(ref: str | None = None, path: str | Path | None = None, *,
             project: Project | None = None) -> CheckoutResult | list[CheckoutResult]:
    """Restore a version's exact bytes at ``path`` (default: where it was added from).

    With no ``ref``: restore every tracked path to the version its ``PATH.mloop`` names
    (after ``git checkout``); returns one result per path.
    """
    if ref is None:
        return _m("workspace").checkout_pointers(_p(project))
    return _m("workspace").checkout(_p(project), ref, path)


def status(*, project: Project | None = None) -> list[PathStatus]:
    """Which tracked paths differ from their dataset's latest version."""
    return _m("workspace").status(_p(project))


def diff(a: str, b: str, *, key: str | None = None,
         project: Project | None = None) -> DataDiff:
    """Files, schema, rows and column shifts between two versions."""
    return _m("compare").diff(_p(project), a, b, key)


def tag(ref: str, name: str, *, project: Project | None = None) -> DatasetVersion:
    """Name a version (``train@golden``); moving an existing tag is allowed."""
    return _m("versions").tag(_p(project), ref, name)


def rollback(name: str, version: int, *, project: Project | None = None) -> DatasetVersion:
    """Make a new version with the content of ``version`` (history is kept)."""
    from mloop.core.process import command_line, current_user

    return _m("versions").rollback(_p(project), name, version, user=current_user(),
                                   command=command_line())


def load(ref: str, *, project: Project | None = None) -> pd.DataFrame:
    """A CSV or Parquet version as a DataFrame; inside a run, records that the run read it."""
    from mloop import lineage
    from mloop.data.stats import read_frame, table_format
    from mloop.errors import InvalidInputError

    p = _p(project)
    version = _m("catalog").get(p, ref)
    name, data = _m("compare").version_bytes(p, version.ref)
    fmt = table_format(name)
    if fmt is None:
        raise InvalidInputError(f"{version.ref} is {name!r}; load reads CSV or Parquet. Use "
                                "mloop.data.workspace for other files.")
    frame = read_frame(data, fmt)
    run_id = lineage.active_run_id()
    if run_id is not None:
        lineage.add_edge(p, version.uri, f"runs:/{run_id}", "input")
    return frame


def validate(ref: str, schema: str | Path, *,
             project: Project | None = None) -> ValidationResult:
    """Check a tabular version against a schema file; the result is stored with it."""
    return _m("quality").validate(_p(project), ref, schema)


def push(remote: str | None = None, refs: Iterable[str] | None = None, *,
         project: Project | None = None) -> TransferResult:
    """Send the blobs and version records a remote lacks (all versions, or ``refs``);
    a number the remote holds with other data is a ConflictError."""
    return _m("sync").push(_p(project), remote, refs)


def pull(remote: str | None = None, refs: Iterable[str] | None = None, *,
         project: Project | None = None) -> TransferResult:
    """Fetch, record and check out what the pointer files name (or ``refs``: pointer
    files, data paths, ``NAME@N``), as after ``git clone``; paths with changes no version
    has are kept and listed in ``result.kept``."""
    return _m("sync").pull(_p(project), remote, refs)


def gc(*, dry_run: bool = False, project: Project | None = None) -> GCResult:
    """Delete blobs no version, artifact or run references (recent ones are spared)."""
    return _m("garbage").gc(_p(project), dry_run=dry_run)
