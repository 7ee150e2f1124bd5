"""Tabular awareness: schema, row count and per-column summaries of CSV and Parquet files."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd


TABULAR = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
TOP_K = 5


def table_format(name: str) -> str | None:
    """``csv``, ``parquet`` or ``None`` from a file name."""
    return TABULAR.get(Path(name).suffix.lower())


def read_frame(source: str | Path | bytes, fmt: str) -> pd.DataFrame:
    """Read a CSV or Parquet file (or its bytes) with pyarrow into pandas."""
    return read_table(source, fmt).to_pandas()


def read_table(source: str | Path | bytes, fmt: str) -> Any:
    """A CSV or Parquet file (or its bytes) as a pyarrow Table."""
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        if fmt == "csv":  # each reader imported only when needed (~0.15 s apiece)
            import pyarrow.csv as pacsv

            return pacsv.read_csv(handle)
        import pyarrow.parquet as pq

        return pq.read_table(handle)
    except Exception as exc:  # pyarrow raises many types for malformed input
        raise InvalidInputError(f"Cannot read the {fmt.upper()} data: {exc}") from exc


def summarize_table(table: Any, fmt: str) -> dict[str, Any]:
    """Schema, rows and per-column summary, computed in Arrow (no pandas copy).

    Numbers: nulls, exact min, max and mean, and quartiles (exact up to 200,000 rows,
    else from an evenly spaced 200,000-row sample: enough to see a shift, at a fraction
    of the cost); other types: nulls, distinct count and the top values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    columns: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name)
        kind = col.type
        info: dict[str, Any] = {"type": str(kind), "nulls": int(col.null_count)}
        numeric = (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                   or pa.types.is_decimal(kind))
        if numeric and len(col) > col.null_count:
            mm = pc.min_max(col).as_py()
            q = _quartiles(col)
            info.update(min=float(mm["min"]), max=float(mm["max"]),
                        mean=float(pc.mean(col).as_py()), p25=q[0], p50=q[1], p75=q[2])
        elif not numeric:
            counts = pc.value_counts(col.cast(pa.string()) if not pa.types.is_string(kind)
                                     else col)
            pairs = sorted(((c["counts"], c["values"]) for c in counts.to_pylist()
                            if c["values"] is not None), reverse=True)
            info.update(distinct=len(pairs), top={str(v): int(n) for n, v in pairs[:TOP_K]})
        columns[str(name)] = info
    return {"format": fmt, "rows": table.num_rows, "columns": columns,
            PROFILE_KEY: profile_table(table)}


PROFILE_KEY = "_profile"  # the distribution profile, stored apart (a blob) by ingest
SAMPLE = 200_000


def _quartiles(col: Any) -> list[float]:
    import numpy as np
    import pyarrow.compute as pc

    values = col.drop_null()
    if len(values) > SAMPLE:
        values = values.take(np.linspace(0, len(values) - 1, SAMPLE).astype("int64"))
    # Arrow's own quantile: going through numpy would import pandas (~0.3 s of start-up).
    return [float(v) for v in pc.quantile(values, q=[0.25, 0.5, 0.75]).to_pylist()]


FULL_PROFILE_BYTES = 64 << 20  # larger tables are summarised from a sample
SAMPLE_BLOCKS = 8
SAMPLE_BLOCK_BYTES = 1 << 20
_READ = 4 << 20


def summarize_path(local: Path) -> dict[str, Any] | None:
    """Summary of a CSV/Parquet file, or ``None`` when it is not one (or does not parse).

    Up to 64 MiB the whole table is read. A larger table keeps an exact row count (CSV:
    counted lines, when no quoted field or blank line can make lines and rows differ;
    Parquet: the footer), exact min, max and nulls where Parquet row-group statistics
    have them, and takes the rest from a sample of evenly spaced blocks (CSV) or row
    groups (Parquet); ``sample_rows`` says how many rows that was. Profiling a 1 GB
    export in full would cost several times what versioning it does.
    """
    fmt = table_format(local.name)
    if fmt is None or not local.is_file():
        return None
    try:
        if local.stat().st_size <= FULL_PROFILE_BYTES:
            return summarize_table(read_table(local, fmt), fmt)
        return _summarize_large_csv(local) if fmt == "csv" else _summarize_large_parquet(local)
    except (InvalidInputError, ValueError, TypeError, OSError):
        return None  # not parseable as a table: versioned as plain bytes


def count_csv_rows(path: Path) -> int | None:
    """Data rows of a CSV by counting lines; ``None`` when that could be wrong (a quoted
    field may hold a newline; blank lines are not rows). Vectorised: ~1 GB/s."""
    import numpy as np

    newlines, tail = 0, b"\n"  # as if a newline came before: a leading blank line counts
    with open(path, "rb") as f:
        while block := f.read(_READ):
            if b'"' in block:
                return None
            if (tail.endswith(b"\n") and block.startswith((b"\n", b"\r\n"))) or (
                    tail.endswith(b"\n\r") and block.startswith(b"\n")):
                return None  # a blank line across the block boundary
            arr = np.frombuffer(block, dtype=np.uint8)
            ends = np.flatnonzero(arr == 10)
            gaps = np.diff(ends)
            if (gaps == 1).any():
                return None  # "\n\n": a blank line
            if b"\r" in block and (arr[ends[:-1][gaps == 2] + 1] == 13).any():
                return None  # "\n\r\n": a blank line
            newlines += len(ends)
            tail = block[-2:]
    if tail == b"\n":  # nothing was read
        return 0
    lines = newlines + (0 if tail.endswith(b"\n") else 1)
    return max(lines - 1, 0)  # minus the header


