"""Precompute: score a whole table with Dask, store the predictions keyed by entity.

``batch_predict`` reads CSV or Parquet partitions with Dask (the local threaded scheduler,
or a cluster given by its scheduler address — same code), predicts each partition in one
vectorised call, and writes the rows into the metadata database with bulk upserts keyed
by (table, model version, entity key). A re-run for the same model version skips keys
already scored unless ``full``; a new version writes alongside, and :func:`lookup`
answers from the newest complete batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.progress import progress
from mloop.core.uris import check_name
from mloop.errors import InvalidInputError, NotFoundError, ServiceUnavailableError
from mloop.project import Project

_GROUP = 4  # partitions computed together before their rows are written


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    table: str
    model: str
    rows: int
    skipped: int
    seconds: float


def _read(source: str, key: str, blocksize: str) -> Any:
    import glob

    import dask.dataframe as dd

    paths = str(source)
    suffix = Path(paths.replace("*", "x")).suffix.lower()
    if not glob.glob(paths):
        raise InvalidInputError(f"No input at {source!r}; give a CSV or Parquet file, folder "
                                "or glob.")
    from dask.utils import parse_bytes

    try:
        if parse_bytes(blocksize) < 1:
            raise ValueError("it must be at least 1 byte")
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"--blocksize {blocksize!r} is not a size such as 64MB "
                                f"({exc}).") from None
    try:
        if suffix == ".csv":
            frame = dd.read_csv(paths, blocksize=blocksize)
        else:
            frame = dd.read_parquet(paths)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"Cannot read {source}: {exc}") from exc
    if key not in frame.columns:
        raise InvalidInputError(f"The input has no key column {key!r}; its columns: "
                                f"{', '.join(map(str, list(frame.columns)[:20]))}.")
    return frame


def _score(part: Any, model: Any, key: str, skip: frozenset[str]) -> Any:
    """One partition: keys not yet scored, their predictions as JSON text."""
    import orjson
    import pandas as pd

    keys = part[key].astype(str)
    if skip:
        keep = ~keys.isin(skip)
        part, keys = part[keep.to_numpy()], keys[keep]
    if part.empty:
        return pd.DataFrame({"key": [], "prediction": []})
    pred, proba = model.predict_both(part.drop(columns=[key]))
    texts = [orjson.dumps({"prediction": p, **({"proba": q} if proba is not None else {})},
                          option=orjson.OPT_SERIALIZE_NUMPY).decode()
             for p, q in zip(pred.tolist(), proba if proba is not None else pred, strict=True)]
    return pd.DataFrame({"key": keys.to_numpy(), "prediction": texts})


def batch_predict(project: Project, model: str, source: str, key: str, *,
                  table: str | None = None, scheduler: str | None = None, full: bool = False,
                  blocksize: str = "64MB", quiet: bool = False,
                  allow_pickle: bool | None = None) -> BatchResult:
    """Score every row of ``source`` with ``model`` and store the predictions by ``key``.

    ``allow_pickle``: load a model saved as a pickle (default: the user's setting, off)."""
    import dask

    from mloop.registry.models import get_version, load_model
    from mloop.store.schema import precompute_batches

    start = time.perf_counter()
    version = get_version(project, model)
    table = check_name(table or version.name, "table name")
    loaded = load_model(project, version.uri, allow_pickle=allow_pickle)
    frame = _read(source, key, blocksize)
    skip = frozenset() if full else frozenset(_scored_keys(project, table, version.uri))
    batch_id = new_id()
    with project.store.write() as conn:
        conn.execute(precompute_batches.insert().values(
            id=batch_id, table_name=table, model_uri=version.uri, source=str(source),
            status="running", rows=0, started_at=now_ms()))
    client = None
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise InvalidInputError("A Dask scheduler address needs the distributed package: "
                                    "pip install 'mloop[dask]'.") from None
        try:
            client = Client(scheduler, timeout="10s")
        except ValueError as exc:  # an address that does not parse
            raise InvalidInputError(f"Cannot use the Dask scheduler address {scheduler}: "
                                    f"{exc}. Write it as tcp://host:8786.") from exc
        except (OSError, TimeoutError) as exc:
            raise ServiceUnavailableError(f"Cannot reach the Dask scheduler at {scheduler}: "
                                          f"{exc}. Is it running?") from exc
    parts = frame.to_delayed()
    written = 0
    try:
        with progress(len(parts), f"Scoring {Path(str(source)).name}", unit="partitions",
                      quiet=quiet) as bar:
            for i in range(0, len(parts), _GROUP):
                tasks = [dask.delayed(_score)(p, loaded, key, skip)
                         for p in parts[i:i + _GROUP]]
                results = (client.compute(tasks, sync=True) if client is not None
                           else dask.compute(*tasks, scheduler="threads"))
                written += _store(project, table, version.uri, batch_id, results)
                bar.advance(len(tasks))
    finally:
        if client is not None:
            client.close()
    with project.store.write() as conn:
        conn.execute(precompute_batches.update().where(precompute_batches.c.id == batch_id)
                     .values(status="complete", rows=written, finished_at=now_ms()))
    return BatchResult(batch_id, table, version.uri, written, len(skip),
                       time.perf_counter() - start)


def _scored_keys(project: Project, table: str, model_uri: str) -> list[str]:
    from sqlalchemy import select

    from mloop.store.schema import precomputed

    with project.store.read() as conn:
        return list(conn.execute(select(precomputed.c.key).where(
            precomputed.c.table_name == table, precomputed.c.model_uri == model_uri)).scalars())


def _store(project: Project, table: str, model_uri: str, batch_id: str,
           results: Any) -> int:
    from mloop.store.schema import precomputed

    now = now_ms()
    rows = [{"table_name": table, "model_uri": model_uri, "key": k, "batch_id": batch_id,
             "prediction": p, "created_at": now}
            for part in results for k, p in zip(part["key"].tolist(),
                                                part["prediction"].tolist(), strict=True)]
    if not rows:
        return 0
    store = project.store
    stmt = store.insert(precomputed)
    stmt = stmt.on_conflict_do_update(
        index_elements=["table_name", "model_uri", "key"],
        set_={"batch_id": stmt.excluded.batch_id, "prediction": stmt.excluded.prediction,
              "created_at": stmt.excluded.created_at})
    with store.write() as conn:
        conn.execute(stmt, rows)
    return len(rows)


def lookup(project: Project, table: str, key: str | int, *, model: str | None = None
           ) -> dict[str, Any]:
    """The stored prediction for ``key``: from ``model`` (a version URI) or the newest
    complete batch of ``table``."""
    import json

    from sqlalchemy import select

    from mloop.store.schema import precompute_batches, precomputed

    with project.store.read() as conn:
        if model is None:
            model = conn.execute(
                select(precompute_batches.c.model_uri)
                .where(precompute_batches.c.table_name == table,
                       precompute_batches.c.status == "complete")
                .order_by(precompute_batches.c.finished_at.desc()).limit(1)).scalar()
            if model is None:
                raise NotFoundError(f"No complete batch for table {table!r}; run `mloop batch "
                                    f"predict MODEL --input FILE --key COLUMN --table {table}`.")
        row = conn.execute(select(precomputed).where(
            precomputed.c.table_name == table, precomputed.c.model_uri == model,
            precomputed.c.key == str(key))).first()
    if row is None:
        raise NotFoundError(f"No precomputed prediction for key {key!r} in {table!r} "
                            f"({model}).")
    return {"table": table, "key": row.key, "model": row.model_uri, "batch": row.batch_id,
            "created_at": row.created_at, **json.loads(row.prediction)}
