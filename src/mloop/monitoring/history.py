"""A model version's monitoring over time: drift per column, and the live metrics, window by
window.

The logged predictions of a version in a time range, in time order, are cut into windows
of equal rows (a drift test needs enough rows in each, however fast or slowly traffic
came) and each window is tested against the version's reference as ``mloop monitor run``
tests it: the same reference (``monitoring.yaml``'s, else the dataset version its run
read), the same method, alpha and drift share. The whole range is tested once more: the
latest drift report. The labelled rows are cut the same way and scored as
:func:`mloop.monitoring.live.performance` scores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import MloopError

if TYPE_CHECKING:
    from mloop.monitoring.datadrift import ColumnDrift, DriftReport
    from mloop.monitoring.live import VersionPerformance
    from mloop.monitoring.rules import MonitorConfig
    from mloop.project import Project

__all__ = ["DriftHistory", "DriftWindow", "LiveHistory", "column_score", "drift_history",
           "live_history", "reference_of"]

MIN_ROWS = 30  # per window: drift()'s own minimum for testing a column


@dataclass(frozen=True)
class DriftWindow:
    """One window of logged rows and its drift report."""

    start_ms: int
    end_ms: int
    rows: int
    report: DriftReport


@dataclass
class DriftHistory:
    """Drift of one model version, window by window, and over the whole range."""

    model: str
    version: int
    reference: str | None
    windows: list[DriftWindow] = field(default_factory=list)
    latest: DriftReport | None = None
    rows: int = 0
    note: str | None = None

    @property
    def columns(self) -> list[str]:
        """The tested input columns, in the latest report's order."""
        return list(self.latest.columns) if self.latest is not None else []

    def series(self, column: str) -> tuple[list[int], list[float | None],
                                           list[float | None], str]:
        """``column``'s score per window (at each window's end), its threshold and what
        the score is (see :func:`column_score`)."""
        times, scores, limits, what = [], [], [], ""
        for w in self.windows:
            found = w.report.columns.get(column)
            score, limit, name = column_score(found) if found is not None else \
                (None, None, "")
            times.append(w.end_ms)
            scores.append(score)
            limits.append(limit)
            what = what or name
        return times, scores, limits, what


def column_score(column: ColumnDrift) -> tuple[float | None, float | None, str]:
    """(score, threshold, name) that says how far a column moved: the effect size when the
    preset asked for one (the column drifts only when it reaches its threshold), else the
    test's distance, else its p-value (drift below the threshold)."""
    from mloop.monitoring import stattests

    if column.effect:
        return (column.effect.get("value"), column.effect.get("threshold"),
                str(column.effect.get("method")))
    if column.method is None:
        return None, None, ""
    try:
        by_p = stattests.get_test(column.method).score == "p_value"
    except MloopError:
        by_p = column.p_value is not None
    if by_p:
        return column.p_value, column.threshold, f"{column.method} p-value"
    return column.statistic, column.threshold, column.method


def _config(project: Project, config: MonitorConfig | None) -> MonitorConfig:
    from mloop.monitoring.rules import load_config

    return config if config is not None else load_config(project.root)


def reference_of(project: Project, model: str, version: int,
                 config: MonitorConfig) -> tuple[str | None, Any, str | None]:
    """(what the reference is, its data or profile, why there is none): the reference
    ``monitoring.yaml`` names for ``model``, else the dataset version the version's run
    read."""
    from mloop.monitoring import sources
    from mloop.registry.models import training_data

    spec = config.reference.get(model)
    if spec is not None and Path(spec).suffix.lower() in (".csv", ".parquet", ".pq") \
            and not Path(spec).is_absolute():
        spec = str(project.root / spec)  # monitoring.yaml's paths are the project's
    if spec is None:
        try:
            spec = training_data(project, f"models:/{model}/{version}")
        except MloopError:
            spec = None
    if spec is None:
        return None, None, ("no drift reference: the model's run read no dataset version; "
                            f"set reference: {{{model}: DATASET}} in .mloop/monitoring.yaml")
    try:
        return spec, sources.load(project, spec, reference=True), None
    except MloopError as exc:
        return spec, None, f"reference {spec}: {exc.message}"


