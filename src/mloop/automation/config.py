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
          deploy:                      # optional: roll it out instead of moving the alias
            deployment: churn-live     #   at once; the alias moves when the canary promotes
            strategy: canary           #   canary | bluegreen | shadow | replace
            steps: [5, 25, 50, 100]
            interval: 10m
            analysis: analysis.yaml    #   default: the default analysis

Paths (schema, suite, data files) are relative to the project root. Cron day-of-week
numbers mean what they mean in crontab (0 and 7 are Sunday). The file is checked against
:class:`AutomationFile` (every key is listed in ``docs/configuration.md``); params are
checked against the pipeline's steps when it runs (:func:`check_params`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from mloop.core.schema import Duration, Name, Schema, config_error, did_you_mean, validate
from mloop.core.uris import check_name
from mloop.errors import InvalidURIError

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
    deploy: DeployRule | None = None


@dataclass(frozen=True)
class DeployRule:
    """A promoted version's rollout: to ``deployment`` by ``strategy``."""

    deployment: str
    strategy: str = "canary"
    steps: tuple[float, ...] | None = None
    interval_ms: int | None = None
    analysis: str | None = None  # a YAML file, absolute


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


# -- the file's schema ---------------------------------------------------------------------


def _checked_name(what: str) -> Any:
    def check(value: str) -> str:
        try:
            return check_name(value, what)
        except InvalidURIError as exc:
            raise ValueError(exc.message) from None

    return AfterValidator(check)


def _identifier(value: str) -> str:
    if not value.isidentifier():
        raise ValueError(f"alias {value!r} must be an identifier, e.g. champion or challenger")
    return value


def _alert_shorthand(value: Any) -> Any:
    return {"model": value} if isinstance(value, str) else value


ModelName = Annotated[Name, _checked_name("model name")]
DatasetName = Annotated[Name, _checked_name("dataset name")]
Alias = Annotated[str, AfterValidator(_identifier)]


class AlertSpec(Schema):
    model: ModelName = Field(..., description="the model whose open alerts fire the trigger")
    rules: Annotated[list[Name], Field(min_length=1)] | None = Field(
        None, description="only alerts of these rules (see .mloop/monitoring.yaml); default: "
        "every rule")


class TriggerSpec(Schema):
    """One trigger: exactly one of ``schedule``, ``dataset`` or ``alert``."""

    schedule: str | None = Field(None, description="a cron expression, in UTC (\"0 3 * * *\")")
    grace: Duration | None = Field(None, description="with schedule: how late a missed tick "
                                   "may still start (one run, coalesced); default 1h")
    dataset: DatasetName | None = Field(None, description="a new version of this dataset "
                                        "(one no run of this trigger saw)")
    alert: Annotated[AlertSpec | None, BeforeValidator(_alert_shorthand)] = Field(
        None, description="an open monitoring alert: a model name, or {model, rules}")

    @model_validator(mode="after")
    def _one_kind(self) -> TriggerSpec:
        named = [k for k in ("schedule", "dataset", "alert") if getattr(self, k) is not None]
        if len(named) != 1:
            raise ValueError("name exactly one of schedule, dataset, alert, e.g. "
                             "{schedule: '0 3 * * *'} or {dataset: train}")
        if self.grace is not None and self.schedule is None:
            raise ValueError("grace goes with schedule only")
        if self.schedule is not None:
            try:
                ScheduleTrigger(self.schedule.strip()).cron_trigger()
            except ValueError as exc:
                raise ValueError(f"cron {self.schedule.strip()!r}: {exc} (five fields: "
                                 "minute hour day-of-month month day-of-week)") from None
        return self


class ValidateSpec(Schema):
    dataset: str = Field(..., description="a dataset name (the version the run reads) or "
                         "name@version")
    schema_file: str = Field(..., alias="schema", description="the data validation schema "
                             "(see Data validation schemas)")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        try:
            check_name(value.split("@", 1)[0], "dataset name")
        except InvalidURIError as exc:
            raise ValueError(exc.message) from None
        return value


class MetricBound(Schema):
    min_change: float | None = Field(None, description="a score (higher is better): "
                                     "new - old must be at least this")
    max_change: float | None = Field(None, description="an error (lower is better): "
                                     "new - old must be at most this")


