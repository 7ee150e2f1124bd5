"""Per-arm measurements of a deployment revision, from the traffic index every replica fills.

Each indexed row names the arm that was *chosen* for it, so a row counts toward that arm
whatever its outcome: ``ok`` (the arm answered), ``error`` (it failed and nothing answered)
or ``fallback`` (it failed or was too slow, and the fallback answered). A ``shadow`` row is
the shadow arm's own answer. The **error rate** counts errors *and* fallbacks: both are the
arm failing, and a burst of fallbacks must be able to trip a canary's analysis.

Prediction quality (the predictions kept for drift, the live metrics) counts only answers
the arm's model gave itself (``ok`` and ``shadow`` rows): a fallback's answer says nothing
about the arm. Labels are feedback (JSON text) joined by (request id, row) in the store;
they are decoded column-wise (:func:`mloop.monitoring.feedback.decode`) and compared with
the predictions as numbers when both sides are numbers, else as text (a label sent as
``"1"`` matches a prediction ``1``). Accuracy is always measured; when predictions and
labels are numeric, ``mae`` and ``rmse`` too.

Feedback for an arm that no longer exists: traffic is read per revision, so a label for a
request an earlier revision served never reaches the current revision's measures; a row of
this revision naming an arm the revision does not have (a replica that logged with a stale
policy) is ignored and counted in :attr:`Measurement.ignored` (``ignored_labelled`` of them
had a label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.jsonsafe import json_float

if TYPE_CHECKING:
    import pandas as pd

    from mloop.project import Project
    from mloop.repositories.deployments import Revision

__all__ = ["ArmMeasure", "Measurement", "measure", "measure_all"]

_ANSWERED = ("ok", "shadow")  # outcomes whose prediction is the arm's own


@dataclass(eq=False)
class ArmMeasure:
    """One arm over a stretch of traffic.

    ``correct`` holds, per labelled row the arm answered itself, whether the prediction
    equals the label; ``abs_error`` the absolute error when both are numbers (else None);
    ``label_values`` the numeric labels (None when not numeric). ``sensitive`` maps a
    column named by a fairness measure to its values on the labelled rows.
    """

    arm: str
    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    latency_p50: float | None = None
    latency_p99: float | None = None
    predictions: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    labelled: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    correct: np.ndarray = field(default_factory=lambda: np.array([], dtype=bool))
    abs_error: np.ndarray | None = None
    label_values: np.ndarray | None = None
    labels: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    labelled_predictions: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    sensitive: dict[str, np.ndarray] = field(default_factory=dict)
    agreement: float | None = None  # shadow: share of rows where it agrees with the primary
    compared: int = 0  # shadow: rows both answered

    @property
    def error_rate(self) -> float | None:
        """(errors + fallbacks) / requests; None without requests."""
        return (self.errors + self.fallbacks) / self.requests if self.requests else None

    @property
    def failures(self) -> int:
        return self.errors + self.fallbacks

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (the predictions and per-row arrays are left out)."""
        rate = self.error_rate
        out: dict[str, Any] = {
            "arm": self.arm, "requests": self.requests, "errors": self.errors,
            "fallbacks": self.fallbacks, "error_rate": None if rate is None else json_float(rate),
            "latency_p50_ms": json_float(self.latency_p50),
            "latency_p99_ms": json_float(self.latency_p99),
            "predictions": len(self.predictions), "labelled": self.labelled,
            "metrics": {k: json_float(v) for k, v in self.metrics.items()}}
        if self.agreement is not None or self.compared:
            out["agreement"] = json_float(self.agreement)
            out["compared"] = self.compared
        return out


@dataclass(eq=False)
class Measurement:
    """Every arm's measure, and the rows ignored because their arm is not the revision's."""

    arms: dict[str, ArmMeasure]
    ignored: int = 0
    ignored_labelled: int = 0


def measure(project: Project, revision: Revision, *,
            since_ms: int | None = None) -> dict[str, ArmMeasure]:
    """Per arm of ``revision``: requests, errors, fallbacks, latency, predictions and the
    live metrics from feedback, over its traffic at or after ``since_ms`` (all without)."""
    return measure_all(project, revision, since_ms=since_ms).arms


def measure_all(project: Project, revision: Revision, *, since_ms: int | None = None,
                sensitive: tuple[str, ...] = ()) -> Measurement:
    """:func:`measure` with the count of ignored rows; ``sensitive`` names input columns
    read from the prediction log for the labelled rows (fairness measures)."""
    import pandas as pd

    from mloop import repositories

    cols = repositories.backend(project).traffic.read(revision.deployment, revision.number,
                                                      since_ms=since_ms)
    names = [a.name for a in revision.arms]
    frame = pd.DataFrame({"request_id": cols.request_id, "row": cols.row, "arm": cols.arm,
                          "outcome": cols.outcome, "prediction": cols.prediction,
                          "latency_ms": pd.to_numeric(pd.Series(cols.latency_ms,
                                                                dtype=object)),
                          "label": cols.label})
    known = frame["arm"].isin(names).to_numpy() if len(frame) else np.array([], dtype=bool)
    stray = frame[~known]
    frame = frame[known]
    out = Measurement({}, len(stray), int(stray["label"].notna().sum()))
    by_arm = dict(tuple(frame.groupby("arm", sort=False))) if len(frame) else {}
    for arm in revision.arms:
        rows = by_arm.get(arm.name)
        out.arms[arm.name] = _arm(arm.name, rows) if rows is not None else ArmMeasure(arm.name)
    if sensitive:
        _attach_sensitive(project, revision, out.arms, by_arm, columns=sensitive,
                          since_ms=since_ms)
    shadow = revision.state.get("shadow")
    if shadow and shadow in by_arm:
        primary = next((a.name for a in revision.arms if a.name != shadow), None)
        if primary is not None and primary in by_arm:
            agreement, compared = _agreement(by_arm[primary], by_arm[shadow])
            out.arms[shadow].agreement, out.arms[shadow].compared = agreement, compared
    return out


