"""Serving: the REST server (``mloop serve``) and precomputed predictions (``mloop batch``).

>>> mloop.batch_predict("models:/churn@champion", "customers.parquet",  # doctest: +SKIP
...                     key="customer_id")
>>> mloop.lookup("churn", 12345)                                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.project import Project, current_project

if TYPE_CHECKING:
    from mloop.serving.broker import JobHandle
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


def resolve_broker(broker: str | None = None, project: Project | None = None
                   ) -> tuple[str, Project | None]:
    """The broker to use and the project it belongs to: ``broker`` when given, else
    ``MLOOP_BROKER``, else ``[serving] broker`` of the project's (then the user's)
    config.toml, else the project's SQLite queue. Outside a project, ``sqlite`` is an
    error that says what to give instead."""
    from mloop.core.settings import user_setting
    from mloop.errors import ProjectNotFoundError
    from mloop.serving.broker import broker_url

    if project is None and (broker is None or broker == "sqlite"):
        try:
            project = current_project()
        except ProjectNotFoundError:
            project = None
    if broker is None:
        broker = (project.settings.broker if project is not None
                  else user_setting("broker"))
    return broker_url(broker, project.root if project is not None else None), project


def submit(model: str, rows: Any, *, broker: str | None = None, job_id: str | None = None,
           project: Project | None = None) -> JobHandle:
    """Queue ``rows`` (records, a dict of columns or a DataFrame) for ``model``.

    Returns a :class:`~mloop.serving.broker.JobHandle`: the job id (a ``str``) that
    remembers its broker, for :func:`result`. ``broker``: ``sqlite`` (the project's
    queue), ``sqlite:///path`` or ``redis://host:6379/0``; default ``MLOOP_BROKER``, else
    ``[serving] broker`` in config.toml, else ``sqlite``. A worker (``mloop worker
    MODEL``) answers it.

    >>> job = mloop.submit("models:/churn@champion", rows,     # doctest: +SKIP
    ...                    broker="redis://127.0.0.1:6379/0")
    >>> mloop.result(job, timeout=10)                           # doctest: +SKIP
    """
    from mloop.serving.broker import JobHandle, check_payload, open_broker

    if hasattr(rows, "to_dict"):
        rows = rows.to_dict(orient="records")
    url, _ = resolve_broker(broker, project)
    b = open_broker(url)
    try:
        return JobHandle(b.enqueue(model, check_payload(rows), job_id), url)
    finally:
        b.close()


def result(job: str, *, timeout: float = 30.0, broker: str | None = None,
           project: Project | None = None) -> Any:
    """The answer to a submitted job (waits up to ``timeout`` seconds).

    ``job`` is what :func:`submit` returned (asked on its own broker) or a plain id string
    (asked on ``broker``, else the configured one, as :func:`submit` chooses). Raises
    :class:`TimeoutError` when no answer came in time and ``JobFailed`` when the job
    ended in the dead-letter list.
    """
    from mloop.serving.broker import JobHandle, open_broker

    if broker is None and isinstance(job, JobHandle):
        url = job.broker
    else:
        url, _ = resolve_broker(broker, project)
    b = open_broker(url)
    try:
        return b.result(str(job), timeout)
    finally:
        b.close()
