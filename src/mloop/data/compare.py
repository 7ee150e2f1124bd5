"""``mloop data diff``: what changed between two versions.

Files: added, removed, changed (by digest). For two CSV/Parquet versions also the schema
change, rows added / removed / changed (matched by a key column when given, otherwise
by a hash of each whole row, so an edited row counts as one removed and one added), and
the shift of each numeric column's mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mloop.data.catalog import get, read_tree
from mloop.data.chunks import read_entry
from mloop.data.model import VersionKind
from mloop.data.stats import read_frame, table_format
from mloop.errors import InvalidInputError
from mloop.project import Project


@dataclass
class DataDiff:
    a: str
    b: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    table: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "files": {"added": self.added,
                                                    "removed": self.removed,
                                                    "changed": self.changed},
                "table": self.table}


def version_bytes(project: Project, ref: str) -> tuple[str, bytes]:
    """(file name, verified bytes) of a single-file version."""
    version = get(project, ref)
    entries = read_tree(project, version)
    if version.kind != VersionKind.FILE or len(entries) != 1:
        raise InvalidInputError(f"{version.ref} is a folder; name a single-file dataset.")
    entry = entries[0]
    data = b"".join(read_entry(project.objects, entry))
    return entry.path, data


def diff(project: Project, a: str, b: str, key: str | None = None) -> DataDiff:
    """Compare versions ``a`` and ``b`` (refs such as ``train@1`` and ``train@2``)."""
    va, vb = get(project, a), get(project, b)
    ea, eb = read_tree(project, va), read_tree(project, vb)  # each tree read once
    fa = {e.path: e.digest for e in ea}
    fb = {e.path: e.digest for e in eb}
    single = (va.kind == vb.kind == VersionKind.FILE) and len(ea) == 1 and len(eb) == 1
    if single:  # one file each: compare regardless of name
        fa, fb = {eb[0].path: ea[0].digest}, {eb[0].path: eb[0].digest}
    out = DataDiff(va.ref, vb.ref, added=sorted(set(fb) - set(fa)),
                   removed=sorted(set(fa) - set(fb)),
                   changed=sorted(k for k in set(fa) & set(fb) if fa[k] != fb[k]))
    fmt = table_format(ea[0].path) if single else None
    if fmt and fmt == table_format(eb[0].path):
        old = b"".join(read_entry(project.objects, ea[0]))
        new = b"".join(read_entry(project.objects, eb[0]))
        out.table = table_diff(read_frame(old, fmt), read_frame(new, fmt), key)
    return out


def table_diff(old: Any, new: Any, key: str | None) -> dict[str, Any]:
    """Schema, row and column-shift differences of two DataFrames (vectorised)."""
    import pandas as pd

    schema = {
        "added": sorted(set(new.columns) - set(old.columns)),
        "removed": sorted(set(old.columns) - set(new.columns)),
        "type_changed": {c: [str(old[c].dtype), str(new[c].dtype)]
                         for c in sorted(set(old.columns) & set(new.columns))
                         if str(old[c].dtype) != str(new[c].dtype)},
    }
    common = [c for c in old.columns if c in set(new.columns)]
    rows: dict[str, Any] = {"old": len(old), "new": len(new)}
    if key is not None:
        if key not in old.columns or key not in new.columns:
            raise InvalidInputError(f"Key column {key!r} is not in both versions.")
        o, n = old.set_index(key)[[c for c in common if c != key]], \
            new.set_index(key)[[c for c in common if c != key]]
        both = o.index.intersection(n.index)
        rows["added"] = len(n.index.difference(o.index))
        rows["removed"] = len(o.index.difference(n.index))
        ho = pd.util.hash_pandas_object(o.loc[both], index=True)
        hn = pd.util.hash_pandas_object(n.loc[both], index=True)
        rows["changed"] = int((ho.values != hn.reindex(ho.index).values).sum())
        rows["matched_by"] = key
    else:
        ho = pd.util.hash_pandas_object(old[common], index=False).value_counts()
        hn = pd.util.hash_pandas_object(new[common], index=False).value_counts()
        delta = hn.sub(ho, fill_value=0)
        rows["added"] = int(delta[delta > 0].sum())
        rows["removed"] = int(-delta[delta < 0].sum())
        rows["matched_by"] = "row hash"
    shift = {}
    for c in common:
        if pd.api.types.is_numeric_dtype(old[c]) and pd.api.types.is_numeric_dtype(new[c]) \
                and not pd.api.types.is_bool_dtype(old[c]):
            a, b = float(old[c].mean()), float(new[c].mean())
            shift[c] = {"mean_old": a, "mean_new": b, "mean_change": b - a}
    return {"schema": schema, "rows": rows, "columns": shift}