def _sample_csv(path: Path) -> Any:
    size = path.stat().st_size
    step = size // SAMPLE_BLOCKS
    parts: list[bytes] = []
    with open(path, "rb") as f:
        for i in range(SAMPLE_BLOCKS):
            f.seek(i * step)
            block = f.read(SAMPLE_BLOCK_BYTES)
            if i > 0:  # start at the first whole line
                block = block[block.find(b"\n") + 1:]
            end = block.rfind(b"\n")
            if end >= 0:
                parts.append(block[:end + 1])
    if not parts or parts[0].count(b"\n") < 2:  # not even a header and one row
        return None
    return read_table(b"".join(parts), "csv")


def _summarize_large_csv(path: Path) -> dict[str, Any] | None:
    rows = count_csv_rows(path)
    if rows is None:  # lines are not rows here: parse it all
        return summarize_table(read_table(path, "csv"), "csv")
    sample = _sample_csv(path)
    if sample is None:
        return None
    summary = summarize_table(sample, "csv")
    summary.update(rows=rows, sample_rows=sample.num_rows)
    return summary


def _summarize_large_parquet(path: Path) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    meta = pf.metadata
    groups = sorted({int(g) for g in np.linspace(0, meta.num_row_groups - 1,
                                                 min(SAMPLE_BLOCKS, meta.num_row_groups))})
    sample = pf.read_row_groups(groups)
    summary = summarize_table(sample, "parquet")
    summary.update(rows=meta.num_rows, sample_rows=sample.num_rows)
    if len(groups) == meta.num_row_groups:
        return summary
    # Exact min, max and nulls from the footer's row-group statistics, where complete.
    for c in range(meta.num_columns):
        name = meta.schema.column(c).name
        info = summary["columns"].get(name)
        stats = [meta.row_group(g).column(c).statistics for g in range(meta.num_row_groups)]
        if info is None or any(s is None for s in stats):
            continue
        if all(s.has_null_count for s in stats):
            info["nulls"] = int(sum(s.null_count for s in stats))
        if "min" in info and all(s.has_min_max for s in stats):
            # not numbers (e.g. decimals stored as bytes): keep the sample's
            with contextlib.suppress(TypeError, ValueError):
                info["min"], info["max"] = (float(min(s.min for s in stats)),
                                            float(max(s.max for s in stats)))
    return summary


PROFILE_POINTS = 1000  # quantiles kept per numeric column (a KS statistic within ~0.001)
PROFILE_LABELS = 1000  # categories kept per column (the rest are counted together)
PROFILE_FEW = 20  # numeric columns with at most this many values keep their counts


def profile_table(table: Any) -> dict[str, Any]:
    """The distribution of every column, enough to test drift against without the data.

    Numbers: the count, missing values, standard deviation, the number of distinct
    values, the quantiles at the midpoints of 1,000 equal-probability slices (a
    1,000-point sample of the distribution) and, with at most 20 distinct values, the
    exact count of each (quantiles packed by :func:`pack_floats`); other types: the counts
    of the 1,000 most frequent values and of the rest together. Computed in Arrow on the
    table given (a large file's sample: the profile's ``rows`` says how many rows it
    stands for).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    probs = ((np.arange(PROFILE_POINTS) + 0.5) / PROFILE_POINTS).tolist()
    columns: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name)
        kind = col.type
        info: dict[str, Any] = {"dtype": str(kind), "rows": len(col)}
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            values = col.cast(pa.float64()).drop_null()
            values = values.filter(pc.is_finite(values))
            info.update(kind="numeric", missing=len(col) - len(values))
            if len(values):
                distinct = int(pc.count_distinct(values).as_py())
                points = pc.quantile(values, q=probs).to_numpy()
                info.update(std=float(pc.stddev(values).as_py()), distinct=distinct,
                            quantiles=pack_floats(points))
                if distinct <= PROFILE_FEW:
                    counts = pc.value_counts(values).to_pylist()
                    info["labels"] = [c["values"] for c in counts]
                    info["counts"] = [c["counts"] for c in counts]
        elif pa.types.is_temporal(kind):
            info.update(kind="other", missing=col.null_count)
        else:
            # labels as Python's str() of each value, as pandas columns give them
            pairs = sorted(((c["counts"], str(c["values"])) for c in
                            pc.value_counts(col).to_pylist() if c["values"] is not None),
                           reverse=True)
            kept = pairs[:PROFILE_LABELS]
            info.update(kind="categorical", missing=col.null_count,
                        labels=[v for _, v in kept], counts=[n for n, _ in kept],
                        other=sum(n for n, _ in pairs[PROFILE_LABELS:]))
        columns[str(name)] = info
    return {"format": "mloop-profile/1", "rows": table.num_rows, "columns": columns}


def pack_floats(values: Any) -> str:
    """float64 values as compact text: base64 of their zlib-compressed bytes."""
    import base64
    import zlib

    import numpy as np

    raw = np.ascontiguousarray(values, dtype="<f8").tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def unpack_floats(text: str) -> Any:
    """The inverse of :func:`pack_floats` (a NumPy array)."""
    import base64
    import zlib

    import numpy as np

    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<f8").copy()
