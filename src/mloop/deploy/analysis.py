"""A canary's analysis: which measures compare the canary with the stable arm, and how.

.. code-block:: yaml

    failure_limit: 1          # failed measures (over the step) that abort the canary
    interval: 5m              # optional: overrides the canary's --interval
    alpha: 0.05               # level of the statistical tests
    metrics:
      - name: errors
        kind: error_rate      # canary − stable error rate ≤ threshold (absolute)
        threshold: 0.01
        test: two_proportion  # one-sided test of the margin (or: threshold)
        min_samples: 100      # requests per arm before it is judged
      - kind: latency_p99     # canary p99 ≤ threshold × stable p99
        threshold: 1.5
      - kind: drift           # distance between the arms' predictions ≤ threshold
        test: psi             # any drift test of mloop.monitoring.stattests
        threshold: 0.2
      - kind: live_metric     # from feedback: canary no more than threshold below stable
        metric: accuracy      # accuracy, mae or rmse (auto: by the predictions)
        threshold: 0.02       # points for accuracy; relative (0.02 = 2% worse) for errors
        test: sequential      # always-valid mSPRT (or: threshold, the point estimates)
        min_samples: 200      # labels per arm
      - kind: fairness        # canary's disparity − stable's ≤ threshold
        sensitive: gender     # an input column, from the prediction log (in.gender)
        metric: demographic_parity_difference

Without a spec the **default analysis** applies (:data:`DEFAULT_SPEC`): error rate at most
1 point above stable's (one-sided two-proportion test), p99 latency ≤ 1.5 × stable's,
prediction shift PSI ≤ 0.2 and, once each arm has 200 labels, the live metric at most 2
points below stable's (mSPRT). ``live_metric`` and ``fairness`` are not *required* unless
``required: true``: waiting for labels does not hold a step.

A measure is ``pass``, ``fail`` or ``inconclusive`` (fewer than ``min_samples``). The
verdict: ``fail`` once the failures (this analysis' plus those before it in the step) reach
``failure_limit``; else ``inconclusive`` when a required measure lacks samples (or a
failure stays below the limit); else ``pass``.

An **early** analysis (between scheduled ones) may only fail, and only on the measures
whose test stays valid when looked at again and again: the error rate by the always-valid
interval of the mSPRT (:mod:`mloop.deploy.stats`) and a sequential live metric. A threshold
read on every tick would raise false alarms.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from mloop.core.jsonsafe import json_float
from mloop.core.schema import Duration, Name, Schema, did_you_mean, validate
from mloop.deploy.measure import ArmMeasure
from mloop.errors import InvalidInputError

__all__ = ["DEFAULT_SPEC", "Analysis", "AnalysisFile", "MetricResult", "MetricSpec",
           "Verdict", "analyse", "default_spec", "jsonable", "load_spec",
           "sensitive_columns"]

KINDS = ("error_rate", "latency_p99", "drift", "live_metric", "fairness")
TESTS = {"error_rate": ("two_proportion", "threshold"), "latency_p99": ("threshold",),
         "live_metric": ("sequential", "threshold"), "fairness": ("threshold",)}
DEFAULT_THRESHOLD = {"error_rate": 0.01, "latency_p99": 1.5, "drift": 0.2,
                     "live_metric": 0.02, "fairness": 0.1}
DEFAULT_MIN_SAMPLES = {"error_rate": 100, "latency_p99": 100, "drift": 100,
                       "live_metric": 200, "fairness": 200}
LIVE_METRICS = ("auto", "accuracy", "mae", "rmse")
# The mSPRT's mixing sd for a live accuracy: a canary analysis must catch drops of 10-20
# points within a few hundred labels, and τ near the effect sought finds it fastest
# (Johari et al. 2017, §4); 10 points narrows the interval at 200 labels a side by ~10%.
LIVE_TAU = 0.1
FAIRNESS = ("demographic_parity_difference", "equal_opportunity_difference",
            "equalized_odds_difference")


class MetricSpec(Schema):
    """One measure of ``metrics:``."""

    name: Name | None = Field(None, description="how the measure is reported (default: its "
                              "kind); unique")
    kind: Literal["error_rate", "latency_p99", "drift", "live_metric", "fairness"] = Field(
        ..., description="what is compared between canary and stable")
    threshold: Annotated[float, Field(ge=0)] | None = Field(
        None, description="error_rate: points above stable (0.01); latency_p99: times "
        "stable's (1.5); drift: the test's distance (0.2) or alpha for a p-value test; "
        "live_metric: below stable, absolute for accuracy, relative for errors (0.02); "
        "fairness: disparity above stable's (0.1)")
    test: str | None = Field(None, description="error_rate: two_proportion or threshold; "
                             "drift: a drift test (psi); live_metric: sequential or threshold")
    min_samples: Annotated[int, Field(ge=1)] | None = Field(
        None, description="per arm, before it is judged: requests (100), or labels for "
        "live_metric and fairness (200)")
    metric: str | None = Field(None, description="live_metric: auto, accuracy, mae or rmse; "
                               "fairness: demographic_parity_difference, "
                               "equal_opportunity_difference or equalized_odds_difference")
    sensitive: Name | None = Field(None, description="fairness: the input column whose "
                                   "groups are compared")
    required: bool | None = Field(None, description="whether too few samples holds the step "
                                  "(default: true, false for live_metric and fairness)")

    @model_validator(mode="after")
    def _consistent(self) -> MetricSpec:
        from mloop.monitoring import stattests

        allowed = (stattests.known_tests() if self.kind == "drift" else TESTS[self.kind])
        if self.test is not None and self.test not in allowed:
            raise ValueError(f"{self.kind} takes test {' or '.join(allowed)}, not "
                             f"{self.test!r}{did_you_mean(self.test, allowed, known=False)}")
        if self.kind == "fairness" and not self.sensitive:
            raise ValueError("a fairness measure needs `sensitive: COLUMN` (the input "
                             "column whose groups are compared)")
        if self.sensitive is not None and self.kind != "fairness":
            raise ValueError("only a fairness measure takes `sensitive`")
        known = {"live_metric": LIVE_METRICS, "fairness": FAIRNESS}.get(self.kind, ())
        if self.metric is not None and self.metric not in known:
            if not known:
                raise ValueError(f"{self.kind} takes no `metric`")
            raise ValueError(f"unknown metric {self.metric!r} for {self.kind}"
                             f"{did_you_mean(self.metric, known)}")
        return self


class AnalysisFile(Schema):
    """A canary analysis spec (``mloop deploy canary --analysis FILE``)."""

    metrics: Annotated[list[MetricSpec], Field(min_length=1)] = Field(
        ..., description="the measures comparing canary with stable")
    failure_limit: Annotated[int, Field(ge=1)] = Field(1, description="failed measures in a "
                                                       "step that abort the canary")
    interval: Duration | None = Field(None, description="time between analyses (default: "
                                      "the canary's --interval)")
    alpha: Annotated[float, Field(gt=0, lt=1)] = Field(0.05, description="level of the "
                                                       "statistical tests")

    @model_validator(mode="after")
    def _unique(self) -> AnalysisFile:
        names = [m.name or m.kind for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("two measures share a name; give each a distinct `name`")
        return self


def _normal(spec: AnalysisFile) -> dict[str, Any]:
    metrics = []
    for m in spec.metrics:
        metric = m.metric
        if metric is None:
            metric = {"live_metric": "auto", "fairness": FAIRNESS[0]}.get(m.kind)
        threshold = DEFAULT_THRESHOLD[m.kind] if m.threshold is None else m.threshold
        if m.threshold is None and m.kind == "drift" and m.test is not None:
            from mloop.monitoring import stattests

            if stattests.get_test(m.test).score == "p_value":  # its threshold is an alpha
                threshold = spec.alpha
        metrics.append({
            "name": m.name or m.kind, "kind": m.kind, "threshold": threshold,
            "test": m.test or {"drift": "psi"}.get(m.kind, TESTS.get(m.kind, ("",))[0]),
            "min_samples": m.min_samples or DEFAULT_MIN_SAMPLES[m.kind],
            "metric": metric, "sensitive": m.sensitive,
            "required": (m.kind not in ("live_metric", "fairness")) if m.required is None
            else m.required})
    return {"metrics": metrics, "failure_limit": spec.failure_limit,
            "interval_ms": spec.interval, "alpha": spec.alpha}


def load_spec(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """An analysis spec from a YAML file's path (or its parsed content), validated and
    normalised (every default filled in, JSON-able); ConfigError naming the key at fault."""
    from mloop.core.yamlio import load_yaml

    if isinstance(source, dict):
        # a normalised spec (as stored in a policy) reads back as itself
        raw = {k: v for k, v in source.items() if k != "interval_ms"}
        if source.get("interval_ms") is not None:
            raw["interval"] = int(source["interval_ms"]) / 1000  # seconds
        where: str | Path = "analysis"
    else:
        raw, where = load_yaml(source), source
    return _normal(validate(AnalysisFile, raw, source=where))


DEFAULT_SPEC: dict[str, Any] = {"metrics": [
    {"name": "error_rate", "kind": "error_rate"},
    {"name": "latency_p99", "kind": "latency_p99"},
    {"name": "prediction_drift", "kind": "drift"},
    {"name": "live_metric", "kind": "live_metric"}]}


def default_spec() -> dict[str, Any]:
    """The default analysis, normalised (see the module docstring)."""
    return load_spec(DEFAULT_SPEC)


def sensitive_columns(spec: dict[str, Any]) -> tuple[str, ...]:
    """The input columns the spec's fairness measures need."""
    return tuple(dict.fromkeys(m["sensitive"] for m in spec["metrics"]
                               if m["kind"] == "fairness"))


