"""Scheduled checks: every monitored model version, every rule, alerts opened and resolved.

One check of a model reads its logged predictions once per rule window (inputs, outputs,
labels that arrived), tests the inputs for drift against the version's reference, scores
the labelled rows against the evaluated criteria, turns both into *signals*
(``drift.share``, ``performance.drop``, …), and lets each rule fire or clear an alert.
``mloop monitor run`` repeats this every ``every``; ``mloop serve`` does it in the
background for the models it serves and exports the results on ``/metrics``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.redact import get_logger
from mloop.errors import CheckFailedError, MloopError
from mloop.monitoring import alerting as A
from mloop.monitoring import webhooks
from mloop.monitoring.rules import MonitorConfig, Rule, load_config

if TYPE_CHECKING:
    from mloop.monitoring.datadrift import DriftReport
    from mloop.monitoring.live import VersionPerformance
    from mloop.project import Project

log = get_logger("mloop.monitoring")


@dataclass
class CheckResult:
    """One model version, one check."""

    model: str
    version: int
    predictions: int
    drift: DriftReport | None = None
    performance: VersionPerformance | None = None
    signals: dict[str, float | None] = field(default_factory=dict)
    fired: list[A.Alert] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"models:/{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.subject, "predictions": self.predictions,
                "signals": self.signals, "notes": self.notes,
                "drifted_columns": self.drift.drifted_columns if self.drift else None,
                "metrics": self.performance.metrics if self.performance else None,
                "fired": [a.to_dict() for a in self.fired], "resolved": self.resolved}


def monitored_models(project: Project, config: MonitorConfig) -> list[str]:
    """The configured models, else every model with logged predictions."""
    if config.models is not None:
        return list(config.models)
    from mloop.serving.predlog import log_root

    root = log_root(project)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def check(project: Project, config: MonitorConfig | None = None, *,
          models: list[str] | None = None, now: int | None = None) -> list[CheckResult]:
    """Check every monitored model (or ``models``) once; alerts fire and clear."""
    config = config if config is not None else load_config(project.root)
    t = now_ms() if now is None else now
    references: dict[str, Any] = {}
    out: list[CheckResult] = []
    for model in models if models is not None else monitored_models(project, config):
        out.extend(check_model(project, model, config, now=t, references=references))
    return out


def check_model(project: Project, model: str, config: MonitorConfig, *, now: int,
                references: dict[str, Any] | None = None) -> list[CheckResult]:
    """Check every version of ``model`` that served in the rules' windows."""
    references = {} if references is None else references
    results: dict[int, CheckResult] = {}
    for window in sorted({r.window_ms for r in config.rules}) or [config.window_ms]:
        rules = [r for r in config.rules if r.window_ms == window]
        for version, rows in _windows(project, model, now - window, now):
            result = results.setdefault(version, CheckResult(model, version, len(rows)))
            signals = _signals(project, result, rows, config, references)
            for rule in rules:
                _apply(project, rule, result, signals.get(rule.signal, _lookup(
                    rule.signal, result)), config)
            result.signals.update(signals)
    return [results[v] for v in sorted(results)]


def _windows(project: Project, model: str, since: int, until: int) -> list[tuple[int, Any]]:
    from mloop.monitoring import feedback
    from mloop.serving.predlog import log_root, read_predictions

    rows = read_predictions(log_root(project), model, since_ms=since,
                            until_ms=until)
    if rows.empty:
        return []
    labels = feedback.read(project, since)
    rows = rows.merge(labels, on=["request_id", "row"], how="left")
    return [(int(str(v)), group) for v, group in rows.groupby("version", sort=True)]


def _signals(project: Project, result: CheckResult, rows: Any, config: MonitorConfig,
             references: dict[str, Any]) -> dict[str, float | None]:
    from mloop.monitoring.datadrift import drift
    from mloop.monitoring.live import CriterionStatus, _version

    signals: dict[str, float | None] = {"predictions.count": float(len(rows))}
    reference = _reference(project, result, config, references)
    inputs = [c for c in rows.columns if c.startswith("in.")]
    if reference is not None and inputs:
        current = rows[inputs].rename(columns=lambda c: c[3:])
        report = drift(reference, current, columns=list(current.columns),
                       method=config.method, alpha=config.alpha,
                       drift_share=config.drift_share)
        report.reference["name"] = getattr(reference, "source", None)
        report.current["name"] = f"serving:{result.model}/{result.version}"
        result.drift = report
        decided = report.dataset_drift
        signals["drift.share"] = report.share_drifted if decided is not None else None
        signals["drift.dataset"] = None if decided is None else float(decided)
        for name, column in report.columns.items():
            drifted = column.drifted
            signals[f"drift.column.{name}"] = None if drifted is None else float(drifted)
    if "label" in rows.columns:
        perf = _version(project, result.model, result.version, rows,
                        max_drop=config.max_drop, min_labels=config.min_labels)
        result.performance = perf
        decided_metrics = [c for c in perf.criteria.values()
                           if c["status"] != CriterionStatus.UNKNOWN]
        signals["performance.drop"] = float(len(perf.drops)) if decided_metrics else None
        for metric, value in perf.metrics.items():
            signals[f"performance.{metric}"] = value
    return signals


def _lookup(signal: str, result: CheckResult) -> float | None:
    return result.signals.get(signal)


