"""The promotion policy: should a freshly trained model take the place of the last one?

1. The candidate (``runs:/<run>/<path>``, the newest model a pipeline run logged) is
   evaluated with the suite on the policy's data, by its run URI: nothing is registered
   before the gate decides.
2. Each listed metric is compared with the version the compare alias names (the
   champion) on the same data. On a dataset version (``test@latest`` resolves to one, and
   a version never changes) that is the champion's latest recorded evaluation on it, or,
   when it has none, an evaluation made now (and recorded, so the next comparison reuses
   it). On a CSV/Parquet file, whose content may have changed since any earlier
   evaluation (the record names only its path), the champion is always evaluated now;
   the file's content digest is taken before the candidate's evaluation and after the
   champion's, and a file that changed in between fails the decision.
   ``new - old >= min_change`` for scores, ``new - old <= max_change`` for errors.
3. Promoted when the suite passed and every comparison holds; with no champion yet, the
   suite alone decides (the first model). Only then is the candidate registered, as the
   next version of the policy's model, with the policy's alias; its report is recorded
   with that version. A rejected candidate is not registered: its report is recorded
   with its ``runs:/`` URI and the decision names it (``mloop.register_model`` keeps it
   by hand). An evaluation that cannot run is a ``failed`` decision, nothing registered.

With ``deploy:``, the promoted version is not aliased at once: it is rolled out to the
named deployment by the given strategy (a canary by default), started by the system (so
governance may hold it as ``awaiting_approval``), and the alias moves when the rollout
promotes it (:mod:`mloop.deploy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.automation.config import MetricRule, PromotionPolicy
from mloop.core.humanize import plural
from mloop.errors import MloopError, NotFoundError
from mloop.repositories.automation import DecisionOutcome

if TYPE_CHECKING:
    from mloop.evaluation.report import EvaluationReport
    from mloop.project import Project
    from mloop.registry.models import ModelVersion


@dataclass(frozen=True)
class Comparison:
    """One metric of the candidate against the champion's."""

    metric: str
    new: float | None
    old: float | None
    rule: str  # "min_change 0" or "max_change 0.01"
    passed: bool
    reason: str

    @property
    def change(self) -> float | None:
        return None if self.new is None or self.old is None else self.new - self.old


@dataclass
class PromotionResult:
    """What the policy decided about one candidate, and why."""

    decision: DecisionOutcome  # promoted | rejected | failed (the evaluation could not run)
    model_uri: str  # the candidate: runs:/<run>/<path>
    registered: str | None  # the version it became: models:/<name>/<version>
    alias: str | None  # the alias it got (None unless promoted)
    champion: str | None  # the version it was compared with
    evaluation_id: str | None
    reasons: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return self.decision == DecisionOutcome.PROMOTED

    def to_dict(self) -> dict[str, Any]:
        return {"decision": str(self.decision), "model_uri": self.model_uri,
                "registered": self.registered, "alias": self.alias, "champion": self.champion,
                "evaluation_id": self.evaluation_id, "reasons": list(self.reasons),
                "comparisons": [{"metric": c.metric, "new": c.new, "old": c.old,
                                 "change": c.change, "rule": c.rule, "passed": c.passed}
                                for c in self.comparisons]}


def promote(project: Project, candidate: str, policy: PromotionPolicy, *,
            source: str | None = None) -> PromotionResult:
    """Evaluate ``candidate``, compare it with the champion, and register and alias it only
    when it earned it. ``source`` (a ``pipelines:/…`` URI) gets a ``produced`` lineage
    edge to the version."""
    from mloop.evaluation.core import record_report

    result = PromotionResult(DecisionOutcome.REJECTED, candidate, None, None, None, None)
    champion = _champion(project, policy)
    digest = _file_digest(policy.data)  # None for a dataset ref
    try:
        report = _evaluate(project, candidate, policy, record=False)
    except MloopError as exc:
        result.decision = DecisionOutcome.FAILED
        result.reasons.append(f"the evaluation of {candidate} on {policy.data} failed: "
                              f"{exc.message}; nothing registered")
        return result
    result.reasons.append(_suite_reason(report))
    if champion is None:
        result.reasons.append(f"no {policy.model}@{policy.compare_alias} yet: the first "
                              "model is promoted when its suite passes")
    else:
        result.champion = champion.uri
        old, how = _champion_metrics(project, champion, policy, report, digest)
        if digest is not None and _file_digest(policy.data) != digest:
            result.decision = DecisionOutcome.FAILED
            result.reasons.insert(0, f"{policy.data} changed while {candidate} and "
                                     f"{champion.uri} were evaluated on it: they were not "
                                     "measured on the same rows, nothing is compared")
            result.reasons.append(f"{candidate} is not registered")
            record_report(project, report)
            result.evaluation_id = report.id
            return result
        if old is None:
            result.reasons.append(how)
        else:
            result.comparisons = [_compare(rule, report.metrics, old, champion.uri)
                                  for rule in policy.metrics]
            result.reasons.append(how if policy.metrics else
                                  f"{how}; no metrics listed to compare")
            result.reasons.extend(c.reason for c in result.comparisons)
    if report.passed and all(c.passed for c in result.comparisons):
        version = _register(project, candidate, policy, source)
        report.model = version.uri  # recorded with the version it became
        result.decision = DecisionOutcome.PROMOTED
        result.registered = version.uri
        if policy.deploy is None:
            result.alias = policy.alias
            result.reasons.append(f"{version.uri} is now {policy.model}@{policy.alias}")
        else:
            result.reasons.append(_roll_out(project, version.uri, policy))
    else:
        result.reasons.append(f"{candidate} is not registered: the gate decided against it "
                              "(register it by hand to keep it as a version)")
    record_report(project, report)
    result.evaluation_id = report.id
    result.reasons.insert(0, _headline(result, report, policy))
    return result


