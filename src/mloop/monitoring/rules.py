"""What to watch: ``.mloop/monitoring.yaml`` (every key optional).

.. code-block:: yaml

    every: 10m                 # how often `mloop monitor run` checks
    window: 24h                # the window of recent predictions a rule looks at
    models: [churn]            # default: every model with logged predictions
    reference:                 # per model; default: the dataset version its run read
      churn: data:/train@3     # a dataset version (its stored profile) or a CSV/Parquet file
    method: auto               # drift preset or test (see mloop.monitoring.drift)
    alpha: 0.05
    drift_share: 0.5
    max_drop: 0.05             # how much worse than evaluated a live metric may get
    min_labels: 30
    retention: 30d             # logged predictions and feedback older than this are pruned
    webhook: https://hooks.example.com/services/T000/B000   # alerts POSTed as JSON
    rules:
      - name: data-drift
        signal: drift.dataset  # drift.share | drift.dataset | drift.column.<name> |
                               # performance.drop | performance.<metric> | predictions.count
        op: ">="               # >=, >, <=, <
        threshold: 1
        window: 24h
        severity: warning      # info | warning | critical
        cooldown: 6h           # no new alert (nor message) for this rule and version
        rollback: churn-live   # optional: roll this deployment back when the rule has an
                               # open alert on a version its rollout put into traffic

Without a file the two default rules apply: dataset drift (warning) and a drop of a
watched metric below its evaluated value (critical). The file is checked against
:class:`MonitoringFile` (every key is listed in ``docs/configuration.md``): an unknown
key, a value of the wrong type or out of range is a ConfigError naming the key.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mloop.core.schema import Duration, Name, Schema, did_you_mean, validate
from mloop.errors import MloopError
from mloop.monitoring.alerting import check_webhook

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
SIGNALS = ("drift.share", "drift.dataset", "performance.drop", "predictions.count")
FILE = "monitoring.yaml"


@dataclass(frozen=True)
class Rule:
    name: str
    signal: str
    threshold: float
    op: str = ">="
    window_ms: int = 86_400_000
    severity: str = "warning"
    cooldown_ms: int = 3_600_000
    rollback: str | None = None  # a deployment rolled back when this fires on its arm

    def fires(self, value: float | None) -> bool | None:
        """Whether the signal's value breaks the rule; None when there is no value."""
        return None if value is None else OPS[self.op](value, self.threshold)


@dataclass
class MonitorConfig:
    every_ms: int = 600_000
    window_ms: int = 86_400_000
    models: list[str] | None = None
    reference: dict[str, str] = field(default_factory=dict)
    method: str = "auto"
    alpha: float = 0.05
    drift_share: float = 0.5
    max_drop: float = 0.05
    min_labels: int = 30
    retention_ms: int = 30 * 86_400_000
    webhook: str | None = None
    rules: list[Rule] = field(default_factory=list)


def default_rules(window_ms: int) -> list[Rule]:
    return [Rule("data-drift", "drift.dataset", 1, window_ms=window_ms, severity="warning",
                 cooldown_ms=6 * 3_600_000),
            Rule("performance-drop", "performance.drop", 1, window_ms=window_ms,
                 severity="critical", cooldown_ms=3_600_000)]


class RuleSpec(Schema):
    """One rule of ``rules:``."""

    name: Name | None = Field(None, description="identifies the rule's alerts (default: its "
                              "signal); unique")
    signal: str = Field(..., description="drift.share, drift.dataset, drift.column.<name>, "
                        "performance.drop, performance.<metric> or predictions.count")
    op: Literal[">=", ">", "<=", "<"] = Field(">=", description="how the signal is compared "
                                              "with the threshold")
    threshold: float | None = Field(None, description="the rule fires when `signal op "
                                    "threshold` (default 1 for drift.dataset and "
                                    "performance.drop, required otherwise)")
    window: Duration | None = Field(None, description="recent predictions the rule looks at "
                                    "(default: the file's window)")
    severity: Literal["info", "warning", "critical"] = Field("warning", description="of the "
                                                             "alerts it raises")
    cooldown: Duration = Field("1h", validate_default=True, description="no new alert (nor "
                               "message) for this rule and model version within this time")
    rollback: Name | None = Field(None, description="a deployment to roll back when this "
                                  "rule has an open alert on a version its current rollout "
                                  "put into traffic (done by its controller)")

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, signal: str) -> str:
        from mloop.evaluation.metrics import METRICS

        metric = signal.removeprefix("performance.")
        if signal in SIGNALS or (signal.startswith("drift.column.") and
                                 len(signal) > len("drift.column.")):
            return signal
        if signal.startswith("performance.") and metric in METRICS:
            return signal
        if signal.startswith("performance.") and metric:
            raise ValueError(f"unknown metric {metric!r} in {signal!r}"
                             f"{did_you_mean(metric, sorted(METRICS))}")
        raise ValueError(f"unknown signal {signal!r}"
                         f"{did_you_mean(signal, SIGNALS, known=False)}; use one of "
                         f"{', '.join(SIGNALS)}, drift.column.<name> or performance.<metric>")

    @field_validator("rollback")
    @classmethod
    def _deployment_name(cls, name: str | None) -> str | None:
        from mloop.core.uris import check_name
        from mloop.errors import InvalidURIError

        if name is not None:
            try:
                check_name(name, "deployment name")
            except InvalidURIError as exc:
                raise ValueError(exc.message) from None
        return name

    @model_validator(mode="after")
    def _threshold(self) -> RuleSpec:
        if self.threshold is None and self.signal not in ("drift.dataset", "performance.drop"):
            raise ValueError(f"a rule on {self.signal} needs a threshold")
        return self