# ── results ───────────────────────────────────────────────────────────────────────────

class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class MetricResult:
    """One measure's outcome: the value compared with the threshold, on how many samples."""

    name: str
    kind: str
    status: Verdict
    value: float | None
    threshold: float
    samples: dict[str, int]
    required: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "status": str(self.status),
                "value": json_float(self.value), "threshold": self.threshold,
                "samples": self.samples, "required": self.required, "reason": self.reason,
                "details": jsonable(self.details)}


@dataclass(frozen=True)
class Analysis:
    """Every measure's result and the verdict (``early``: between scheduled analyses)."""

    verdict: Verdict
    results: list[MetricResult]
    failures: int
    failure_limit: int
    early: bool = False

    @property
    def failed(self) -> list[MetricResult]:
        return [r for r in self.results if r.status is Verdict.FAIL]

    def summary(self) -> str:
        """One line for an event's reason."""
        if self.verdict is Verdict.FAIL:
            return "analysis failed: " + "; ".join(f"{r.name}: {r.reason}" for r in self.failed)
        waiting = [r.name for r in self.results
                   if r.status is Verdict.INCONCLUSIVE and r.required]
        if self.verdict is Verdict.INCONCLUSIVE:
            return "analysis inconclusive: " + (", ".join(waiting) + " need more samples"
                                                if waiting else "failures below the limit")
        return "analysis passed: " + ", ".join(r.name for r in self.results
                                               if r.status is Verdict.PASS)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": str(self.verdict), "failures": self.failures,
                "failure_limit": self.failure_limit, "early": self.early,
                "summary": self.summary(), "metrics": [r.to_dict() for r in self.results]}


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars made Python and NaN/infinity spelt as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return json_float(value)
    return value