def _register(project: Project, candidate: str, policy: PromotionPolicy,
              source: str | None) -> ModelVersion:
    """The promoted candidate as the next version of the policy's model, aliased."""
    from mloop import lineage
    from mloop.registry.models import register_model, set_alias

    described = f"trained by {source}" if source else "promoted by hand"
    version = register_model(project, candidate, policy.model, description=described)
    if source is not None:
        lineage.add_edge(project, source, version.uri, "produced")
    if policy.deploy is None:  # with a rollout, the alias moves when it completes
        set_alias(project, policy.model, policy.alias, version.version)
    return version


def _roll_out(project: Project, version: str, policy: PromotionPolicy) -> str:
    """Start ``version``'s rollout by the policy's ``deploy:``; the reason to record (a
    rollout that cannot start leaves the version registered, out of traffic)."""
    from mloop.deploy import strategies

    rule = policy.deploy
    assert rule is not None
    try:
        if rule.strategy == "canary":
            spec = None
            if rule.analysis:
                from mloop.deploy.analysis import load_spec

                spec = load_spec(rule.analysis)
            revision = strategies.canary(
                project, rule.deployment, version, steps=rule.steps,
                interval=None if rule.interval_ms is None else rule.interval_ms / 1000,
                analysis=spec, alias=policy.alias, initiated_by=strategies.SYSTEM)
        elif rule.strategy == "bluegreen":
            revision = strategies.bluegreen(project, rule.deployment, version,
                                            initiated_by=strategies.SYSTEM)
        elif rule.strategy == "shadow":
            revision = strategies.shadow(project, rule.deployment, version,
                                         initiated_by=strategies.SYSTEM)
        else:
            revision = strategies.replace_model(project, rule.deployment, version,
                                                initiated_by=strategies.SYSTEM)
            set_alias_to(project, policy, version)
    except MloopError as exc:
        return (f"{version} is registered but its {rule.strategy} rollout to "
                f"deployments:/{rule.deployment} could not start: {exc.message}")
    return (f"{version} rolls out to {revision.uri} by {rule.strategy} ({revision.status}); "
            f"it becomes {policy.model}@{policy.alias} when the rollout completes"
            if rule.strategy != "replace" else
            f"{version} takes all of {revision.uri}'s traffic and is now "
            f"{policy.model}@{policy.alias}")


def set_alias_to(project: Project, policy: PromotionPolicy, version: str) -> None:
    from mloop.registry.models import set_alias

    set_alias(project, policy.model, policy.alias, int(version.rsplit("/", 1)[1]))


def _headline(result: PromotionResult, report: EvaluationReport,
              policy: PromotionPolicy) -> str:
    """The one-line why, first among the reasons (``mloop automate history`` shows it)."""
    changes = ", ".join(f"{c.metric} {c.change:+.4f}" for c in result.comparisons
                        if c.change is not None)
    if not report.passed:
        failed = [c.name for c in report.checks if c.blocking]
        return f"rejected: the {report.suite} suite failed ({', '.join(failed)})"
    if not result.promoted:
        short = [c for c in result.comparisons if not c.passed]
        return "rejected: " + "; ".join(
            f"{c.metric} {c.change:+.4f} vs {result.champion} ({c.rule})"
            if c.change is not None else f"{c.metric} not measured" for c in short)
    if result.champion is None:
        return (f"promoted to {policy.alias}: the first {policy.model} model "
                f"(no {policy.compare_alias} yet) and its suite passed")
    return (f"promoted to {policy.alias}: {changes or 'the suite passed'} vs "
            f"{result.champion}")