class CompareSpec(Schema):
    alias: Alias = Field("champion", description="the version compared with (none yet: "
                         "promote)")
    metrics: dict[str, MetricBound | None] = Field(
        {}, description="per metric, how much it may change (default for a metric left "
        "empty: no worse)")


class DeploySpec(Schema):
    deployment: Annotated[Name, _checked_name("deployment name")] = Field(
        ..., description="the deployment (made by `mloop deploy create`) the promoted "
        "version is rolled out to")
    strategy: Literal["canary", "bluegreen", "shadow", "replace"] = Field(
        "canary", description="how it reaches traffic: canary (steps, analysed), bluegreen "
        "(warmed beside, switched by hand), shadow (copies only) or replace (at once)")
    steps: list[float] | None = Field(None, description="canary: percent of traffic per "
                                      "step, the last 100 (default 5, 25, 50, 100)")
    interval: Duration | None = Field(None, description="canary: the pause between steps, "
                                      "analysed at its end (default 10m)")
    analysis: str | None = Field(None, description="canary: an analysis YAML file (default:"
                                 " the default analysis; see docs/deployment.md)")


class PromotionSpec(Schema):
    model: ModelName = Field(..., description="the registered model the new version joins")
    data: str = Field(..., description="evaluation data: a dataset ref or a CSV/Parquet file")
    target: Name = Field(..., description="the target column of the evaluation data")
    suite: str | None = Field(None, description="a suite YAML file (default: the default "
                              "suite)")
    compare: CompareSpec | None = Field(None, description="the comparison with the current "
                                        "version")
    alias: Alias = Field("challenger", description="what a promoted version gets (with "
                         "deploy: when its rollout completes)")
    deploy: DeploySpec | None = Field(None, description="roll the promoted version out to "
                                      "a deployment instead of moving the alias at once")


class PipelineSpec(Schema):
    params: dict[str, Any] | None = Field(None, description="params passed to the run "
                                          "(default: the steps' defaults)")
    inputs: dict[str, Any] | None = Field(None, description="inputs of the run, e.g. "
                                          "{raw: train@latest}")
    executor: Literal["local", "dask"] = Field("local", description="where steps run")
    scheduler: str | None = Field(None, description="with executor dask: the cluster "
                                  "(tcp://…)")
    triggers: list[TriggerSpec] | None = Field(None, description="what starts a run; none: "
                                               "never started by the automation")
    cooldown: Duration | None = Field(None, description="no triggered run within this time "
                                      "of the last one")
    validate_data: ValidateSpec | None = Field(None, alias="validate", description="a data "
                                               "gate that must pass, else the round is "
                                               "'blocked'")
    promotion: PromotionSpec | None = Field(None, description="how a new model earns its "
                                            "alias")


class AutomationFile(Schema):
    """``.mloop/automation.yaml``."""

    pipelines: dict[Annotated[Name, _checked_name("pipeline name")],
                    PipelineSpec | None] | None = Field(
        None, description="per pipeline (a name `mloop pipeline run` knows), what automates it")


def load_config(root: Path) -> AutomationConfig:
    """``<project>/.mloop/automation.yaml`` read and checked (nothing automated without it)."""
    from mloop.core.yamlio import load_yaml

    path = root / ".mloop" / FILE
    raw = load_yaml(path, missing_ok=True)
    return AutomationConfig() if raw is None else parse_config(raw, root, source=path)


def parse_config(raw: Any, root: Path | None = None, *, source: str | Path = FILE
                 ) -> AutomationConfig:
    """Check a parsed ``automation.yaml``; a :class:`ConfigError` names ``source``, the key
    at fault and the closest known key."""
    spec = validate(AutomationFile, raw, source=source)
    empty = PipelineSpec.model_validate({})
    return AutomationConfig({name: _pipeline(name, body or empty, root, source)
                             for name, body in (spec.pipelines or {}).items()})


def parse_pipeline(name: str, raw: Any, root: Path | None = None) -> PipelineAutomation:
    """One entry of ``pipelines:``."""
    return parse_config({"pipelines": {name: raw}}, root).pipelines[name]