# ── the analysis ──────────────────────────────────────────────────────────────────────

def analyse(spec: dict[str, Any], measures: dict[str, ArmMeasure], stable_arm: str,
            canary_arm: str, *, early: bool = False, previous_failures: int = 0) -> Analysis:
    """Compare ``canary_arm`` with ``stable_arm`` by every measure of ``spec`` (a normalised
    spec, :func:`load_spec`); ``previous_failures`` counts the step's earlier failures."""
    stable = measures.get(stable_arm) or ArmMeasure(stable_arm)
    canary = measures.get(canary_arm) or ArmMeasure(canary_arm)
    alpha = float(spec.get("alpha", 0.05))
    results = [_one(m, stable, canary, alpha, early) for m in spec["metrics"]]
    failed = sum(r.status is Verdict.FAIL for r in results)
    failures = previous_failures + failed
    limit = int(spec.get("failure_limit", 1))
    if failed and failures >= limit:
        verdict = Verdict.FAIL
    elif early or failed or any(r.status is Verdict.INCONCLUSIVE and r.required
                                for r in results):
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.PASS
    return Analysis(verdict, results, failures, limit, early)


def _one(m: dict[str, Any], stable: ArmMeasure, canary: ArmMeasure, alpha: float,
         early: bool) -> MetricResult:
    kind = m["kind"]
    sequential = (kind == "error_rate" and m["test"] == "two_proportion") or (
        kind == "live_metric" and m["test"] == "sequential")
    if early and not sequential:
        return _result(m, Verdict.INCONCLUSIVE, None, {}, "judged at the scheduled analysis")
    fn = {"error_rate": _error_rate, "latency_p99": _latency, "drift": _drift,
          "live_metric": _live_metric, "fairness": _fairness}[kind]
    result: MetricResult = fn(m, stable, canary, alpha, early)
    if early and result.status is Verdict.PASS:  # an early look may fail, never pass
        return _result(m, Verdict.INCONCLUSIVE, result.value, result.samples,
                       "no failure yet; passes only at the scheduled analysis", result.details)
    return result