def _windows(n: int, wanted: int, min_rows: int) -> list[np.ndarray]:
    """Row positions of at most ``wanted`` windows of equal size, each of ``min_rows`` at
    least (one window when there are fewer rows than that)."""
    count = max(1, min(wanted, n // max(min_rows, 1)))
    return [part for part in np.array_split(np.arange(n), count) if len(part)]


def drift_history(project: Project, model: str, version: int, *,
                  since_ms: int | None = None, until_ms: int | None = None,
                  windows: int = 8, config: MonitorConfig | None = None) -> DriftHistory:
    """``model``'s ``version``: its logged inputs in [``since_ms``, ``until_ms``) tested for
    drift in at most ``windows`` windows of equal rows (30 rows each at least: the fewest a
    column is tested on) and as a whole (``latest``)."""
    from mloop.monitoring.datadrift import drift
    from mloop.serving.predlog import log_root, read_predictions

    config = _config(project, config)
    rows = read_predictions(log_root(project), model, since_ms=since_ms, until_ms=until_ms,
                            columns=["time_ms", "in.*"])
    rows = rows[rows["version"] == version].sort_values("time_ms", kind="stable")
    spec, reference, note = reference_of(project, model, version, config)
    out = DriftHistory(model, version, spec, rows=len(rows), note=note)
    inputs = [c for c in rows.columns if c.startswith("in.")]
    if reference is None or rows.empty or not inputs:
        return out
    current = rows[inputs].rename(columns=lambda c: c[3:]).reset_index(drop=True)
    times = rows["time_ms"].to_numpy(dtype=np.int64)
    names = list(current.columns)

    def test(frame: Any) -> DriftReport:
        report = drift(reference, frame, columns=names, method=config.method,
                       alpha=config.alpha, drift_share=config.drift_share)
        report.reference["name"] = spec
        report.current["name"] = f"serving:{model}/{version}"
        return report

    for part in _windows(len(current), windows, MIN_ROWS):
        out.windows.append(DriftWindow(int(times[part[0]]), int(times[part[-1]]), len(part),
                                       test(current.iloc[part])))
    out.latest = out.windows[0].report if len(out.windows) == 1 else test(current)
    return out


@dataclass
class LiveHistory:
    """Live metrics of one model version over the whole range (``overall``, with its
    criteria against the evaluation) and window by window (``windows``: end time, labelled
    rows, metrics)."""

    model: str
    version: int
    overall: VersionPerformance | None
    windows: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)


def live_history(project: Project, model: str, version: int, *, since_ms: int,
                 until_ms: int, windows: int = 8, config: MonitorConfig | None = None
                 ) -> LiveHistory:
    """``model``'s ``version`` scored on its labelled predictions in [``since_ms``,
    ``until_ms``): as a whole against its evaluated criteria, and in ``windows`` windows
    of equal labelled rows (``min_labels`` each at least)."""
    from mloop.monitoring.live import _version, labelled

    config = _config(project, config)
    rows = labelled(project, model, since_ms, until_ms)
    rows = rows[rows["version"] == version].sort_values("time_ms", kind="stable")
    if rows.empty:
        return LiveHistory(model, version, None)
    overall = _version(project, model, version, rows, max_drop=config.max_drop,
                       min_labels=config.min_labels)
    out = LiveHistory(model, version, overall)
    have = rows[rows["label"].notna()].reset_index(drop=True)
    for part in _windows(len(have), windows, config.min_labels) if len(have) else ():
        chunk = have.iloc[part]
        scored = _version(project, model, version, chunk, max_drop=config.max_drop,
                          min_labels=config.min_labels)
        out.windows.append((int(chunk["time_ms"].iloc[-1]), len(chunk), scored.metrics))
    return out