class MonitoringFile(Schema):
    """``.mloop/monitoring.yaml`` (every key optional)."""

    every: Duration = Field("10m", validate_default=True, description="how often `mloop "
                            "monitor run` (and `mloop serve`) checks")
    window: Duration = Field("24h", validate_default=True, description="recent predictions a "
                             "rule looks at, unless it sets its own")
    models: list[Name] | None = Field(None, description="models to watch (default: every model "
                                      "with logged predictions)")
    reference: dict[Name, str] = Field({}, description="per model, its drift reference: a "
                                       "dataset version (data:/train@3) or a CSV/Parquet file "
                                       "(default: the dataset version its run read)")
    method: str = Field("auto", description="drift test: auto, evidently, or one test for "
                        "every column (ks, chisquare, psi, wasserstein, …)")
    alpha: Annotated[float, Field(gt=0, lt=1)] = Field(0.05, description="significance level "
                                                       "of the p-value tests")
    drift_share: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="share of drifted columns that makes the dataset drift")
    max_drop: Annotated[float, Field(ge=0)] = Field(
        0.05, description="how much worse than evaluated a live metric may get (absolute for "
        "scores, relative for errors)")
    min_labels: Annotated[int, Field(ge=1)] = Field(30, description="labelled predictions "
                                                    "needed before a drop counts")
    retention: Duration = Field("30d", validate_default=True, description="logged predictions "
                                "and feedback older than this are pruned")
    webhook: str | None = Field(None, description="an http(s) URL alerts are POSTed to as "
                                "JSON")
    rules: list[RuleSpec] | None = Field(None, description="the alert rules (default: dataset "
                                         "drift, warning; a drop below the evaluated metrics, "
                                         "critical)")

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        from mloop.monitoring import stattests
        from mloop.monitoring.datadrift import PRESETS

        known = [*PRESETS, *stattests.known_tests()]
        if method not in known:
            raise ValueError(f"unknown drift method {method!r}{did_you_mean(method, known)}")
        return method

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, url: str | None) -> str | None:
        if not url:
            return None
        try:
            return check_webhook(url)
        except MloopError as exc:  # its message never shows the path (tokens)
            raise ValueError(exc.message) from None

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[RuleSpec] | None) -> list[RuleSpec] | None:
        names = [r.name or r.signal for r in rules or []]
        if len(set(names)) != len(names):
            raise ValueError("two rules share a name; names identify alerts")
        return rules


def load_config(root: Path) -> MonitorConfig:
    """``<project>/.mloop/monitoring.yaml`` read and checked (defaults when absent)."""
    from mloop.core.yamlio import load_yaml

    path = root / ".mloop" / FILE
    raw = load_yaml(path, missing_ok=True)
    return parse_config({} if raw is None else raw, source=path)


def parse_config(raw: Any, *, source: str | Path = FILE) -> MonitorConfig:
    """A parsed monitoring.yaml checked against :class:`MonitoringFile`; mistakes are a
    :class:`ConfigError` naming ``source``, the key and the closest known key."""
    spec = validate(MonitoringFile, raw, source=source)
    c = MonitorConfig(every_ms=spec.every, window_ms=spec.window, models=spec.models,
                      reference=dict(spec.reference), method=spec.method, alpha=spec.alpha,
                      drift_share=spec.drift_share, max_drop=spec.max_drop,
                      min_labels=spec.min_labels, retention_ms=spec.retention,
                      webhook=spec.webhook)
    if spec.rules is None:
        c.rules = default_rules(c.window_ms)
    else:
        c.rules = [Rule(r.name or r.signal, r.signal, 1.0 if r.threshold is None else
                        r.threshold, r.op, c.window_ms if r.window is None else r.window,
                        r.severity, r.cooldown, r.rollback) for r in spec.rules]
    return c