def _result(m: dict[str, Any], status: Verdict, value: float | None,  # noqa: PLR0917
            samples: dict[str, int], reason: str,
            details: dict[str, Any] | None = None) -> MetricResult:
    return MetricResult(m["name"], m["kind"], status, value, float(m["threshold"]), samples,
                        bool(m["required"]), reason, details or {})


def _few(m: dict[str, Any], samples: dict[str, int], what: str) -> MetricResult | None:
    least = min(samples.values())
    if least >= m["min_samples"]:
        return None
    return _result(m, Verdict.INCONCLUSIVE, None, samples,
                   f"{least} {what} on one arm, {m['min_samples']} needed")


def _error_rate(m: dict[str, Any], s: ArmMeasure, c: ArmMeasure, alpha: float,
                early: bool) -> MetricResult:
    """Canary − stable error rate against the margin: one-sided z-test at a scheduled
    analysis, the mSPRT's always-valid interval at an early one."""
    from scipy.stats import norm

    from mloop.deploy import stats

    samples = {"stable": s.requests, "canary": c.requests}
    if (few := _few(m, samples, "requests")) is not None:
        return few
    margin = float(m["threshold"])
    ps, pc = s.failures / s.requests, c.failures / c.requests
    diff = pc - ps
    details: dict[str, Any] = {"stable": ps, "canary": pc, "difference": diff,
                               "margin": margin}
    if m["test"] == "threshold":
        bad = diff > margin
    elif early:
        seq = stats.msprt_proportions(s.failures, s.requests, c.failures, c.requests,
                                      alpha=alpha, higher_is_better=False)
        details["sequential"] = seq.to_dict()
        bad = seq.ci_low > margin  # surely more than the margin above stable, at any look
    else:
        se = math.sqrt(ps * (1 - ps) / s.requests + pc * (1 - pc) / c.requests)
        p = (float(norm.sf((diff - margin) / se)) if se > 0
             else (0.0 if diff > margin else 1.0))
        details |= {"p_value": p, "alpha": alpha, "test": "one-sided z, H0: canary − "
                    "stable ≤ margin"}
        bad = p < alpha
    reason = (f"canary {pc:.2%} vs stable {ps:.2%} errors "
              f"({'more than' if bad else 'within'} {margin:.2%} above)")
    return _result(m, Verdict.FAIL if bad else Verdict.PASS, diff, samples, reason, details)