def _evaluate(project: Project, model: str, policy: PromotionPolicy, *,
              record: bool = True) -> EvaluationReport:
    from mloop.evaluation.core import evaluate_request
    from mloop.evaluation.request import EvaluationRequest

    return evaluate_request(project, EvaluationRequest.of(
        model, policy.data, policy.target, suite=policy.suite, record=record))


def _champion(project: Project, policy: PromotionPolicy) -> ModelVersion | None:
    from mloop.registry.models import get_version

    try:
        return get_version(project, f"{policy.model}@{policy.compare_alias}")
    except NotFoundError:
        return None


def _suite_reason(report: EvaluationReport) -> str:
    counts = report.counts
    if report.passed:
        return (f"the {report.suite} suite passed on {report.data} ({counts['pass']} passed, "
                f"{plural(counts['warn'], 'warning')})")
    failed = [c.name for c in report.checks if c.blocking]
    return f"the {report.suite} suite failed on {report.data}: {', '.join(failed)}"


def _champion_metrics(project: Project, champion: ModelVersion, policy: PromotionPolicy,
                      report: EvaluationReport, digest: str | None = None
                      ) -> tuple[dict[str, Any] | None, str]:
    """(the champion's metrics on the candidate's data, where they come from).

    Only a dataset version (``data:/name@v``, immutable) may reuse a recorded evaluation;
    on a file the champion is evaluated now (``digest``: the file's content, for the
    reasons).
    """
    if _is_dataset_version(report.data):
        recorded = _recorded_on(project, champion.uri, report.data)
        if recorded is not None:
            return recorded, (f"compared with {champion.uri} ({policy.compare_alias}) as "
                              f"recorded on {report.data}")
    try:
        fresh = _evaluate(project, champion.uri, policy)
    except MloopError as exc:
        return None, (f"{champion.uri} ({policy.compare_alias}) cannot be evaluated on "
                      f"{report.data} ({exc.message}); the suite alone decides")
    content = f" (content blake3:{digest[:12]})" if digest is not None else ""
    return fresh.metrics, (f"compared with {champion.uri} ({policy.compare_alias}), "
                           f"evaluated now on {report.data}{content}")


def _is_dataset_version(data: str) -> bool:
    """Whether ``data`` (an evaluation's recorded data) names a dataset version, which
    never changes, rather than a file, whose content may have changed since."""
    return data.startswith("data:/")


def _file_digest(data: str) -> str | None:
    """The content digest of ``data`` when it is a CSV/Parquet file (as evaluation reads
    it), else None (a dataset ref)."""
    from pathlib import Path

    from mloop.core.hashing import hash_file

    path = Path(data)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq") or not path.is_file():
        return None
    return hash_file(path)


def _recorded_on(project: Project, model_uri: str, data: str) -> dict[str, Any] | None:
    """The metrics of ``model_uri``'s newest recorded evaluation on the dataset version
    ``data`` (never used for files: their path does not say what they held)."""
    from mloop.evaluation.core import load_report
    from mloop.repositories import backend

    digest = backend(project).automation.recorded_report(model_uri, data)
    if digest is None:
        return None
    metrics: dict[str, Any] = load_report(project, digest).get("metrics") or {}
    return metrics


def _value(metrics: dict[str, Any], name: str) -> float | None:
    entry = metrics.get(name)
    value = entry.get("value") if isinstance(entry, dict) else None
    if isinstance(value, str):  # reports store infinities as text
        value = float(value)
    return None if value is None or math.isnan(float(value)) else float(value)


def _compare(rule: MetricRule, new_metrics: dict[str, Any], old_metrics: dict[str, Any],
             champion: str) -> Comparison:
    new, old = _value(new_metrics, rule.metric), _value(old_metrics, rule.metric)
    bound = (f"min_change {rule.min_change:g}" if rule.min_change is not None
             else f"max_change {rule.max_change:g}")
    if new is None or old is None:
        which = "the new model" if new is None else champion
        return Comparison(rule.metric, new, old, bound, False,
                          f"{rule.metric}: not measured for {which}, so it cannot be compared "
                          "(a metric of another task?)")
    change = new - old
    if rule.min_change is not None:
        passed = change >= rule.min_change
        need = f"needs >= {rule.min_change:+.4g}"
    else:
        assert rule.max_change is not None
        passed = change <= rule.max_change
        need = f"needs <= {rule.max_change:+.4g}"
    verdict = "ok" if passed else "not enough"
    return Comparison(rule.metric, new, old, bound, passed,
                      f"{rule.metric} {new:.4f} vs {old:.4f} for {champion}: change "
                      f"{change:+.4f}, {need}: {verdict}")
