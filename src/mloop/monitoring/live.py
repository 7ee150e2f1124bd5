"""Live performance: metrics on the window's labelled predictions, against the criteria.

A classifier is scored against its own classes (the ``classes`` its manifest records,
else those of the loaded model): a window whose labels and predictions are all one class
keeps the model's positive class, and metrics with nothing to count (recall with no
positive label) are left out rather than reported as 1 or 0.

The criteria of a model version are what its latest recorded evaluation measured (``mloop
test`` / ``mloop evaluate``): each metric's value and bootstrap interval. A live metric
*drops* when it is worse than the evaluated value by more than ``max_drop`` (absolute for
scores in [0, 1] such as accuracy; relative for errors such as rmse) — and only once the
window holds ``min_labels`` labelled rows, so that a handful of labels cannot page anyone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.clock import now_ms, parse_duration
from mloop.errors import InvalidInputError

if TYPE_CHECKING:
    from mloop.project import Project



class CriterionStatus(enum.StrEnum):
    """A live metric against its evaluated value: fine, dropped, or not decided yet."""

    OK = "ok"
    DROP = "drop"
    UNKNOWN = "unknown"


# the metrics watched by default; the others are reported without a criterion
WATCHED = {"classification": ("accuracy", "f1", "roc_auc"), "regression": ("rmse", "mae", "r2")}
ERRORS = {"mae", "rmse", "mape", "median_absolute_error", "log_loss", "brier",
          "calibration_error"}


@dataclass
class VersionPerformance:
    """One model version over the window."""

    model: str
    version: int
    predictions: int
    labelled: int
    task: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    criteria: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"

    @property
    def drops(self) -> list[str]:
        return [m for m, c in self.criteria.items() if c["status"] == CriterionStatus.DROP]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.uri, "predictions": self.predictions, "labelled": self.labelled,
                "task": self.task, "metrics": self.metrics, "criteria": self.criteria,
                "drops": self.drops, "note": self.note}


@dataclass
class PerformanceReport:
    model: str
    since_ms: int
    until_ms: int
    versions: list[VersionPerformance]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "since_ms": self.since_ms, "until_ms": self.until_ms,
                "versions": [v.to_dict() for v in self.versions]}


def labelled(project: Project, model: str, since_ms: int, until_ms: int) -> Any:
    """The window's logged predictions of ``model`` with their labels (NaN: none yet)."""
    from mloop.monitoring import feedback
    from mloop.serving.predlog import read_predictions

    logged = read_predictions(_log_root(project), model, since_ms=since_ms, until_ms=until_ms,
                              columns=["request_id", "row", "time_ms", "prediction", "proba.*"])
    labels = feedback.read(project, since_ms)
    return logged.merge(labels, on=["request_id", "row"], how="left")


def _log_root(project: Project) -> Any:
    from mloop.serving.predlog import log_root

    return log_root(project)


def performance(project: Project, model: str, *, window: str | int = "1h",
                until_ms: int | None = None, max_drop: float = 0.05,
                min_labels: int = 30) -> PerformanceReport:
    """Metrics of every version of ``model`` seen in the last ``window``, with criteria."""
    from mloop.registry.models import get_version

    name = get_version(project, model).name  # an unknown model fails here, clearly
    until = until_ms if until_ms is not None else now_ms() + 1
    since = until - parse_duration(window)
    rows = labelled(project, name, since, until)
    out = []
    for version, group in rows.groupby("version", sort=True):
        out.append(_version(project, name, int(str(version)), group, max_drop=max_drop,
                            min_labels=min_labels))
    return PerformanceReport(name, since, until, out)