def _latency(m: dict[str, Any], s: ArmMeasure, c: ArmMeasure, alpha: float,
             early: bool) -> MetricResult:
    samples = {"stable": s.requests, "canary": c.requests}
    if (few := _few(m, samples, "requests")) is not None:
        return few
    if s.latency_p99 is None or c.latency_p99 is None:
        return _result(m, Verdict.INCONCLUSIVE, None, samples, "no latency recorded")
    ratio = c.latency_p99 / s.latency_p99 if s.latency_p99 > 0 else (
        1.0 if c.latency_p99 == 0 else math.inf)
    bad = ratio > m["threshold"]
    return _result(m, Verdict.FAIL if bad else Verdict.PASS, ratio, samples,
                   f"canary p99 {c.latency_p99:.1f} ms is {ratio:.2f}× stable's "
                   f"{s.latency_p99:.1f} ms (at most {m['threshold']:g}×)",
                   {"stable_p99_ms": s.latency_p99, "canary_p99_ms": c.latency_p99})


def _drift(m: dict[str, Any], s: ArmMeasure, c: ArmMeasure, alpha: float,
           early: bool) -> MetricResult:
    """The monitoring module's drift test between the arms' predictions (stable is the
    reference), numeric when both are numbers, else by category."""
    from mloop.monitoring import stattests

    samples = {"stable": len(s.predictions), "canary": len(c.predictions)}
    if (few := _few(m, samples, "predictions")) is not None:
        return few
    ref, cur = _side(s.predictions, c.predictions)
    test = stattests.get_test(m["test"])
    if test.kinds == ("numeric",) and not isinstance(ref, stattests.Numeric):
        return _result(m, Verdict.INCONCLUSIVE, None, samples,
                       f"{m['test']} needs numeric predictions")
    if test.kinds != ("numeric",) and "numeric" not in test.kinds:
        ref, cur = stattests.counted(ref), stattests.counted(cur)
    res = test.fn(ref, cur)
    threshold = float(m["threshold"])
    bad = test.drifted(res, threshold)
    value = res.p_value if test.score == "p_value" else res.statistic
    return _result(m, Verdict.FAIL if bad else Verdict.PASS, value, samples,
                   f"{m['test']} {value:.3g} between the arms' predictions "
                   f"({'drifted' if bad else 'within'} {threshold:g})",
                   {"test": m["test"], "score": test.score, "notes": res.notes})


def _side(a: np.ndarray, b: np.ndarray) -> tuple[Any, Any]:
    import pandas as pd

    from mloop.monitoring import stattests

    both = pd.Series(np.concatenate([a, b]), dtype=object)
    numbers = pd.to_numeric(both, errors="coerce")
    is_bool = both.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)
    if len(both) and numbers.notna().all() and not is_bool.any():
        values = numbers.to_numpy(dtype=float)
        return (stattests.Numeric.of(values[:len(a)]), stattests.Numeric.of(values[len(a):]))
    text = both.astype(str).to_numpy()

    def cat(x: np.ndarray) -> stattests.Categorical:
        labels, counts = np.unique(x, return_counts=True)
        return stattests.Categorical(labels.astype(object), counts.astype(np.int64))

    return cat(text[:len(a)]), cat(text[len(a):])


