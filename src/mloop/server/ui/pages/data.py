"""Datasets: every dataset, a dataset's versions, one version's schema and profile, and
the diff of two versions (schema, distribution shift, rows by key).

Reads go through :mod:`mloop.data` (catalog, summaries, compare) and the stored column
profiles of :mod:`mloop.monitoring.profile`; the pictures and row comparisons are
:mod:`mloop.server.ui.data_views`.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mloop import lineage
from mloop.data import catalog
from mloop.data.model import DatasetVersion, VersionKind
from mloop.data.stats import table_format
from mloop.errors import DatasetNotFoundError, InvalidInputError, InvalidURIError
from mloop.repositories import backend
from mloop.server.ui import data_views as dv
from mloop.server.ui.app import View, project_of
from mloop.server.ui.links import edge_rows, explore
from mloop.server.ui.render import Column, Context, Table, page, size

if TYPE_CHECKING:
    from mloop.monitoring.profile import Profile
    from mloop.project import Project

router = APIRouter()
T = TypeVar("T")

COLUMNS_PER_PAGE = 40  # column profiles drawn per page of a version
FILES_SHOWN = 500  # files listed of a folder version
ROW_DIFF_BYTES = 64 << 20  # larger versions are compared by their profiles only
# Rows of two versions are read into memory for a comparison: one comparison at a time, so
# a few requests at once queue instead of multiplying what the server holds.
_ROW_DIFFS = threading.BoundedSemaphore(1)
PROFILE_BYTES = 256 << 20  # a version without a stored profile is profiled up to this size
MEMO_SIZE = 24  # profiles, drift tests and row comparisons kept


# ── lookups ──────────────────────────────────────────────────────────────────────────
def _version(project: Project, name: str, ref: str = "latest") -> DatasetVersion:
    """The version ``ref`` (a number, a tag or ``latest``) of dataset ``name``; a name or
    ref that cannot exist is "not found" (a page address, not a typed ref)."""
    try:
        return catalog.get(project, f"{name}@{ref.removeprefix('@')}")
    except InvalidURIError:
        raise DatasetNotFoundError(f"No dataset version {name}@{ref}. See the datasets at "
                                   "/ui/data.") from None


def _versions(project: Project, name: str) -> list[DatasetVersion]:
    try:
        return catalog.log(project, name)
    except InvalidURIError:
        raise DatasetNotFoundError(f"No dataset named {name!r}.") from None


class _Memo:
    """Results computed from versions' contents, by their tree digests (content never
    changes, so neither do they): profiles, drift tests, row comparisons. The last few
    are kept by the UI application, so that paging through a diff reads nothing again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: OrderedDict[tuple[str, ...], Any] = OrderedDict()

    def get(self, key: tuple[str, ...], compute: Callable[[], T]) -> T:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                found: T = self.items[key]
                return found
        value = compute()  # outside the lock: two first readers both compute, both agree
        with self.lock:
            self.items[key] = value
            while len(self.items) > MEMO_SIZE:
                self.items.popitem(last=False)
        return value


def _memo(request: Request) -> _Memo:
    state = request.app.state
    memo = getattr(state, "data_memo", None)
    if memo is None:
        memo = state.data_memo = _Memo()
    assert isinstance(memo, _Memo)
    return memo


def _read_profile(project: Project, version: DatasetVersion) -> Profile | None:
    from mloop.monitoring.profile import of_dataset

    stored = (version.stats or {}).get("profile")
    if not stored and (version.kind == VersionKind.FOLDER and version.size > PROFILE_BYTES):
        return None  # a large folder is profiled by `mloop monitor`, not by a page view
    try:
        return of_dataset(project, version.ref)
    except InvalidInputError:
        return None  # not tabular: no columns to show


def _profile(request: Request, version: DatasetVersion) -> Profile | None:
    project = project_of(request)
    found: Profile | None = _memo(request).get(
        ("profile", version.tree), lambda: _read_profile(project, version))
    return found


