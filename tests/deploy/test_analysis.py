"""The canary analysis: spec validation, the default analysis, each kind, the verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.deploy.analysis import analyse, default_spec, load_spec
from mloop.deploy.measure import ArmMeasure
from mloop.errors import ConfigError


def arm(name, *, requests=1000, failures=0, p99=10.0, preds=None, correct=None,
        seed=0, sensitive=None):
    rng = np.random.default_rng(seed)
    m = ArmMeasure(name, requests=requests, errors=failures,
                   latency_p50=p99 / 2 if requests else None,
                   latency_p99=p99 if requests else None)
    m.predictions = (rng.integers(0, 2, requests - failures) if preds is None
                     else np.asarray(preds)).astype(object)
    if correct is not None:
        m.correct = np.asarray(correct, dtype=bool)
        m.labelled = len(m.correct)
        m.metrics["accuracy"] = float(m.correct.mean())
        m.labels = np.ones(m.labelled, dtype=object)
        m.labelled_predictions = np.where(m.correct, 1, 0).astype(object)
    if sensitive is not None:
        m.sensitive = {"group": np.asarray(sensitive, dtype=object)}
    return m


def exactly(rate, n, seed=0):
    """``n`` outcomes of which ``rate`` are true, in random order (and so in any prefix
    about that share)."""
    out = np.arange(n) % 10 < rate * 10
    return np.random.default_rng(seed).permutation(out) if seed else out


def by_name(analysis):
    return {r.name: r for r in analysis.results}


def test_default_analysis_passes_two_alike_arms():
    got = analyse(default_spec(), {"stable": arm("stable", seed=1),
                                   "canary": arm("canary", requests=200, seed=2)},
                  "stable", "canary")
    assert got.verdict == "pass", got.summary()
    results = by_name(got)
    assert results["live_metric"].status == "inconclusive"  # no labels: not required
    assert not results["live_metric"].required
    json.dumps(got.to_dict(), allow_nan=False)


def test_default_analysis_is_inconclusive_without_enough_requests():
    got = analyse(default_spec(), {"stable": arm("stable"),
                                   "canary": arm("canary", requests=40)}, "stable", "canary")
    assert got.verdict == "inconclusive"
    assert "40 requests on one arm, 100 needed" in by_name(got)["error_rate"].reason


@pytest.mark.parametrize(("canary", "failing"), [
    ({"failures": 20}, "error_rate"),  # 20% errors against none
    ({"p99": 16.0}, "latency_p99"),  # 1.6× the stable's p99
    ({"preds": np.r_[np.zeros(180), np.ones(20)]}, "prediction_drift"),  # mostly one class
])
def test_default_analysis_fails_a_bad_canary(canary, failing):
    got = analyse(default_spec(), {"stable": arm("stable"),
                                   "canary": arm("canary", requests=200, **canary)},
                  "stable", "canary")
    assert got.verdict == "fail"
    assert [r.name for r in got.failed] == [failing]
    assert failing in got.summary()


def test_an_error_rate_within_the_margin_passes():
    got = analyse(default_spec(), {"stable": arm("stable", failures=20),
                                   "canary": arm("canary", requests=1000, failures=25)},
                  "stable", "canary")
    assert by_name(got)["error_rate"].status == "pass"


def test_the_live_metric_fails_20_points_worse_once_each_arm_has_200_labels():
    good, bad = exactly(0.9, 400), exactly(0.7, 400)
    few = analyse(default_spec(), {"stable": arm("stable", correct=good[:150]),
                                   "canary": arm("canary", correct=bad[:150])},
                  "stable", "canary")
    assert by_name(few)["live_metric"].status == "inconclusive"
    enough = analyse(default_spec(), {"stable": arm("stable", correct=good[:200]),
                                      "canary": arm("canary", correct=bad[:200])},
                     "stable", "canary")
    assert enough.verdict == "fail" and enough.failed[0].name == "live_metric"


def test_an_early_analysis_may_fail_but_never_passes():
    spec = default_spec()
    fine = analyse(spec, {"stable": arm("stable"), "canary": arm("canary", requests=300)},
                   "stable", "canary", early=True)
    assert fine.verdict == "inconclusive"
    assert by_name(fine)["latency_p99"].reason == "judged at the scheduled analysis"
    bad = analyse(spec, {"stable": arm("stable"),
                         "canary": arm("canary", requests=100, failures=20)},
                  "stable", "canary", early=True)
    assert bad.verdict == "fail" and bad.early
    assert "sequential" in bad.failed[0].details


def test_failures_below_the_limit_hold_and_count():
    spec = load_spec({"metrics": [{"kind": "latency_p99"}], "failure_limit": 2})
    measures = {"stable": arm("stable"), "canary": arm("canary", p99=30.0)}
    first = analyse(spec, measures, "stable", "canary")
    assert first.verdict == "inconclusive" and first.failures == 1
    second = analyse(spec, measures, "stable", "canary", previous_failures=1)
    assert second.verdict == "fail"


def test_fairness_compares_the_arms_disparity():
    spec = load_spec({"metrics": [{"kind": "fairness", "sensitive": "group",
                                   "min_samples": 10}]})
    groups = np.array(["a", "b"] * 50, dtype=object)
    fair = np.ones(100, dtype=bool)
    unfair = groups == "a"  # right on group a, always wrong on group b
    got = analyse(spec, {"stable": arm("stable", correct=fair, sensitive=groups),
                         "canary": arm("canary", correct=unfair, sensitive=groups)},
                  "stable", "canary")
    result = got.results[0]
    assert result.status == "fail" and result.value == pytest.approx(1.0)
    assert spec["metrics"][0]["metric"] == "demographic_parity_difference"


def test_a_spec_file_is_validated_and_normalised(tmp_path):
    path = tmp_path / "analysis.yaml"
    path.write_text("interval: 5m\nmetrics:\n  - kind: error_rate\n    threshold: 0.02\n"
                    "  - kind: drift\n    test: ks\n")
    spec = load_spec(path)
    assert spec["interval_ms"] == 300_000
    assert spec["metrics"][0] | {} == {**spec["metrics"][0], "threshold": 0.02,
                                       "min_samples": 100, "required": True}
    assert spec["metrics"][1]["threshold"] == 0.05  # a p-value test: alpha
    assert load_spec(spec) == spec  # the stored form reads back as itself
    json.dumps(spec)


@pytest.mark.parametrize(("text", "words"), [
    ("metrics:\n  - kind: error_rate\n    treshold: 0.1\n",
     ["metrics[0].treshold", "did you mean 'threshold'"]),
    ("metrics:\n  - kind: latency\n", ["metrics[0].kind", "latency_p99"]),
    ("metrics:\n  - kind: fairness\n", ["metrics[0]", "sensitive: COLUMN"]),
    ("metrics:\n  - kind: drift\n    test: pis\n", ["did you mean 'psi'"]),
    ("metrics:\n  - kind: live_metric\n    metric: acuracy\n", ["did you mean 'accuracy'"]),
    ("metrics: []\n", ["metrics", "at least 1"]),
    ("failure_limt: 2\nmetrics:\n  - kind: error_rate\n", ["did you mean 'failure_limit'"]),
])
def test_a_bad_spec_is_a_config_error_naming_the_key(tmp_path, text, words):
    path = tmp_path / "analysis.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert "analysis.yaml" in str(err.value)
    for word in words:
        assert word in str(err.value)


@given(st.integers(100, 5000), st.floats(0, 0.3), st.integers(0, 2**32 - 1))
def test_two_arms_failing_alike_are_never_failed_on_errors(n, rate, seed):
    failures = int(n * rate)
    got = analyse(load_spec({"metrics": [{"kind": "error_rate"}]}),
                  {"stable": arm("stable", requests=n, failures=failures, seed=seed),
                   "canary": arm("canary", requests=n, failures=failures, seed=seed)},
                  "stable", "canary")
    assert got.verdict == "pass"
