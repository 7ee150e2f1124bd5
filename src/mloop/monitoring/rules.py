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

Without a file the two default rules apply: dataset drift (warning) and a drop of a
watched metric below its evaluated value (critical).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.core.clock import parse_duration
from mloop.errors import ConfigError, InvalidInputError
from mloop.monitoring.alerting import SEVERITIES, check_webhook

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
SIGNALS = ("drift.share", "drift.dataset", "performance.drop", "predictions.count")
PREFIXES = ("drift.column.", "performance.")
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


def load_config(root: Path) -> MonitorConfig:
    """``<project>/.mloop/monitoring.yaml`` read and checked (defaults when absent)."""
    path = root / ".mloop" / FILE
    if not path.is_file():
        config = MonitorConfig()
        config.rules = default_rules(config.window_ms)
        return config
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level.")
    try:
        return parse_config(raw)
    except (InvalidInputError, ValueError, TypeError) as exc:
        message = exc.message if isinstance(exc, InvalidInputError) else str(exc)
        raise ConfigError(f"{path}: {message}") from None


def parse_config(raw: dict[str, Any]) -> MonitorConfig:
    known = {"every", "window", "models", "reference", "method", "alpha", "drift_share",
             "max_drop", "min_labels", "retention", "webhook", "rules"}
    unknown = set(raw) - known
    if unknown:
        raise InvalidInputError(f"unknown setting(s) {', '.join(sorted(unknown))}; known: "
                                f"{', '.join(sorted(known))}")
    c = MonitorConfig()
    if "every" in raw:
        c.every_ms = parse_duration(raw["every"])
    if "window" in raw:
        c.window_ms = parse_duration(raw["window"])
    if "retention" in raw:
        c.retention_ms = parse_duration(raw["retention"])
    if raw.get("models") is not None:
        if not isinstance(raw["models"], list):
            raise InvalidInputError("models: a list of model names")
        c.models = [str(m) for m in raw["models"]]
    reference = raw.get("reference") or {}
    if not isinstance(reference, dict):
        raise InvalidInputError("reference: a mapping of model name to dataset or file")
    c.reference = {str(k): str(v) for k, v in reference.items()}
    c.method = str(raw.get("method", c.method))
    c.alpha = float(raw.get("alpha", c.alpha))
    c.drift_share = float(raw.get("drift_share", c.drift_share))
    c.max_drop = float(raw.get("max_drop", c.max_drop))
    c.min_labels = int(raw.get("min_labels", c.min_labels))
    if raw.get("webhook"):
        c.webhook = check_webhook(str(raw["webhook"]))
    rules = raw.get("rules")
    if rules is None:
        c.rules = default_rules(c.window_ms)
    elif not isinstance(rules, list):
        raise InvalidInputError("rules: a list of rules")
    else:
        c.rules = [_rule(r, i, c.window_ms) for i, r in enumerate(rules)]
        names = [r.name for r in c.rules]
        if len(set(names)) != len(names):
            raise InvalidInputError("rules: two rules share a name; names identify alerts")
    return c


def _rule(raw: Any, i: int, window_ms: int) -> Rule:
    if not isinstance(raw, dict) or "signal" not in raw:
        raise InvalidInputError(f"rules[{i}]: a mapping with at least 'signal'")
    signal = str(raw["signal"])
    if signal not in SIGNALS and not signal.startswith(PREFIXES):
        raise InvalidInputError(f"rules[{i}]: unknown signal {signal!r}; use one of "
                                f"{', '.join(SIGNALS)}, drift.column.<name> or "
                                "performance.<metric>")
    op = str(raw.get("op", ">="))
    if op not in OPS:
        raise InvalidInputError(f"rules[{i}]: op must be one of {', '.join(OPS)}, not {op!r}")
    severity = str(raw.get("severity", "warning"))
    if severity not in SEVERITIES:
        raise InvalidInputError(f"rules[{i}]: severity must be one of "
                                f"{', '.join(SEVERITIES)}, not {severity!r}")
    if "threshold" not in raw and signal not in ("drift.dataset", "performance.drop"):
        raise InvalidInputError(f"rules[{i}] ({signal}): a threshold is needed")
    return Rule(str(raw.get("name", signal)), signal, float(raw.get("threshold", 1)), op,
                parse_duration(raw["window"]) if "window" in raw else window_ms, severity,
                parse_duration(raw.get("cooldown", "1h")))