def _version(project: Project, name: str, version: int, rows: Any, *, max_drop: float,
             min_labels: int) -> VersionPerformance:
    from mloop.evaluation import metrics as M

    have = rows[rows["label"].notna()]
    evaluated = _evaluated(project, f"models:/{name}/{version}")
    task = evaluated.get("task") or _task(rows["prediction"])
    perf = VersionPerformance(name, version, len(rows), len(have), task)
    if have.empty:
        perf.note = "no labels yet: send them with mloop.log_feedback or POST /api/v1/feedback"
        return perf
    pred = have["prediction"].to_numpy()
    label = have["label"].to_numpy()
    if task == "regression":
        label, pred = label.astype(np.float64), pred.astype(np.float64)
    else:
        label = _like(label, pred)
    proba_cols = sorted((c for c in have.columns if c.startswith("proba.")),
                        key=lambda c: int(c.split(".")[1]))
    score = have[proba_cols].to_numpy(dtype=np.float64) if proba_cols and task != \
        "regression" and not have[proba_cols].isna().any().any() else None
    known = model_classes(project, f"models:/{name}/{version}") \
        if task != "regression" else None
    classes = None if known is None else _like(np.asarray(known, dtype=object), pred)
    try:
        values = M.Weighted(task, label, pred, score, labels=classes,
                            undefined=float("nan")).values()
    except (InvalidInputError, ValueError) as exc:
        perf.note = f"cannot score the labels: {exc}"
        return perf
    perf.metrics = {k: round(float(v), 6) for k, v in values.items() if np.isfinite(v)}
    for metric in WATCHED.get(task, ()):
        if metric not in perf.metrics:
            continue
        perf.criteria[metric] = _criterion(metric, perf.metrics[metric],
                                           evaluated.get("metrics", {}).get(metric),
                                           labels=len(have), max_drop=max_drop,
                                           min_labels=min_labels)
    return perf


def _criterion(metric: str, live: float, evaluated: dict[str, float] | None, *, labels: int,
               max_drop: float, min_labels: int) -> dict[str, Any]:
    if evaluated is None:
        return {"live": live, "status": CriterionStatus.UNKNOWN.value,
                "why": "no recorded evaluation of this version measured it (run mloop test)"}
    ref = float(evaluated["value"])
    entry: dict[str, Any] = {"live": live, "evaluated": ref, "low": evaluated.get("low"),
                             "high": evaluated.get("high"), "max_drop": max_drop}
    if labels < min_labels:
        entry.update(status=CriterionStatus.UNKNOWN.value,
                     why=f"only {labels} labelled rows (min {min_labels})")
        return entry
    worse = live > ref * (1 + max_drop) if metric in ERRORS else live < ref - max_drop
    entry["status"] = (CriterionStatus.DROP if worse else CriterionStatus.OK).value
    bound = f"{ref * (1 + max_drop):.4g}" if metric in ERRORS else f"{ref - max_drop:.4g}"
    entry["why"] = (f"live {live:.4g} vs evaluated {ref:.4g} "
                    f"({'above' if metric in ERRORS else 'below'} {bound} is a drop)")
    return entry


def _evaluated(project: Project, uri: str) -> dict[str, Any]:
    import json

    from mloop.repositories import backend

    latest = backend(project).evaluations.latest(uri)
    if latest is None:
        return {}
    report = json.loads(project.objects.get_bytes(latest.report))
    return {"task": report.get("task"), "metrics": report.get("metrics", {})}


def model_classes(project: Project, uri: str) -> list[Any] | None:
    """A classifier's labels in its score columns' order: from the version's manifest
    (``classes``, written by ``log_model``), else ``metadata.classes``, else from the
    loaded model's ``classes_`` (versions logged before manifests kept them); ``None``
    when none of these says."""
    import json

    from mloop.core.redact import get_logger
    from mloop.errors import MloopError
    from mloop.registry.models import get_version, load_model

    try:
        version = get_version(project, uri)
        manifest = json.loads(project.objects.get_bytes(version.manifest))
    except (MloopError, OSError, ValueError):  # unknown here: the classes seen
        return None
    found = manifest.get("classes") or (manifest.get("metadata") or {}).get("classes")
    if found is None and manifest.get("flavor") == "sklearn":
        try:
            found = getattr(load_model(project, uri, engine="native").model, "classes_", None)
        except Exception as exc:  # a model this process cannot load: the classes seen
            get_logger(__name__).debug("mloop: no classes for %s: %s", uri, exc)
    return list(found) if found is not None and np.ndim(found) == 1 else None


def _task(pred: Any) -> str:
    values = pred.to_numpy()
    if values.dtype.kind == "f" and len(np.unique(values[:10_000])) > 20:
        return "regression"
    return "classification"


def _like(label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Labels in the predictions' type (a label sent as "1" compares with 1)."""
    import pandas as pd

    if pred.dtype.kind in "biuf":
        numbers = pd.to_numeric(pd.Series(label), errors="coerce")
        if numbers.notna().all():
            return numbers.to_numpy().astype(pred.dtype, copy=False)
    return pd.Series(label).astype(str).to_numpy(dtype=object) if pred.dtype == object \
        else label
