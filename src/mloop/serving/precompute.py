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
from typing import TYPE_CHECKING, Any

from mloop.core.progress import progress
from mloop.core.uris import check_name
from mloop.errors import InvalidInputError, ServiceUnavailableError
from mloop.project import Project

if TYPE_CHECKING:
    from mloop.repositories.precompute import PrecomputeTables

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

    start = time.perf_counter()
    version = get_version(project, model)
    table = check_name(table or version.name, "table name")
    loaded = load_model(project, version.uri, allow_pickle=allow_pickle)
    frame = _read(source, key, blocksize)
    tables = _tables(project)
    skip = frozenset() if full else frozenset(tables.scored_keys(table, version.uri))
    batch_id = tables.start(table, version.uri, str(source)).id
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
                written += tables.put(table, version.uri, batch_id, _rows(results))
                bar.advance(len(tasks))
    finally:
        if client is not None:
            client.close()
    tables.finish(batch_id, written)
    return BatchResult(batch_id, table, version.uri, written, len(skip),
                       time.perf_counter() - start)


def _tables(project: Project) -> PrecomputeTables:
    from mloop.repositories import backend

    return backend(project).precompute


def _rows(results: Any) -> list[tuple[str, str]]:
    """(key, prediction JSON) of every scored partition."""
    return [(k, p) for part in results
            for k, p in zip(part["key"].tolist(), part["prediction"].tolist(), strict=True)]


def lookup(project: Project, table: str, key: str | int, *, model: str | None = None
           ) -> dict[str, Any]:
    """The stored prediction for ``key``: from ``model`` (a version URI) or the newest
    complete batch of ``table``."""
    import json

    tables = _tables(project)
    model = model if model is not None else tables.newest_model(table)
    row = tables.get(table, model, key)
    return {"table": table, "key": row.key, "model": row.model_uri, "batch": row.batch_id,
            "created_at": row.created_at, **json.loads(row.prediction)}
