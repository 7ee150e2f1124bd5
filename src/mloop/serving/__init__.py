"""Serving: the REST server (``mloop serve``) and precomputed predictions (``mloop batch``).

>>> mloop.batch_predict("models:/churn@champion", "customers.parquet",  # doctest: +SKIP
...                     key="customer_id")
>>> mloop.lookup("churn", 12345)                                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.project import Project, current_project

if TYPE_CHECKING:
    from mloop.serving.precompute import BatchResult


def batch_predict(model: str, source: str, key: str, *, table: str | None = None,
                  scheduler: str | None = None, full: bool = False,
                  allow_pickle: bool | None = None,
                  project: Project | None = None) -> BatchResult:
    """Score every row of ``source`` (CSV/Parquet file, folder or glob) with ``model`` on
    Dask and store the predictions by ``key`` in ``table`` (default: the model's name).
    ``allow_pickle=True`` loads a model saved as a pickle (see :func:`mloop.load_model`)."""
    from mloop.serving.precompute import batch_predict as run

    return run(project if project is not None else current_project(), model, source, key,
               table=table, scheduler=scheduler, full=full, quiet=True,
               allow_pickle=allow_pickle)


def lookup(table: str, key: str | int, *, model: str | None = None,
           project: Project | None = None) -> dict[str, Any]:
    """The precomputed prediction for ``key`` (newest complete batch unless ``model``)."""
    from mloop.serving.precompute import lookup as find

    return find(project if project is not None else current_project(), table, key,
                model=model)


def submit(model: str, rows: Any, *, broker: str | None = None, job_id: str | None = None,
           project: Project | None = None) -> str:
    """Queue ``rows`` (records or a dict of columns) for ``model``; returns the job id.

    ``broker``: ``sqlite`` (default: the project's queue), ``sqlite:///path`` or
    ``redis://host:6379/0``. A worker (``mloop worker MODEL``) answers it.
    """
    from mloop.serving.broker import check_payload, open_broker

    if hasattr(rows, "to_dict"):
        rows = rows.to_dict(orient="records")
    p = project if project is not None else (current_project() if broker is None
                                             or broker == "sqlite" else None)
    b = open_broker(broker, p.root if p is not None else None)
    try:
        return b.enqueue(model, check_payload(rows), job_id)
    finally:
        b.close()


def result(job_id: str, *, timeout: float = 30.0, broker: str | None = None,
           project: Project | None = None) -> Any:
    """The answer to a submitted job (waits up to ``timeout`` seconds)."""
    from mloop.serving.broker import open_broker

    p = project if project is not None else (current_project() if broker is None
                                             or broker == "sqlite" else None)
    b = open_broker(broker, p.root if p is not None else None)
    try:
        return b.result(job_id, timeout)
    finally:
        b.close()
