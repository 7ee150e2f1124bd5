"""The prediction log: every served prediction, written in batches off the request path.

The request path only queues references (the request's rows as the model saw them, the
predictions, the probabilities); a background thread turns a second's worth of requests
into one columnar Parquet segment per model version under
``<project>/.mloop/predictions/<model>/<version>/``: one row per predicted row, with
``request_id``, ``row`` (its place in the request), ``time_ms``, ``latency_ms``, the
input columns as ``in.<name>``, ``prediction`` and ``proba.<k>``. Segments are written to
a temporary name and renamed, so a reader never sees half a file. Monitoring reads the
inputs column by column, as drift tests want them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.batches import Batches
from mloop.core.redact import get_logger

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.serving")
SKEW_MS = 300_000  # how late a segment written on another host may be listed here


def shared(project: Project) -> bool:
    """Whether the project's store is shared across hosts (not SQLite), so the prediction
    log is shared through the object store (read without opening the store)."""
    uri = project.settings.store_uri
    return bool(uri) and not str(uri).startswith("sqlite")


def sharer(project: Project) -> Share | None:
    """What publishes a segment (the object store + ``prediction_segments``), or None
    on a store of one host."""
    if not shared(project):
        return None
    from mloop.repositories import backend
    from mloop.repositories.prediction_segments import Segment

    segments = backend(project).prediction_segments

    def share(model: str, version: int, name: str, data: bytes, rows: int) -> None:
        digest = project.objects.put_bytes(data)
        segments.add(Segment(model, version, name, digest, rows, int(name.split("-", 1)[0])))

    return share


def log_root(project: Project) -> Path:
    """The prediction log's folder, with every segment other hosts shared brought home
    first (on a shared store; a segment is fetched once, under its own name)."""
    root = project.root / ".mloop" / "predictions"
    if not shared(project):
        return root
    from mloop.repositories import backend

    marker = root / ".shared-until"
    since = int(marker.read_text()) - SKEW_MS if marker.is_file() else None
    listed = backend(project).prediction_segments.since(since)
    for seg in listed:
        path = root / seg.model / str(seg.version) / seg.name
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{seg.name}.tmp"
        try:
            project.objects.get_file(seg.digest, tmp)
        except Exception as exc:  # e.g. objects kept per host: say what is missing
            log.warning("prediction log segment %s/%s/%s is listed but not readable from "
                        "the object store (%s); share one object store between hosts",
                        seg.model, seg.version, seg.name, exc)
            continue
        tmp.replace(path)
    if listed:
        root.mkdir(parents=True, exist_ok=True)
        (root / ".shared-until.tmp").write_text(str(max(s.written_at for s in listed)))
        (root / ".shared-until.tmp").replace(marker)
    return root


Share = Callable[[str, int, str, bytes, int], None]  # (model, version, name, bytes, rows)


class PredictionLogger:
    def __init__(self, root: Path, *, flush_rows: int = 50_000, flush_seconds: float = 1.0,
                 max_pending: int = 100_000, share: Share | None = None) -> None:
        import pyarrow.parquet  # noqa: F401 - imported now (before ready), not mid-traffic

        self.root = root
        self.share = share  # also publishes each segment (a store shared across hosts)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._pending: Batches[tuple[Any, ...]] = Batches(max_pending)
        self._rows = 0  # queued since the last write (a hint: early flush past flush_rows)
        # request id -> rows, for requests queued but not yet in a segment: feedback that
        # arrives meanwhile is for a prediction this server knows
        self._unwritten: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread = self._pending.consume(self._write, flush_seconds, name="mloop-predlog")

    def log(self, model: str, version: int, request_id: str, *, frame: Any, pred: Any,
            proba: Any, latency_ms: float) -> None:
        """Queue one request (references only); never blocks: a full queue drops and
        counts (``dropped``)."""
        with self._lock:  # before queueing: the writer may be done before we return
            self._unwritten[request_id] = len(pred)
        if not self._pending.put((model, version, request_id, int(time.time() * 1000),
                                  frame, pred, proba, latency_ms)):
            with self._lock:
                self._unwritten.pop(request_id, None)
            return
        self._rows += len(pred)
        if self._rows >= self.flush_rows:
            self._rows = 0
            self._pending.wake()

    @property
    def dropped(self) -> int:
        """Requests not logged because too many were waiting."""
        return self._pending.dropped

    def unwritten(self, request_ids: Iterable[str]) -> dict[str, int]:
        """Those of ``request_ids`` queued but not yet written, with their row counts."""
        with self._lock:
            return {r: self._unwritten[r] for r in request_ids if r in self._unwritten}

    def close(self) -> None:
        """Write everything queued, then stop."""
        self._pending.close()
        self._thread.join(timeout=60)

    def _write(self, items: list[tuple[Any, ...]]) -> None:
        if not items:
            return
        groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for item in items:
            frame = item[4]
            columns = tuple(str(c) for c in frame.columns) if hasattr(frame, "columns") \
                else ("input",)
            groups.setdefault((item[0], item[1], columns), []).append(item)
        try:
            for (model, version, columns), group in groups.items():
                self._segment(model, version, columns, group)
        finally:
            with self._lock:
                for item in items:
                    self._unwritten.pop(item[2], None)

    def _segment(self, model: str, version: int, columns: tuple[str, ...],
                 group: list[tuple[Any, ...]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        sizes = np.array([len(g[5]) for g in group])
        data: dict[str, Any] = {
            "request_id": np.repeat([g[2] for g in group], sizes),
            "row": np.concatenate([np.arange(n) for n in sizes]),
            "time_ms": np.repeat([g[3] for g in group], sizes),
            "latency_ms": np.repeat([g[7] for g in group], sizes),
        }
        frames = [g[4] for g in group]
        if hasattr(frames[0], "columns"):
            # one to_numpy per request (a 2-D block), then columns are slices of the stack
            values = np.vstack([f.to_numpy() for f in frames])
            dtypes = list(frames[0].dtypes)
            for j, name in enumerate(columns):
                column = values[:, j]
                if column.dtype == object and dtypes[j].kind in "biuf":
                    column = column.astype(dtypes[j])
                data[f"in.{name}"] = column
        else:
            data["in.input"] = [list(map(float, np.ravel(r))) for f in frames
                                for r in np.asarray(f)]
        data["prediction"] = np.concatenate([np.asarray(g[5]) for g in group])
        if all(g[6] is not None for g in group):
            proba = np.vstack([np.asarray(g[6]) for g in group])
            for k in range(proba.shape[1] if proba.ndim == 2 else 0):
                data[f"proba.{k}"] = proba[:, k]
        table = pa.table({k: (pa.array(v.astype(str)) if isinstance(v, np.ndarray)
                              and v.dtype == object else v) for k, v in data.items()})
        folder = self.root / model / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        blob = sink.getvalue().to_pybytes()
        tmp.write_bytes(blob)
        tmp.replace(folder / name)
        if self.share is not None:
            try:
                self.share(model, version, name, blob, table.num_rows)
            except Exception:  # the segment stays here; other hosts miss it: say so
                log.warning("prediction log segment %s/%s/%s could not be shared; other "
                            "hosts' monitoring will not see its %d rows", model, version,
                            name, table.num_rows, exc_info=True)


def segments(root: Path, model: str, since_ms: int | None = None) -> list[Path]:
    """The Parquet segments of ``model`` that may hold rows logged at or after
    ``since_ms`` (a segment is named by when it was written, after its rows)."""
    files = [f for f in sorted((root / model).glob("*/*.parquet"))
             if f.parent.name.isdigit() and f.name.split("-", 1)[0].isdigit()]  # ours only
    if since_ms is None:
        return files
    return [f for f in files if int(f.name.split("-", 1)[0]) >= since_ms]


def find_requests(root: Path, request_ids: Iterable[str], *, written_since: int | None = None,
                  written_until: int | None = None) -> Any:
    """The logged rows of these requests as a DataFrame (model, request_id, row), from
    segments written between two times (Unix ms; both optional). Reads only those two
    columns, filtered in Parquet."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    wanted = pa.array(sorted(set(request_ids)), type=pa.string())
    parts = []
    models = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for model in models if len(wanted) else ():
        files = [str(f) for f in segments(root, model, written_since)
                 if written_until is None or int(f.name.split("-", 1)[0]) <= written_until]
        if not files:
            continue
        table = ds.dataset(files, format="parquet").to_table(
            columns=["request_id", "row"], filter=ds.field("request_id").isin(wanted))
        if table.num_rows:
            parts.append(table.to_pandas().assign(model=model))
    if not parts:
        return pd.DataFrame({"model": pd.Series(dtype=object),
                             "request_id": pd.Series(dtype=object),
                             "row": pd.Series(dtype="int64")})
    return pd.concat(parts, ignore_index=True)[["model", "request_id", "row"]]