def parse_policy(raw: Any, where: str = "promotion", root: Path | None = None
                 ) -> PromotionPolicy:
    """A promotion policy (the ``promotion:`` mapping of a pipeline)."""
    spec = validate(PromotionSpec, raw, source=where)
    return _policy(spec, root, where, ())


def check_params(auto: PipelineAutomation, pipeline: Any, *,
                 source: str | Path = f".mloop/{FILE}") -> None:
    """``auto.params`` checked against ``pipeline``'s steps (known names, their types)
    before a run is claimed: ``C: abc`` for a float param is a :class:`ConfigError` naming
    ``pipelines.<name>.params.C``, not a failed run."""
    from mloop.errors import InvalidInputError
    from mloop.pipelines.engine import step_params

    for key, value in auto.params.items():
        try:
            step_params(pipeline, {key: value})
        except InvalidInputError as exc:
            raise config_error(source, ("pipelines", auto.name, "params", key),
                               exc.message) from None


def _pipeline(name: str, spec: PipelineSpec, root: Path | None,
              source: str | Path) -> PipelineAutomation:
    at = ("pipelines", name)
    return PipelineAutomation(
        name=name,
        triggers=tuple(_trigger(t) for t in spec.triggers or ()),
        params={str(k): v for k, v in (spec.params or {}).items()},
        inputs={str(k): v for k, v in (spec.inputs or {}).items()},
        executor=spec.executor, scheduler=spec.scheduler, cooldown_ms=spec.cooldown or 0,
        validate=None if spec.validate_data is None else ValidateRule(
            spec.validate_data.dataset, _path(spec.validate_data.schema_file, root)),
        promotion=None if spec.promotion is None else _policy(
            spec.promotion, root, source, (*at, "promotion")),
    )


def _trigger(spec: TriggerSpec) -> Trigger:
    if spec.schedule is not None:
        return ScheduleTrigger(spec.schedule.strip(), DEFAULT_GRACE_MS if spec.grace is None
                               else spec.grace)
    if spec.dataset is not None:
        return DatasetTrigger(spec.dataset)
    assert spec.alert is not None
    rules = spec.alert.rules
    return AlertTrigger(spec.alert.model, None if rules is None else tuple(rules))


def _policy(spec: PromotionSpec, root: Path | None, source: str | Path,
            at: tuple[str | int, ...]) -> PromotionPolicy:
    compare = spec.compare or CompareSpec.model_validate({})
    data = spec.data
    return PromotionPolicy(
        model=spec.model,
        data=_path(data, root) if Path(data).suffix.lower() in (".csv", ".parquet", ".pq")
        else data,
        target=spec.target,
        suite=None if spec.suite is None else _path(spec.suite, root),
        compare_alias=compare.alias,
        metrics=tuple(_metric_rule(m, b, source, (*at, "compare", "metrics", m))
                      for m, b in compare.metrics.items()),
        alias=spec.alias,
        deploy=None if spec.deploy is None else DeployRule(
            spec.deploy.deployment, spec.deploy.strategy,
            None if spec.deploy.steps is None else tuple(spec.deploy.steps),
            spec.deploy.interval,
            None if spec.deploy.analysis is None else _path(spec.deploy.analysis, root)),
    )


def _metric_rule(metric: str, bound: MetricBound | None, source: str | Path,
                 at: tuple[str | int, ...]) -> MetricRule:
    from mloop.evaluation.metrics import METRICS

    known = METRICS.get(metric)
    if known is None:
        raise config_error(source, at, f"unknown metric{did_you_mean(metric, list(METRICS))}")
    bound = bound or MetricBound.model_validate({})
    low, high = bound.min_change, bound.max_change
    if low is None and high is None:
        low, high = (0.0, None) if known.greater_is_better else (None, 0.0)
    if low is not None and not known.greater_is_better:
        raise config_error(source, at, f"{metric} is an error (lower is better); bound how "
                           "much it may grow with max_change, e.g. {max_change: 0.0}")
    if high is not None and known.greater_is_better:
        raise config_error(source, at, f"{metric} is a score (higher is better); bound how "
                           "much it may fall with min_change, e.g. {min_change: -0.01}")
    return MetricRule(metric, low, high)


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


def _path(text: str, root: Path | None) -> str:
    path = Path(text)
    return str(root / path) if root is not None and not path.is_absolute() else text