def _live_metric(m: dict[str, Any], s: ArmMeasure, c: ArmMeasure, alpha: float,
                 early: bool) -> MetricResult:
    """The live metric from feedback: canary no more than the threshold worse than stable
    (mSPRT on correct/incorrect for accuracy, on absolute or squared errors otherwise)."""
    from mloop.deploy import stats

    samples = {"stable": s.labelled, "canary": c.labelled}
    if (few := _few(m, samples, "labels")) is not None:
        return few
    metric = live_metric_name(m["metric"], s, c)
    margin = float(m["threshold"])
    if metric == "accuracy":
        sa, sc = int(s.correct.sum()), int(c.correct.sum())
        value = sc / c.labelled - sa / s.labelled
        seq = stats.msprt_proportions(sa, s.labelled, sc, c.labelled, alpha=alpha,
                                      tau=LIVE_TAU)
        bad = (seq.ci_high < -margin if m["test"] == "sequential" else value < -margin)
        reason = (f"canary accuracy {sc / c.labelled:.2%} vs stable {sa / s.labelled:.2%} "
                  f"({'more than' if bad else 'within'} {margin:.2%} below)")
        return _result(m, Verdict.FAIL if bad else Verdict.PASS, value, samples, reason,
                       {"metric": metric, "sequential": seq.to_dict()})
    if s.abs_error is None or c.abs_error is None:
        return _result(m, Verdict.INCONCLUSIVE, None, samples,
                       f"{metric} needs numeric predictions and labels")
    xs, xc = (s.abs_error, c.abs_error) if metric == "mae" else (s.abs_error ** 2,
                                                                 c.abs_error ** 2)
    base = float(xs.mean())
    allowed = margin * base if metric == "mae" else ((1 + margin) ** 2 - 1) * base
    seq = stats.msprt_means(float(xs.mean()), float(xs.var(ddof=1)), len(xs),
                            float(xc.mean()), float(xc.var(ddof=1)), len(xc), alpha=alpha,
                            higher_is_better=False)
    value = float(xc.mean()) - base
    bad = seq.ci_low > allowed if m["test"] == "sequential" else value > allowed
    reason = (f"canary {metric} {c.metrics.get(metric, math.nan):.4g} vs stable "
              f"{s.metrics.get(metric, math.nan):.4g} ({'more than' if bad else 'within'} "
              f"{margin:.0%} worse)")
    return _result(m, Verdict.FAIL if bad else Verdict.PASS, value, samples, reason,
                   {"metric": metric, "sequential": seq.to_dict()})


def live_metric_name(metric: str, *arms: ArmMeasure) -> str:
    """``auto`` → ``mae`` when every arm's labels are numbers and some prediction has a
    fraction (a regression), else ``accuracy``."""
    if metric != "auto":
        return metric
    for arm in arms:
        if arm.label_values is None or arm.abs_error is None:
            return "accuracy"
    fractional = any(np.any(np.mod(np.asarray(a.labelled_predictions, dtype=float), 1) != 0)
                     for a in arms if len(a.labelled_predictions))
    return "mae" if fractional else "accuracy"


def _fairness(m: dict[str, Any], s: ArmMeasure, c: ArmMeasure, alpha: float,
              early: bool) -> MetricResult:
    """The chosen disparity (mloop.evaluation.fairness) of each arm on its labelled rows
    grouped by the sensitive column; canary's minus stable's against the threshold."""
    column = m["sensitive"]
    values: dict[str, float] = {}
    samples: dict[str, int] = {}
    for role, arm in (("stable", s), ("canary", c)):
        groups = arm.sensitive.get(column)
        keep = (_grouped(groups) if groups is not None
                else np.zeros(arm.labelled, dtype=bool))
        samples[role] = int(keep.sum())
    if (few := _few(m, samples, f"labelled rows with {column}")) is not None:
        return few
    for role, arm in (("stable", s), ("canary", c)):
        try:
            values[role] = _disparity(arm, column, m["metric"])
        except InvalidInputError as exc:
            return _result(m, Verdict.INCONCLUSIVE, None, samples, exc.message)
    value = values["canary"] - values["stable"]
    bad = value > m["threshold"]
    return _result(m, Verdict.FAIL if bad else Verdict.PASS, value, samples,
                   f"{m['metric']} by {column}: canary {values['canary']:.3f} vs stable "
                   f"{values['stable']:.3f}", {"stable": values["stable"],
                                               "canary": values["canary"]})


def _grouped(groups: np.ndarray) -> np.ndarray:
    """Which rows have a group (a value in the sensitive column)."""
    import pandas as pd

    return pd.notna(pd.Series(groups, dtype=object)).to_numpy(dtype=bool)


def _disparity(arm: ArmMeasure, column: str, metric: str) -> float:
    from mloop.evaluation.fairness import fairness

    groups = arm.sensitive[column]
    keep = _grouped(groups)
    if arm.label_values is not None:
        truth = arm.label_values[keep]
        pred = np.asarray(arm.labelled_predictions[keep], dtype=float)
    else:
        truth = arm.labels[keep].astype(str)
        pred = arm.labelled_predictions[keep].astype(str)
    report = fairness(truth, pred, groups[keep].astype(str))
    return float(getattr(report, metric))