# ── rows of tables ───────────────────────────────────────────────────────────────────
def _version_row(ctx: Context, v: DatasetVersion) -> dict[str, Any]:
    return {"version": v.version, "version_href": ctx.url("data", v.name, v.version),
            "tags": ", ".join(v.tags), "message": v.message, "user": v.user,
            "size": size(v.size), "bytes": v.size, "rows": v.rows, "files": v.files,
            "created_at": v.created_at, "digest": v.tree[:12]}


VERSION_COLUMNS = [
    Column("version", "Version", "link"), Column("tags", "Tags"),
    Column("message", "Message"), Column("user", "User"), Column("rows", "Rows", "num"),
    Column("size", "Size"), Column("files", "Files", "num"),
    Column("created_at", "Added", "time"), Column("digest", "Digest")]


def _lineage_table(project: Project, uri: str) -> Table:
    into, out_of = lineage.neighbours(project, uri)
    return Table("lineage", [Column("direction", "Direction"), Column("node", "Node", "link"),
                             Column("relation", "Relation"),
                             Column("created_at", "Recorded", "time")],
                 edge_rows(into, out_of), empty="No lineage recorded: no run read this "
                 "version and nothing produced it.")


# ── pages ────────────────────────────────────────────────────────────────────────────
@router.get("/data")
def datasets(ctx: Context = View) -> Response:
    """Every dataset with its latest version."""
    project = project_of(ctx.request)
    latest = catalog.list_datasets(project)
    counts = Counter(name for name, _, _ in backend(project).datasets.trees())
    rows = [{"name": v.name, "name_href": ctx.url("data", v.name),
             "latest": v.version, "latest_href": ctx.url("data", v.name, v.version),
             "versions": counts.get(v.name, 1), "rows": v.rows, "size": size(v.size),
             "files": v.files, "path": v.source_path, "message": v.message,
             "created_at": v.created_at} for v in latest]
    table = Table("datasets", [
        Column("name", "Dataset", "link"), Column("latest", "Latest", "link"),
        Column("versions", "Versions", "num"), Column("rows", "Rows", "num"),
        Column("size", "Size"), Column("files", "Files", "num"), Column("path", "Path"),
        Column("message", "Message"), Column("created_at", "Updated", "time")], rows,
        empty="No datasets yet. Version one with `mloop data add PATH --name NAME`.")
    return page(ctx, "data_list.html", title="Datasets", tables=[table])