def read_predictions(root: Path, model: str, *, since_ms: int | None = None,
                     until_ms: int | None = None, columns: list[str] | None = None) -> Any:
    """Logged prediction rows of ``model`` (all versions; a ``version`` column says
    which) between two times (Unix ms), as a DataFrame; empty when none. ``columns``
    limits what is read (Parquet reads only those columns; ``"in.*"`` names a prefix)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = segments(root, model, since_ms)
    if not files:
        return pd.DataFrame({"request_id": pd.Series(dtype=str), "row": pd.Series(dtype=int),
                             "time_ms": pd.Series(dtype="int64"),
                             "latency_ms": pd.Series(dtype=float),
                             "prediction": pd.Series(dtype=object),
                             "version": pd.Series(dtype="int64")})
    condition = None
    if since_ms is not None:
        condition = ds.field("time_ms") >= since_ms
    if until_ms is not None:
        upper = ds.field("time_ms") < until_ms
        condition = upper if condition is None else condition & upper
    parts = []
    for folder in sorted({f.parent for f in files}):
        group = [str(f) for f in files if f.parent == folder]
        dataset = ds.dataset(group, format="parquet")  # segments of one version agree
        wanted = None if columns is None else [
            c for c in dataset.schema.names
            if any(c == w or (w.endswith("*") and c.startswith(w[:-1])) for w in columns)]
        table = dataset.to_table(columns=wanted, filter=condition)
        table = table.append_column("version", pa.array(
            np.full(table.num_rows, int(folder.name), dtype=np.int64)))
        parts.append(table)
    return pa.concat_tables(parts, promote_options="default").to_pandas()
