"""What to automate: ``.mloop/automation.yaml``, read and checked before anything runs.

.. code-block:: yaml

    pipelines:
      churn-training:                  # a pipeline `mloop pipeline run` knows
        params: {C: 0.5}               # passed to the run (default: the steps' defaults)
        inputs: {raw: train@latest}
        executor: local                # or dask (with scheduler: tcp://…)
        triggers:
          - schedule: "0 3 * * *"      # cron, in UTC; grace: 1h (default) = how late a
            grace: 1h                  #   missed tick may still start (one run, coalesced)
          - dataset: train             # a version of 'train' no run of this trigger saw
          - alert: {model: churn, rules: [data-drift, performance-drop]}  # an open alert
        cooldown: 6h                   # no triggered run within 6 h of the last one
        validate: {dataset: train, schema: schemas/train.yaml}   # must pass, else 'blocked'
        promotion:
          model: churn                 # the registered model the new version joins
          data: test@latest            # evaluation data: a dataset ref or a CSV/Parquet file
          target: target
          suite: null                  # the default suite, or a suite YAML file
          compare:
            alias: champion            # compared with this version (none yet: promote)
            metrics:
              roc_auc: {min_change: 0.0}     # higher is better: new - old >= min_change
              accuracy: {min_change: -0.01}
              log_loss: {max_change: 0.0}    # lower is better: new - old <= max_change
          alias: challenger            # what a promoted version gets (or champion)

Paths (schema, suite, data files) are relative to the project root. Cron day-of-week
numbers mean what they mean in crontab (0 and 7 are Sunday).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.core.uris import check_name
from mloop.errors import ConfigError, InvalidInputError, InvalidURIError

FILE = "automation.yaml"
DEFAULT_GRACE_MS = 3_600_000
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class ScheduleTrigger:
    """Fires at each time of a cron expression (UTC), at most ``grace_ms`` late."""

    cron: str
    grace_ms: int = DEFAULT_GRACE_MS
    kind = "schedule"

    @property
    def key(self) -> str:
        return f"schedule {self.cron}"

    def cron_trigger(self) -> Any:
        """The APScheduler ``CronTrigger`` (UTC) of :attr:`cron`."""
        from datetime import UTC

        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(crontab_weekdays(self.cron), timezone=UTC)


@dataclass(frozen=True)
class DatasetTrigger:
    """Fires once per new version of a dataset."""

    dataset: str
    kind = "dataset"

    @property
    def key(self) -> str:
        return f"dataset {self.dataset}"


@dataclass(frozen=True)
class AlertTrigger:
    """Fires once per open monitoring alert on a model (optionally: of these rules)."""

    model: str
    rules: tuple[str, ...] | None = None
    kind = "alert"

    @property
    def key(self) -> str:  # not the rules: editing them must not re-fire handled alerts
        return f"alert {self.model}"


Trigger = ScheduleTrigger | DatasetTrigger | AlertTrigger


@dataclass(frozen=True)
class MetricRule:
    """A metric compared with the champion's: ``new - old`` must stay within bounds."""

    metric: str
    min_change: float | None = None
    max_change: float | None = None


@dataclass(frozen=True)
class PromotionPolicy:
    """How a new model earns its alias; see the module docs."""

    model: str
    data: str
    target: str
    suite: str | None = None
    compare_alias: str = "champion"
    metrics: tuple[MetricRule, ...] = ()
    alias: str = "challenger"


@dataclass(frozen=True)
class ValidateRule:
    dataset: str  # a name (the version the run reads) or name@version
    schema: str