# Declared before /data/{name}/{ref}: "diff" is this page, not a tag of that name.
@router.get("/data/{name}/diff")
def diff(name: str, *, a: str = "", b: str = "", key: str = "", ctx: Context = View,
         page_no: int = Query(1, alias="page")) -> Response:
    """What changed from version ``a`` to ``b``: files, schema, rows, distributions."""
    project = project_of(ctx.request)
    versions = _versions(project, name)
    va = _version(project, name, a or str(versions[min(1, len(versions) - 1)].version))
    vb = _version(project, name, b or str(versions[0].version))
    pa, pb = _profile(ctx.request, va), _profile(ctx.request, vb)
    label_a, label_b = f"v{va.version}", f"v{vb.version}"
    schema = dv.schema_change(pa, pb) if pa and pb else None
    keys = [c for c in (pa.columns if pa else {}) if pb is not None and c in pb.columns]
    pages = max(1, -(-len(keys) // COLUMNS_PER_PAGE))
    current = min(max(page_no, 1), pages)
    drawn = set(keys[(current - 1) * COLUMNS_PER_PAGE: current * COLUMNS_PER_PAGE])
    memo = _memo(ctx.request)
    moved = dv.shifts(memo.get(("drift", va.tree, vb.tree), lambda: dv.drift_report(pa, pb)),
                      label_a, label_b, drawn) if pa and pb else []
    files, whole_rows, keyed, note = memo.get(
        ("rows", va.tree, vb.tree, key), lambda: _compare_rows(project, va, vb, key or None))
    tables = [Table("shift", [
        Column("name", "Column"), Column("kind", "Kind"), Column("status", "Status"),
        Column("method", "Test"), Column("statistic", "Statistic", "num"),
        Column("p_value", "p-value", "num"), Column("effect", "Effect size"),
        Column("reason", "Notes")], [s.row() for s in moved],
        empty="No columns to compare (not tabular data).")]
    if files is not None:
        tables.append(Table("files", [Column("change", "Change"), Column("path", "Path")],
                            files, empty="The same files."))
    if keyed is not None:
        tables += _keyed_tables(keyed)
    return page(ctx, "data_diff.html", title=f"{name}: {label_a} → {label_b}", tables=tables,
                name=name, va=va, vb=vb, versions=versions, schema=schema,
                shifts=[s for s in moved if s.name in drawn], page_no=current, pages=pages,
                whole_rows=whole_rows, keyed=keyed, key=key, keys=keys, note=note,
                label_a=label_a, label_b=label_b)


def _single_table(v: DatasetVersion) -> bool:
    return v.kind == VersionKind.FILE and v.files == 1 and \
        table_format(v.source_path) is not None


def _compare_rows(project: Project, va: DatasetVersion, vb: DatasetVersion, key: str | None
                  ) -> tuple[list[dict[str, str]] | None, dict[str, Any] | None,
                             dv.RowChanges | None, str]:
    """(file changes of folders, whole-row counts, rows by ``key``, a note on what was
    not compared) of two versions."""
    from mloop.data.compare import diff, table_diff, version_bytes
    from mloop.data.stats import read_frame

    if not (_single_table(va) and _single_table(vb)):
        found = diff(project, va.ref, vb.ref)
        files = ([{"change": "added", "path": p} for p in found.added]
                 + [{"change": "removed", "path": p} for p in found.removed]
                 + [{"change": "changed", "path": p} for p in found.changed])
        note = "Rows are compared for versions of one CSV or Parquet file." if key else ""
        return files, None, None, note
    if max(va.size, vb.size) > ROW_DIFF_BYTES:
        return None, None, None, (f"Rows are not compared here above {size(ROW_DIFF_BYTES)} "
                                  f"a version; run `mloop data diff {va.ref} {vb.ref}"
                                  f"{' --key ' + key if key else ''}`.")
    with _ROW_DIFFS:
        frames = []
        for v in (va, vb):
            file_name, data = version_bytes(project, v.ref)
            fmt = table_format(file_name)
            assert fmt is not None
            frames.append(read_frame(data, fmt))
        old, new = frames
        whole = table_diff(old, new, None)["rows"]
        keyed = dv.row_changes(old, new, key) if key else None
    return None, whole, keyed, ""


def _keyed_tables(keyed: dv.RowChanges) -> list[Table]:
    def cols(names: list[str]) -> list[Column]:
        # row keys are positions: column names are arbitrary text (and may repeat "_href")
        return [Column(f"c{i}", str(n)) for i, n in enumerate(names)]

    def rows(records: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
        return [{f"c{i}": r.get(n) for i, n in enumerate(names)} for r in records]

    return [
        Table("added", cols(keyed.added_columns), rows(keyed.added_rows, keyed.added_columns),
              caption=f"First {len(keyed.added_rows)} of {keyed.added:,} rows added",
              empty="No rows added."),
        Table("removed", cols(keyed.removed_columns),
              rows(keyed.removed_rows, keyed.removed_columns),
              caption=f"First {len(keyed.removed_rows)} of {keyed.removed:,} rows removed",
              empty="No rows removed."),
        Table("changed", [Column("key", str(keyed.key)), Column("column", "Column"),
                          Column("a", "Before"), Column("b", "After")], keyed.cells,
              caption=f"Values changed in the first rows of {keyed.changed:,} changed",
              empty="No rows changed."),
    ]


@router.get("/data/{name}")
def dataset(name: str, ctx: Context = View) -> Response:
    """A dataset's versions, newest first, and a form to compare two."""
    project = project_of(ctx.request)
    versions = _versions(project, name)
    latest = versions[0]
    table = Table("versions", VERSION_COLUMNS, [_version_row(ctx, v) for v in versions])
    keys = sorted((latest.stats or {}).get("columns", {}))
    return page(ctx, "data_versions.html", title=f"Dataset {name}", tables=[table],
                name=name, latest=latest, versions=versions, keys=keys,
                lineage_href=explore(latest.uri))


@router.get("/data/{name}/{ref}")
def version(name: str, ref: str, ctx: Context = View,
            page_no: int = Query(1, alias="page")) -> Response:
    """One version: what it is, its schema, each column's profile, its validation result
    and lineage."""
    from mloop.data.summary import ensure

    project = project_of(ctx.request)
    v = ensure(project, _version(project, name, ref))  # a large table's summary: once
    profile = _profile(ctx.request, v)
    names = list(profile.columns) if profile else []
    pages = max(1, -(-len(names) // COLUMNS_PER_PAGE))
    current = min(max(page_no, 1), pages)
    shown = names[(current - 1) * COLUMNS_PER_PAGE: current * COLUMNS_PER_PAGE]
    views = dv.column_views(profile, v.stats, shown) if profile else []
    tables = [Table("schema", [
        Column("name", "Column"), Column("dtype", "Type"), Column("kind", "Kind"),
        Column("rows", "Rows", "num"), Column("missing", "Missing", "num"),
        Column("distinct", "Distinct", "num"), Column("min", "Min", "num"),
        Column("p50", "Median", "num"), Column("max", "Max", "num"),
        Column("mean", "Mean", "num"), Column("top", "Top values")],
        _schema_rows(profile, v.stats), empty="Not tabular data: no columns.")]
    validation = v.validation or None
    if validation:
        tables.append(Table("validation", [
            Column("column", "Column"), Column("check", "Check"), Column("result", "Result"),
            Column("measured", "Measured"), Column("expected", "Expected")],
            [{**c, "result": "pass" if c.get("passed") else "fail"}
             for c in validation.get("checks", [])]))
    if v.kind == VersionKind.FOLDER:
        entries = catalog.read_tree(project, v)
        tables.append(Table("files", [Column("path", "Path"), Column("size", "Size")],
                            [{"path": e.path, "size": size(e.size)}
                             for e in entries[:FILES_SHOWN]],
                            caption=f"{len(entries):,} files" + (
                                f", the first {FILES_SHOWN} listed"
                                if len(entries) > FILES_SHOWN else "")))
    tables.append(_lineage_table(project, v.uri))
    return page(ctx, "data_version.html", title=v.ref, tables=tables, v=v, views=views,
                validation=validation, page_no=current, pages=pages,
                lineage_href=explore(v.uri), sampled=(v.stats or {}).get("sample_rows"))


def _schema_rows(profile: Profile | None, stats: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per column: the profile's counts with the summary's exact min, max, mean
    (the summary alone for a version with no profile)."""
    exact: dict[str, Any] = (stats or {}).get("columns", {})
    if profile is None:
        return [{"name": n, "dtype": i.get("type"), "missing": i.get("nulls"),
                 "distinct": i.get("distinct"), "min": i.get("min"), "p50": i.get("p50"),
                 "max": i.get("max"), "mean": i.get("mean"),
                 "top": ", ".join(list(i.get("top", {}))[:3])} for n, i in exact.items()]
    rows = []
    for name, info in profile.columns.items():
        known = exact.get(name, {})
        labels = info.get("labels") if info.get("kind") == "categorical" else None
        rows.append({"name": name, "dtype": info.get("dtype"), "kind": info.get("kind"),
                     "rows": info.get("rows"), "missing": info.get("missing"),
                     "distinct": info.get("distinct", len(labels) if labels else None),
                     "min": known.get("min"), "p50": known.get("p50"),
                     "max": known.get("max"), "mean": known.get("mean"),
                     "top": ", ".join(map(str, (labels or [])[:3]))})
    return rows
