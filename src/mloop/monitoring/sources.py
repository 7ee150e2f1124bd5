"""Where the two sides of a drift report come from, named as users name them.

``serving:churn`` (or ``serving:churn/3``): the inputs the server logged for the model
(one version), since a time; ``data.csv`` / ``data.parquet``: a file; anything else: a
dataset version (``train@3``, ``data:/train@3``) — as a reference, its stored profile, so
the raw data is not read again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.uris import is_version, version_number
from mloop.errors import InvalidInputError

if TYPE_CHECKING:
    from mloop.project import Project

SERVING = "serving:"


def logged_inputs(project: Project, model: str, *, since_ms: int | None,
                  until_ms: int | None = None, version: int | None = None) -> Any:
    """The inputs logged for ``model`` (``in.`` prefix dropped) in the window."""
    from mloop.serving.predlog import log_root, read_predictions

    rows = read_predictions(log_root(project), model,
                            since_ms=since_ms, until_ms=until_ms, columns=["in.*"])
    if version is not None and "version" in rows.columns:
        rows = rows[rows["version"] == version]
    inputs = [c for c in rows.columns if c.startswith("in.")]
    return rows[inputs].rename(columns=lambda c: c[3:]).reset_index(drop=True)


def load(project: Project, spec: str, *, reference: bool, since_ms: int | None = None) -> Any:
    """A DataFrame (or, for a dataset reference, a Profile) for a drift side."""
    from mloop.monitoring.profile import of_dataset, read_dataset

    if spec.startswith(SERVING):
        name, _, version = spec[len(SERVING):].partition("/")
        if not name:
            raise InvalidInputError("serving: needs a model name, e.g. serving:churn.")
        if version and not is_version(version):
            raise InvalidInputError(f"{spec}: the version after '/' must be a number.")
        from mloop.registry.models import get_version

        get_version(project, name)  # an unknown model fails here, with its advice
        return logged_inputs(project, name, since_ms=since_ms,
                             version=version_number(version, spec) if version else None)
    path = Path(spec)
    if path.suffix.lower() in (".csv", ".parquet", ".pq"):
        if not path.is_file():
            raise InvalidInputError(f"{spec}: no such file.")
        from mloop.data.stats import read_frame, table_format

        return read_frame(path, table_format(path.name) or "csv")
    if reference:
        return of_dataset(project, spec)
    return read_dataset(project, spec).to_pandas()