def _arm(name: str, rows: pd.DataFrame) -> ArmMeasure:
    outcome = rows["outcome"].to_numpy()
    m = ArmMeasure(name)
    answered = np.isin(outcome, _ANSWERED)
    m.requests = int(np.count_nonzero(outcome != "shadow")) or len(rows)
    m.errors = int(np.count_nonzero(outcome == "error"))
    m.fallbacks = int(np.count_nonzero(outcome == "fallback"))
    latency = rows["latency_ms"].to_numpy(dtype=float, na_value=np.nan)
    latency = latency[np.isfinite(latency)]
    if len(latency):
        m.latency_p50 = float(np.percentile(latency, 50))
        m.latency_p99 = float(np.percentile(latency, 99))
    own = rows[answered]
    preds = own["prediction"]
    m.predictions = preds[preds.notna()].to_numpy()
    have = own[own["label"].notna() & own["prediction"].notna()]
    m.labelled = len(have)
    if m.labelled:
        _score(m, have["prediction"], have["label"])
    return m


def _score(m: ArmMeasure, prediction: pd.Series, raw_label: pd.Series) -> None:
    """Compare labels with predictions: correctness, and errors when both are numbers."""
    import pandas as pd

    from mloop.monitoring.feedback import decode

    label = decode(raw_label.reset_index(drop=True))
    pred = prediction.reset_index(drop=True)
    m.labels, m.labelled_predictions = label.to_numpy(dtype=object), pred.to_numpy(dtype=object)
    numeric_pred = pd.to_numeric(pred.map(_number), errors="coerce")
    numeric_label = pd.to_numeric(label.map(_number), errors="coerce")
    if numeric_pred.notna().all() and numeric_label.notna().all():
        p, t = numeric_pred.to_numpy(dtype=float), numeric_label.to_numpy(dtype=float)
        m.correct = p == t
        m.abs_error = np.abs(p - t)
        m.label_values = t
        m.metrics["mae"] = float(m.abs_error.mean())
        m.metrics["rmse"] = float(np.sqrt(np.mean(m.abs_error ** 2)))
    else:
        m.correct = (pred.astype(str).to_numpy() == label.astype(str).to_numpy())
    m.metrics["accuracy"] = float(m.correct.mean())


def _number(value: Any) -> Any:
    """A value as a number where it is one (a bool is not: True is a class, not 1.0)."""
    if isinstance(value, bool):
        return None
    return value


def _agreement(primary: pd.DataFrame, shadow: pd.DataFrame) -> tuple[float | None, int]:
    """Share of (request id, row) both answered where the shadow's prediction equals the
    primary's (compared as text: 1 and 1.0 differ only when the models differ in type)."""
    keys = ["request_id", "row"]
    a = primary[primary["outcome"] == "ok"][[*keys, "prediction"]]
    b = shadow[shadow["outcome"] == "shadow"][[*keys, "prediction"]]
    both = a.merge(b, on=keys, suffixes=("_p", "_s"))
    if both.empty:
        return None, 0
    same = both["prediction_p"].astype(str).to_numpy() == both["prediction_s"].astype(str)\
        .to_numpy()
    return float(same.mean()), len(both)


def _attach_sensitive(project: Project, revision: Revision, arms: dict[str, ArmMeasure],
                      by_arm: dict[str, pd.DataFrame], *, columns: tuple[str, ...],
                      since_ms: int | None) -> None:
    """The sensitive input columns of each arm's labelled rows, from the prediction log of
    the arm's model (``in.<column>``, joined by request id and row).

    Limit: this reads the local prediction log (``.mloop/predictions``) since the step
    started, one Parquet scan per arm and analysis; rows whose inputs are not in that log
    (another replica's, not yet written) get no group and are left out of fairness.
    """
    import pandas as pd

    from mloop.core.uris import ModelURI, parse_uri
    from mloop.serving.predlog import log_root, read_predictions

    root = log_root(project)
    for arm in revision.arms:
        rows, m = by_arm.get(arm.name), arms[arm.name]
        uri = parse_uri(arm.model)
        if rows is None or not m.labelled or not isinstance(uri, ModelURI):
            continue
        own = rows[np.isin(rows["outcome"].to_numpy(), _ANSWERED)]
        have = own[own["label"].notna() & own["prediction"].notna()][["request_id", "row"]]
        wanted = [f"in.{c}" for c in columns]
        logged = read_predictions(root, uri.name, since_ms=since_ms,
                                  columns=["request_id", "row", *wanted])
        for c in wanted:
            if c not in logged.columns:
                logged[c] = pd.Series(dtype=object)
        logged = logged.drop_duplicates(["request_id", "row"])
        joined = have.reset_index(drop=True).merge(
            logged[["request_id", "row", *wanted]], on=["request_id", "row"], how="left")
        for c in columns:
            m.sensitive[c] = joined[f"in.{c}"].to_numpy(dtype=object)
