"""Reference profiles: a data set's distribution, kept so that drift needs no raw data.

``mloop data add`` stores one for every CSV or Parquet version (see
:func:`mloop.data.stats.profile_table`): per numeric column a 1,000-point quantile
sample, its standard deviation and, for few-valued columns, exact counts; per other
column the counts of its values. Tests against a profile run on the quantile sample
standing for the profile's rows: Kolmogorov–Smirnov statistics are within ~0.001 of the
raw data's and its p-value uses the asymptotic distribution with the profile's row count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.data.stats import unpack_floats
from mloop.errors import InvalidInputError
from mloop.monitoring.datadrift import _Col
from mloop.monitoring.stattests import Categorical, Numeric

if TYPE_CHECKING:
    from mloop.project import Project


@dataclass
class Profile:
    """Per-column distributions of a data set (``from_frame``, ``of_dataset``)."""

    rows: int
    columns: dict[str, dict[str, Any]]
    source: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> Profile:
        if data.get("format") != "mloop-profile/1":
            raise InvalidInputError("Not an mloop profile (format mloop-profile/1).")
        return cls(int(data["rows"]), dict(data["columns"]), source)

    @classmethod
    def from_frame(cls, frame: Any, source: str | None = None) -> Profile:
        """The profile of a DataFrame or Arrow table."""
        import pyarrow as pa

        from mloop.data.stats import profile_table

        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(
            frame, preserve_index=False)
        return cls.from_dict(profile_table(table), source)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "mloop-profile/1", "rows": self.rows, "columns": self.columns}

    def column(self, name: str) -> _Col:
        """One column as a drift-test side."""
        info = self.columns[name]
        kind, rows, missing = info["kind"], int(info["rows"]), int(info["missing"])
        if kind == "numeric":
            packed = info.get("quantiles")
            # sorted again: interpolated quantiles can be out of order by a rounding error
            quantiles = np.sort(unpack_floats(packed)) if packed else np.empty(0)
            counts = (Categorical(np.asarray(info["labels"], dtype=object),
                                  np.asarray(info["counts"], dtype=np.int64))
                      if "counts" in info else None)
            side = Numeric(quantiles, rows - missing, float(info.get("std", 0.0)),
                           exact=False, counts=counts, known_distinct=info.get("distinct"))
            return _Col("numeric", info["dtype"], rows, missing, side if len(quantiles) else None)
        if kind == "categorical":
            side_c = Categorical(np.asarray(info["labels"], dtype=object),
                                 np.asarray(info["counts"], dtype=np.int64),
                                 int(info.get("other", 0)))
            return _Col("categorical", info["dtype"], rows, missing, side_c)
        return _Col("other", info["dtype"], rows, missing)


def of_dataset(project: Project, ref: str) -> Profile:
    """The stored profile of dataset version ``ref`` (``train@3``, ``data:/train@3``);
    a table's is computed and stored on first use when its add deferred it; computed
    from the data each time for versions that keep none (folders of tables)."""
    from mloop.data import catalog
    from mloop.data.summary import ensure

    version = ensure(project, catalog.get(project, ref))  # a large table's: computed once
    digest = (version.stats or {}).get("profile")
    if digest:
        data = json.loads(project.objects.get_bytes(digest))
        return Profile.from_dict(data, source=version.uri)
    return Profile.from_frame(read_dataset(project, ref), source=version.uri)


def read_dataset(project: Project, ref: str) -> Any:
    """The rows of a dataset version (one CSV/Parquet file, or a folder of them) as an
    Arrow table, read from the object store."""
    import pyarrow as pa

    from mloop.data import catalog
    from mloop.data.chunks import read_entry
    from mloop.data.stats import read_table, table_format

    version = catalog.get(project, ref)
    cache: dict[str, bytes] = {}
    tables = [read_table(b"".join(read_entry(project.objects, entry, cache)), fmt)
              for entry in catalog.read_tree(project, version)
              if (fmt := table_format(entry.path)) is not None]
    if not tables:
        raise InvalidInputError(f"{version.uri} holds no CSV or Parquet file to compare.")
    return pa.concat_tables(tables, promote_options="default")
