"""A deployment revision's traffic over time, arm by arm: what its page charts.

The same rows as :mod:`mloop.deploy.measure` (the traffic index every replica fills, with
feedback joined), cut into equal stretches of time: per arm and stretch, the rows served,
the failed ones (errors and fallbacks, as the error rate counts them), latency p50 and
p99, and the accuracy of the labelled rows the arm answered itself. Computed with pandas
group-bys, never a loop over rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from mloop.project import Project
    from mloop.repositories.deployments import Revision

__all__ = ["ArmTimeline", "arm_timelines"]

_ANSWERED = ("ok", "shadow")  # outcomes whose prediction is the arm's own


@dataclass
class ArmTimeline:
    """One arm's traffic per stretch of time (``time_ms``: the middle of each stretch;
    stretches where the arm served nothing are left out)."""

    arm: str
    time_ms: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    latency_p50: list[float | None] = field(default_factory=list)
    latency_p99: list[float | None] = field(default_factory=list)
    labelled: list[int] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)

    @property
    def error_rate(self) -> list[float | None]:
        """Failures ÷ rows of each stretch."""
        return [f / r if r else None for f, r in zip(self.failures, self.requests,
                                                     strict=True)]


def arm_timelines(project: Project, revision: Revision, *, buckets: int = 40,
                  since_ms: int | None = None) -> dict[str, ArmTimeline]:
    """Per arm of ``revision`` (in its order), its traffic at or after ``since_ms`` cut
    into ``buckets`` equal stretches of time (an arm without traffic: empty lists)."""
    import pandas as pd

    from mloop import repositories

    cols = repositories.backend(project).traffic.read(revision.deployment, revision.number,
                                                      since_ms=since_ms)
    out = {a.name: ArmTimeline(a.name) for a in revision.arms}
    if not len(cols):
        return out
    frame = pd.DataFrame({"arm": cols.arm, "outcome": cols.outcome,
                          "time_ms": np.asarray(cols.time_ms, dtype=np.int64),
                          "latency_ms": pd.to_numeric(pd.Series(cols.latency_ms,
                                                                dtype=object)),
                          "correct": _correct(cols.prediction, cols.label)})
    frame = frame[frame["arm"].isin(list(out))]
    if frame.empty:
        return out
    start, end = int(frame["time_ms"].min()), int(frame["time_ms"].max())
    width = max(math.ceil((end - start + 1) / max(buckets, 1)), 1)
    frame["bucket"] = (frame["time_ms"] - start) // width
    frame["failed"] = frame["outcome"].isin(["error", "fallback"])
    answered = frame["outcome"].isin(_ANSWERED)
    frame["scored"] = answered & frame["correct"].notna()
    frame["right"] = frame["scored"] & (frame["correct"] == True)  # noqa: E712 (NaN-safe)
    groups = frame.groupby(["arm", "bucket"], sort=True)
    summary = groups.agg(requests=("outcome", "size"), failures=("failed", "sum"),
                         labelled=("scored", "sum"), right=("right", "sum"))
    latency = groups["latency_ms"].quantile([0.5, 0.99]).unstack()
    summary = summary.join(latency)
    for (arm, bucket), row in summary.iterrows():  # one row a stretch, not a request
        line = out[str(arm)]
        line.time_ms.append(start + int(bucket) * width + width // 2)
        line.requests.append(int(row["requests"]))
        line.failures.append(int(row["failures"]))
        line.latency_p50.append(_finite(row.get(0.5)))
        line.latency_p99.append(_finite(row.get(0.99)))
        labelled = int(row["labelled"])
        line.labelled.append(labelled)
        line.accuracy.append(float(row["right"]) / labelled if labelled else None)
    return out


def _correct(predictions: list[Any], labels: list[Any]) -> pd.Series:
    """Per row: whether the prediction equals the label (as numbers when both are numbers,
    else as text, as the live metrics compare them); NaN where there is no label."""
    import pandas as pd

    from mloop.monitoring.feedback import decode

    raw = pd.Series(labels, dtype=object)
    have = raw.notna().to_numpy()
    out = pd.Series(np.nan, index=raw.index, dtype=object)
    if not have.any():
        return out
    label = decode(raw[have].reset_index(drop=True))
    pred = pd.Series(predictions, dtype=object)[have].reset_index(drop=True)
    n_label = pd.to_numeric(label, errors="coerce")
    n_pred = pd.to_numeric(pred, errors="coerce")
    # a boolean label is a class, not the number 1: compared as text
    numeric = (n_label.notna() & n_pred.notna()).to_numpy() & (label.dtype != bool)
    same = np.where(numeric, n_label.to_numpy(dtype=float) == n_pred.to_numpy(dtype=float),
                    label.astype(str).to_numpy() == pred.astype(str).to_numpy())
    out[have] = same
    return out


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