def _reference(project: Project, result: CheckResult, config: MonitorConfig,
               cache: dict[str, Any]) -> Any:
    from mloop.monitoring import sources

    spec = config.reference.get(result.model)
    if spec is not None and Path(spec).suffix.lower() in (".csv", ".parquet", ".pq") \
            and not Path(spec).is_absolute():
        spec = str(project.root / spec)  # monitoring.yaml's paths are the project's
    spec = spec or _training_data(project, result.subject)
    if spec is None:
        result.notes.append("no drift reference: the model's run read no dataset version; "
                            f"set reference: {{{result.model}: DATASET}} in "
                            ".mloop/monitoring.yaml")
        return None
    if spec not in cache:
        try:
            cache[spec] = sources.load(project, spec, reference=True)
        except MloopError as exc:
            cache[spec] = None
            result.notes.append(f"reference {spec}: {exc.message}")
    return cache[spec]


def _training_data(project: Project, subject: str) -> str | None:
    from mloop.registry.models import training_data

    try:
        return training_data(project, subject)
    except MloopError:
        return None


def _apply(project: Project, rule: Rule, result: CheckResult, value: float | None,
           config: MonitorConfig) -> None:
    fires = rule.fires(value)
    if fires is None:
        return  # no value (no labels yet, nothing testable): neither fire nor clear
    if not fires:
        if A.clear(project, rule.name, result.subject):
            result.resolved.append(rule.name)
        return
    message = _message(rule, value, result)
    alert, _ = A.fire(project, A.Firing(rule.name, rule.signal, result.subject,
                                        rule.severity, value, rule.threshold, message,
                                        rule.cooldown_ms), webhook=config.webhook)
    result.fired.append(alert)


def _message(rule: Rule, value: float | None, result: CheckResult) -> str:
    from mloop.monitoring.live import CriterionStatus

    base = f"{rule.signal} = {value:.4g} ({rule.op} {rule.threshold:g})"
    if rule.signal.startswith("drift") and result.drift is not None:
        columns = result.drift.drifted_columns
        shown = ", ".join(columns[:5]) + (" …" if len(columns) > 5 else "")
        return f"{base}; drifted columns: {shown or 'none'}"
    if rule.signal.startswith("performance") and result.performance is not None:
        drops = [f"{m} {c['why']}" for m, c in result.performance.criteria.items()
                 if c["status"] == CriterionStatus.DROP]
        return f"{base}; {'; '.join(drops)}" if drops else base
    return base


def run(project: Project, *, every_ms: int | None = None, stop: threading.Event | None = None,
        on_check: Any = None, iterations: int | None = None, strict: bool = False) -> None:
    """Check, prune past the retention, sleep ``every``; until ``stop`` is set (or
    ``iterations`` checks). A failing check is logged and retried next time; with
    ``strict`` (``mloop monitor run --once``, for cron) it raises
    :class:`~mloop.errors.CheckFailedError` instead, so the caller's exit status says so.
    Webhooks are delivered in the background, and waited for (bounded) before returning."""
    stop = stop if stop is not None else threading.Event()
    try:
        _loop(project, stop, every_ms=every_ms, on_check=on_check, iterations=iterations,
              strict=strict)
    finally:
        webhooks.flush()  # the alerts of the last round reach their webhook before we return


def _loop(project: Project, stop: threading.Event, *, every_ms: int | None, on_check: Any,
          iterations: int | None, strict: bool) -> None:
    done = 0
    config = load_config(project.root)  # a broken file at start: a clear error, no loop
    while not stop.is_set():
        try:
            config = load_config(project.root)  # edits to monitoring.yaml apply next round
        except MloopError as exc:  # a half-saved file: keep the last good settings
            log.error("%s (keeping the previous settings)", exc.message)
        try:
            results = check(project, config)
            prune(project, config.retention_ms)
        except MloopError as exc:
            if strict:
                raise CheckFailedError(f"The monitoring check failed: {exc.message}") from exc
            log.error("monitoring check failed: %s", exc.message)
            results = []
        if on_check is not None:
            on_check(results)
        done += 1
        if iterations is not None and done >= iterations:
            break
        stop.wait((every_ms or config.every_ms) / 1000)


@dataclass
class PruneResult:
    segments: int
    bytes: int
    feedback: int
    traffic: int = 0  # deployment traffic index rows


def prune(project: Project, older_than_ms: int, *, now: int | None = None) -> PruneResult:
    """Delete prediction-log segments (and their shared listing), feedback and the
    deployment traffic index older than ``older_than_ms``."""
    from mloop.repositories import backend
    from mloop.serving.predlog import shared

    cutoff = (now_ms() if now is None else now) - older_than_ms
    segments = size = 0
    root = project.root / ".mloop" / "predictions"
    for path in root.glob("*/*/*.parquet") if root.is_dir() else ():
        stamp = path.name.split("-", 1)[0]
        if stamp.isdigit() and int(stamp) < cutoff:  # written before: every row is older
            size += path.stat().st_size
            path.unlink(missing_ok=True)
            segments += 1
    repos = backend(project)
    if shared(project):  # their blobs become garbage for `mloop data gc`
        repos.prediction_segments.prune(cutoff)
    return PruneResult(segments, size, repos.feedback.prune(cutoff), repos.traffic.prune(cutoff))
