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
                  project: Project | None = None) -> BatchResult:
    """Score every row of ``source`` (CSV/Parquet file, folder or glob) with ``model`` on
    Dask and store the predictions by ``key`` in ``table`` (default: the model's name)."""
    from mloop.serving.precompute import batch_predict as run

    return run(project if project is not None else current_project(), model, source, key,
               table=table, scheduler=scheduler, full=full, quiet=True)


def lookup(table: str, key: str | int, *, model: str | None = None,
           project: Project | None = None) -> dict[str, Any]:
    """The precomputed prediction for ``key`` (newest complete batch unless ``model``)."""
    from mloop.serving.precompute import lookup as find

    return find(project if project is not None else current_project(), table, key,
                model=model)