@dataclass(frozen=True)
class PipelineAutomation:
    """One pipeline's triggers, cooldown, data gate and promotion policy."""

    name: str
    triggers: tuple[Trigger, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    scheduler: str | None = None
    cooldown_ms: int = 0
    validate: ValidateRule | None = None
    promotion: PromotionPolicy | None = None

    def triggers_of(self, kinds: set[str] | None) -> list[Trigger]:
        return [t for t in self.triggers if kinds is None or t.kind in kinds]


@dataclass(frozen=True)
class AutomationConfig:
    pipelines: dict[str, PipelineAutomation] = field(default_factory=dict)


def load_config(root: Path) -> AutomationConfig:
    """``<project>/.mloop/automation.yaml`` read and checked (nothing automated without it)."""
    path = root / ".mloop" / FILE
    if not path.is_file():
        return AutomationConfig()
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
    try:
        return parse_config(raw, root)
    except InvalidInputError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None


def parse_config(raw: Any, root: Path | None = None) -> AutomationConfig:
    """Check a parsed ``automation.yaml``; errors name the pipeline and key at fault."""
    _mapping(raw, "the top level", {"pipelines"})
    pipelines = raw.get("pipelines") or {}
    _mapping(pipelines, "pipelines", None)
    return AutomationConfig({str(name): parse_pipeline(str(name), spec, root)
                             for name, spec in pipelines.items()})


_PIPELINE_KEYS = {"params", "inputs", "executor", "scheduler", "triggers", "cooldown",
                  "validate", "promotion"}


def parse_pipeline(name: str, raw: Any, root: Path | None = None) -> PipelineAutomation:
    """One entry of ``pipelines:``."""
    where = f"pipelines.{name}"
    _name(name, where, "pipeline name")
    raw = {} if raw is None else raw
    _mapping(raw, where, _PIPELINE_KEYS)
    params = raw.get("params") or {}
    inputs = raw.get("inputs") or {}
    _mapping(params, f"{where}.params", None)
    _mapping(inputs, f"{where}.inputs", None)
    triggers = raw.get("triggers") or []
    if not isinstance(triggers, list):
        raise InvalidInputError(f"{where}.triggers: a list such as [{{schedule: '0 3 * * *'}}, "
                                "{dataset: train}]")
    cooldown = _duration(raw["cooldown"], f"{where}.cooldown") if raw.get("cooldown") else 0
    return PipelineAutomation(
        name=name,
        triggers=tuple(_trigger(t, f"{where}.triggers[{i}]") for i, t in enumerate(triggers)),
        params={str(k): v for k, v in params.items()},
        inputs={str(k): v for k, v in inputs.items()},
        executor=str(raw.get("executor") or "local"),
        scheduler=None if raw.get("scheduler") is None else str(raw["scheduler"]),
        cooldown_ms=cooldown,
        validate=_validate(raw["validate"], f"{where}.validate", root)
        if raw.get("validate") else None,
        promotion=parse_policy(raw["promotion"], f"{where}.promotion", root)
        if raw.get("promotion") else None,
    )


def _trigger(raw: Any, where: str) -> Trigger:
    kinds = ("schedule", "dataset", "alert")
    named = [k for k in kinds if isinstance(raw, dict) and k in raw]
    if len(named) != 1:
        raise InvalidInputError(f"{where}: name exactly one of {', '.join(kinds)}, e.g. "
                                "{schedule: '0 3 * * *'} or {dataset: train}")
    kind = named[0]
    if kind == "schedule":
        _mapping(raw, where, {"schedule", "grace"})
        trigger = ScheduleTrigger(str(raw["schedule"]).strip(),
                                  _duration(raw.get("grace", "1h"), f"{where}.grace"))
        try:
            trigger.cron_trigger()
        except ValueError as exc:
            raise InvalidInputError(f"{where}: cron {trigger.cron!r}: {exc} (five fields: "
                                    "minute hour day-of-month month day-of-week)") from None
        return trigger
    if kind == "dataset":
        _mapping(raw, where, {"dataset"})
        return DatasetTrigger(_name(str(raw["dataset"]), where, "dataset name"))
    spec = raw["alert"]
    _mapping(raw, where, {"alert"})
    if isinstance(spec, str):
        spec = {"model": spec}
    _mapping(spec, f"{where}.alert", {"model", "rules"})
    if "model" not in spec:
        raise InvalidInputError(f"{where}.alert: which model? e.g. {{model: churn}}")
    rules = spec.get("rules")
    if rules is not None and not (isinstance(rules, list) and rules):
        raise InvalidInputError(f"{where}.alert.rules: a non-empty list of rule names "
                                "(see .mloop/monitoring.yaml), or leave it out for every rule")
    return AlertTrigger(_name(str(spec["model"]), f"{where}.alert", "model name"),
                        None if rules is None else tuple(str(r) for r in rules))


def _validate(raw: Any, where: str, root: Path | None) -> ValidateRule:
    _mapping(raw, where, {"dataset", "schema"})
    if "dataset" not in raw or "schema" not in raw:
        raise InvalidInputError(f"{where}: needs dataset and schema, e.g. "
                                "{dataset: train, schema: schemas/train.yaml}")
    dataset = str(raw["dataset"])
    _name(dataset.split("@", 1)[0], f"{where}.dataset", "dataset name")
    return ValidateRule(dataset, _path(str(raw["schema"]), root))


_POLICY_KEYS = {"model", "data", "target", "suite", "compare", "alias"}


def parse_policy(raw: Any, where: str = "promotion", root: Path | None = None
                 ) -> PromotionPolicy:
    """A promotion policy (the ``promotion:`` mapping of a pipeline)."""
    _mapping(raw, where, _POLICY_KEYS)
    missing = [k for k in ("model", "data", "target") if not raw.get(k)]
    if missing:
        raise InvalidInputError(f"{where}: needs {', '.join(missing)} (the registered model, "
                                "the evaluation data and its target column)")
    compare = raw.get("compare") or {}
    _mapping(compare, f"{where}.compare", {"alias", "metrics"})
    metrics = compare.get("metrics") or {}
    _mapping(metrics, f"{where}.compare.metrics", None)
    data = str(raw["data"])
    return PromotionPolicy(
        model=_name(str(raw["model"]), f"{where}.model", "model name"),
        data=_path(data, root) if Path(data).suffix.lower() in (".csv", ".parquet", ".pq")
        else data,
        target=str(raw["target"]),
        suite=None if raw.get("suite") is None else _path(str(raw["suite"]), root),
        compare_alias=_alias(compare.get("alias", "champion"), f"{where}.compare.alias"),
        metrics=tuple(_metric_rule(str(m), r, f"{where}.compare.metrics.{m}")
                      for m, r in metrics.items()),
        alias=_alias(raw.get("alias", "challenger"), f"{where}.alias"),
    )


def _metric_rule(metric: str, raw: Any, where: str) -> MetricRule:
    from mloop.evaluation.metrics import METRICS

    known = METRICS.get(metric)
    if known is None:
        raise InvalidInputError(f"{where}: unknown metric; known: {', '.join(sorted(METRICS))}")
    raw = {} if raw is None else raw
    _mapping(raw, where, {"min_change", "max_change"})
    if not raw:
        raw = {"min_change" if known.greater_is_better else "max_change": 0.0}
    if "min_change" in raw and not known.greater_is_better:
        raise InvalidInputError(f"{where}: {metric} is an error (lower is better); bound "
                                "how much it may grow with max_change, e.g. {max_change: 0.0}")
    if "max_change" in raw and known.greater_is_better:
        raise InvalidInputError(f"{where}: {metric} is a score (higher is better); bound how "
                                "much it may fall with min_change, e.g. {min_change: -0.01}")
    try:
        return MetricRule(metric, _float(raw.get("min_change")), _float(raw.get("max_change")))
    except (TypeError, ValueError):
        raise InvalidInputError(f"{where}: min_change / max_change must be numbers") from None


def crontab_weekdays(expr: str) -> str:
    """``expr`` with its day-of-week numbers written as names (``1-5`` → ``mon,…,fri``).

    APScheduler 3 counts weekdays from Monday = 0 (its docs call this a historical
    mistake, fixed in 4.x) where crontab counts from Sunday = 0; names mean the same day
    in both, so numbers are translated before ``CronTrigger.from_crontab`` sees them.
    """
    fields = expr.split()
    if len(fields) != 5 or not re.search(r"\d", fields[4]):
        return expr
    days: list[str] = []
    for part in fields[4].split(","):
        match = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", part)
        if match is None:  # names (mon-fri) mean the same in both: keep the part
            days.append(part)
            continue
        first, last, step = match.groups()
        if first == "*":
            low, high = 0, 6
        else:
            low = int(first)
            high = int(last) if last is not None else (6 if step else low)
        if high > 7 or low > high:
            raise ValueError(f"day of week {part!r}: use 0-7 (0 and 7 are Sunday) or names")
        days.extend(_WEEKDAYS[d % 7] for d in range(low, high + 1, int(step or 1)))
    fields[4] = ",".join(dict.fromkeys(days))
    return " ".join(fields)


# -- small checks -----------------------------------------------------------------------


def _mapping(raw: Any, where: str, known: set[str] | None) -> None:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{where}: expected a mapping, not {type(raw).__name__}")
    if known is not None:
        unknown = set(map(str, raw)) - known
        if unknown:
            raise InvalidInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                                    f"known: {', '.join(sorted(known))}")


def _name(value: str, where: str, what: str) -> str:
    try:
        return check_name(value, what)
    except InvalidURIError as exc:
        raise InvalidInputError(f"{where}: {exc.message}") from None


def _alias(value: Any, where: str) -> str:
    text = str(value)
    if not text.isidentifier():
        raise InvalidInputError(f"{where}: alias {text!r} must be an identifier, e.g. "
                                "champion or challenger")
    return text


def _duration(value: Any, where: str) -> int:
    from mloop.core.clock import parse_duration

    try:
        return parse_duration(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc.message}") from None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _path(text: str, root: Path | None) -> str:
    path = Path(text)
    return str(root / path) if root is not None and not path.is_absolute() else text
