"""The data phase of an evaluation: read the labelled rows and align them with the model.

The model gets exactly the columns it takes (its signature's, else scikit-learn's
``feature_names_in_``); ids, the target and anything else are left out of its input,
with a note in the report naming what was dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError
from mloop.evaluation.request import EvaluationRequest
from mloop.project import Project


@dataclass(frozen=True)
class Rows:
    """The evaluation rows: every column, the model's input, the labels and the task."""

    frame: Any  # pandas DataFrame with every column of the data
    name: str  # what the report calls the data (a dataset URI, a path, "a DataFrame of …")
    X: Any  # the model's input columns of ``frame``
    y: np.ndarray
    task: str  # classification | regression
    notes: tuple[str, ...]  # e.g. the columns left out of the model's input


def read_data(project: Project, data: Any) -> tuple[Any, str]:
    """(the rows of ``data``: a DataFrame, a CSV or Parquet file, or a dataset ref; the
    name the report gives them)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data, f"a DataFrame of {len(data):,} rows"
    text = str(data)
    path = Path(text)
    if path.suffix.lower() in (".csv", ".parquet", ".pq") and path.is_file():
        from mloop.data.stats import read_frame, table_format

        return read_frame(path, table_format(path.name) or "csv"), text
    if path.exists():
        raise InvalidInputError(f"{text}: evaluation data must be a CSV or Parquet file.")
    from mloop import data as mdata

    version = mdata.get(text, project=project)
    return mdata.load(version.ref, project=project), version.uri


def align(request: EvaluationRequest, model: Any, frame: Any, name: str) -> Rows:
    """``frame`` checked for every column ``request`` names and cut to the model's input."""
    target = request.target
    if target not in frame.columns:
        raise InvalidInputError(f"The evaluation data has no target column {target!r}; its "
                                f"columns: {', '.join(map(str, list(frame.columns)[:20]))}.")
    named = request.named_columns
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"The evaluation data has no column(s) {', '.join(missing)}.")
    y = frame[target].to_numpy()
    X, left_out = features(model, frame, target, list(request.sensitive_features))
    return Rows(frame, name, X, y, task_of(model, y),
                tuple(_left_out_note(left_out, target, named)))


def task_of(model: Any, y: np.ndarray) -> str:
    """classification for a model with classes or probabilities, or labels that are not
    numbers; else regression."""
    inner = model.model
    if hasattr(inner, "predict_proba") or hasattr(inner, "classes_"):
        return "classification"
    if y.dtype.kind in "OUSb":
        return "classification"
    return "regression"


def model_columns(model: Any) -> list[str] | None:
    """The columns a loaded model takes: its table signature's, else the estimator's
    ``feature_names_in_`` (scikit-learn fitted on a DataFrame); None when unknown."""
    sig = model.signature
    if sig is not None and sig.kind == "table":
        return list(sig.names)
    names = getattr(model.model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def features(model: Any, df: Any, target: str, sensitive: list[str]) -> tuple[Any, list[str]]:
    """(the model's input columns of ``df``, the other columns left out). A column the
    model takes that ``df`` lacks is an :class:`InvalidInputError`; ids, the target and
    anything else the model does not take are left out, not passed to it."""
    wanted = model_columns(model)
    if wanted is None:
        drop = [target] + [c for c in sensitive if c in df.columns]
        return df.drop(columns=drop), []
    have = [str(c) for c in df.columns]
    missing = [c for c in wanted if c not in set(have)]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more"
                                           if len(missing) > 10 else "")
        raise InvalidInputError(
            f"The evaluation data lacks the model's input column(s) {shown}; the model "
            f"takes {len(wanted)} column(s): {', '.join(wanted[:10])}"
            f"{' …' if len(wanted) > 10 else ''}. Evaluate on data with the columns it was "
            "trained on.")
    frame = df if have == list(df.columns) else df.set_axis(have, axis=1)
    keep = set(wanted)
    return frame[wanted], [c for c in have if c not in keep]


def _left_out_note(left_out: list[str], target: str, known: list[str]) -> list[str]:
    """The note saying which columns were not passed to the model (none for only the
    target and the columns named for fairness, slices or groups)."""
    others = [c for c in left_out if c != target and c not in known]
    if not others:
        return []
    shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10
                                      else "")
    return [f"Columns the model does not take were left out of its input: {shown} (the "
            f"target {target!r} is never an input)."]
