"""Tabular awareness: schema, row count and per-column summaries of CSV and Parquet files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.data.chunks import FileEntry
from mloop.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from mloop.project import Project

TABULAR = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
TOP_K = 5


def table_format(name: str) -> str | None:
    """``csv``, ``parquet`` or ``None`` from a file name."""
    return TABULAR.get(Path(name).suffix.lower())


def read_frame(source: str | Path | bytes, fmt: str) -> pd.DataFrame:
    """Read a CSV or Parquet file (or its bytes) with pyarrow into pandas."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        table = pacsv.read_csv(handle) if fmt == "csv" else pq.read_table(handle)
    except Exception as exc:  # pyarrow raises many types for malformed input
        raise InvalidInputError(f"Cannot read the {fmt.upper()} data: {exc}") from exc
    return table.to_pandas()


def summarize_frame(df: pd.DataFrame, fmt: str) -> dict[str, Any]:
    """Schema, rows and a per-column summary (numbers: min/max/mean/quartiles; else top values)."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in df.columns:
        col = df[name]
        info: dict[str, Any] = {"type": str(col.dtype), "nulls": int(col.isna().sum())}
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values = col.dropna()
            if len(values):
                q = values.quantile([0.25, 0.5, 0.75]).tolist()
                info.update(min=float(values.min()), max=float(values.max()),
                            mean=float(values.mean()), p25=q[0], p50=q[1], p75=q[2])
        else:
            counts = col.astype("string").value_counts(dropna=True)
            info.update(distinct=len(counts),
                        top={str(k): int(v) for k, v in counts.head(TOP_K).items()})
        columns[str(name)] = info
    return {"format": fmt, "rows": len(df), "columns": columns}


def summarize_entries(project: Project, local: Path, kind: str,
                      entries: list[FileEntry]) -> dict[str, Any] | None:
    """The summary of a single-file CSV/Parquet version (``None`` for anything else)."""
    if kind != "file" or len(entries) != 1:
        return None
    fmt = table_format(local.name)
    if fmt is None:
        return None
    try:
        return summarize_frame(read_frame(local, fmt), fmt)
    except InvalidInputError:
        return None  # not parseable as a table: versioned as plain bytes
