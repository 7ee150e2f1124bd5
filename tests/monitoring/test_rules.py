""".mloop/monitoring.yaml: parsing, every error message, defaults; durations."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.core.clock import parse_duration
from mloop.errors import ConfigError, InvalidInputError
from mloop.monitoring.rules import MonitorConfig, Rule, load_config, parse_config

UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def test_parse_config_happy_path():
    c = parse_config({
        "every": "5m", "window": "2h", "models": ["churn", "fraud"],
        "reference": {"churn": "data:/train@3", "fraud": "ref.parquet"},
        "method": "ks", "alpha": 0.01, "drift_share": 0.3, "max_drop": 0.1,
        "min_labels": 50, "retention": "7d",
        "webhook": "https://hooks.example.com/services/T0/B0",
        "rules": [
            {"name": "drifting", "signal": "drift.share", "op": ">", "threshold": 0.25,
             "window": "1h", "severity": "critical", "cooldown": "30m"},
            {"signal": "drift.dataset"},
            {"name": "acc", "signal": "performance.accuracy", "op": "<", "threshold": 0.8},
            {"name": "col", "signal": "drift.column.age", "threshold": 1, "op": "<="},
            {"name": "quiet", "signal": "predictions.count", "op": "<", "threshold": 10,
             "severity": "info"},
        ]})
    assert (c.every_ms, c.window_ms, c.retention_ms) == (300_000, 7_200_000, 7 * 86_400_000)
    assert c.models == ["churn", "fraud"]
    assert c.reference == {"churn": "data:/train@3", "fraud": "ref.parquet"}
    assert (c.method, c.alpha, c.drift_share, c.max_drop, c.min_labels) == (
        "ks", 0.01, 0.3, 0.1, 50)
    assert c.webhook == "https://hooks.example.com/services/T0/B0"
    assert c.rules[0] == Rule("drifting", "drift.share", 0.25, ">", 3_600_000, "critical",
                              1_800_000)
    # defaults: the name is the signal, the window the config's, threshold 1, 1h cooldown
    assert c.rules[1] == Rule("drift.dataset", "drift.dataset", 1.0, ">=", 7_200_000,
                              "warning", 3_600_000)
    assert c.rules[2].fires(0.7) is True and c.rules[2].fires(0.9) is False
    assert c.rules[2].fires(None) is None
    assert c.rules[3].signal == "drift.column.age" and c.rules[3].fires(1.0)
    assert c.rules[4].severity == "info" and c.rules[4].fires(3)


def test_parse_config_defaults():
    c = parse_config({})
    assert c.models is None and c.webhook is None and c.reference == {}
    assert [(r.name, r.signal, r.severity) for r in c.rules] == [
        ("data-drift", "drift.dataset", "warning"),
        ("performance-drop", "performance.drop", "critical")]
    assert parse_config({"window": "3h"}).rules[0].window_ms == 3 * 3_600_000
    assert parse_config({"rules": []}).rules == []
    assert parse_config({"every": 90, "webhook": ""}).every_ms == 90_000
    assert parse_config({"models": None}).models is None


@pytest.mark.parametrize(("raw", "message"), [
    ({"evry": "1m"}, "evry: unknown key; did you mean 'every'?"),
    ({"rules": [{"signal": "drift.share", "threshold": 1, "typo_sevrity": "critical"}]},
     "rules[0].typo_sevrity: unknown key; did you mean 'severity'?"),
    ({"rules": [{"signal": "drift.everything"}]},
     "rules[0].signal: unknown signal 'drift.everything'; use one of drift.share, "
     "drift.dataset, performance.drop, predictions.count, drift.column.<name> or "
     "performance.<metric>"),
    ({"rules": [{"signal": "drift.column."}]}, "rules[0].signal: unknown signal"),
    ({"rules": [{"signal": "performance.acuracy", "threshold": 0.9}]},
     "rules[0].signal: unknown metric 'acuracy' in 'performance.acuracy'; did you mean "
     "'accuracy'?"),
    ({"rules": [{"signal": "drift.share", "threshold": 1, "op": "=="}]},
     "rules[0].op: expected one of '>=', '>', '<=' or '<', got '=='"),
    ({"rules": [{"signal": "drift.dataset"}, {"signal": "drift.share", "threshold": 1,
                                              "severity": "page"}]},
     "rules[1].severity: expected one of 'info', 'warning' or 'critical', got 'page'"),
    ({"rules": [{"signal": "drift.share", "threshold": 1, "severity": "critcal"}]},
     "rules[0].severity: expected one of 'info', 'warning' or 'critical', got 'critcal'; "
     "did you mean 'critical'?"),
    ({"rules": [{"signal": "drift.share", "threshold": "high"}]},
     "rules[0].threshold: expected a number, got 'high'"),
    ({"rules": [{"signal": "drift.share"}]}, "rules[0]: a rule on drift.share needs a threshold"),
    ({"rules": [{"signal": "performance.accuracy"}]},
     "rules[0]: a rule on performance.accuracy needs a threshold"),
    ({"rules": [{"name": "x", "signal": "drift.dataset"},
                {"name": "x", "signal": "performance.drop"}]},
     "rules: two rules share a name; names identify alerts"),
    ({"rules": [{"signal": "drift.dataset"}, {"signal": "drift.dataset"}]},
     "rules: two rules share a name"),
    ({"rules": [{"signal": "drift.dataset", "window": "soon"}]},
     "rules[0].window: Cannot read the duration 'soon'"),
    ({"rules": [{"signal": "drift.dataset", "cooldown": "-1h"}]},
     "rules[0].cooldown: Cannot read the duration '-1h'"),
    ({"every": "10 minutes"}, "every: Cannot read the duration '10 minutes'"),
    ({"every": True}, "every: expected a duration such as 10m, not True"),
    ({"retention": 0}, "retention: A duration must be between 1 ms and 100 years, not 0"),
    ({"webhook": "ftp://hooks.example.com/x"}, "webhook: The webhook must be an http(s) URL"),
    ({"webhook": "hooks.example.com/T0"}, "The webhook must be an http(s) URL"),
    ({"models": "churn"}, "models: expected a list of names, got 'churn'"),
    ({"reference": ["train@1"]}, "reference: expected a mapping"),
    ({"rules": {"signal": "drift.dataset"}}, "rules: expected a list of mappings"),
    ({"rules": ["drift.dataset"]}, "rules[0]: expected a mapping, got 'drift.dataset'"),
    ({"rules": [{"name": "no signal"}]}, "rules[0]: the key 'signal' is required"),
    ({"alpha": 7}, "alpha: must be less than 1, got 7"),
    ({"alpha": 0}, "alpha: must be greater than 0, got 0"),
    ({"alpha": "lots"}, "alpha: expected a number (> 0, < 1), got 'lots'"),
    ({"alpha": True}, "alpha: expected a number"),  # a YAML yes is not a number
    ({"drift_share": 1.5}, "drift_share: must be less than or equal to 1, got 1.5"),
    ({"min_labels": 2.5}, "min_labels: expected an integer (>= 1), got 2.5"),
    ({"method": "kss"}, "method: unknown drift method 'kss'; did you mean 'ks'?"),
    (["every"], "expected a mapping, got a list ['every']"),
])
def test_parse_config_errors(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.message.startswith("monitoring.yaml: ")
    assert message in err.value.message


def test_every_mistake_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        parse_config({"evry": "1m", "alpha": 7, "rules": [{"signal": "drift.share"}]})
    assert err.value.message.splitlines() == [
        "monitoring.yaml: evry: unknown key; did you mean 'every'?",
        "monitoring.yaml: alpha: must be less than 1, got 7",
        "monitoring.yaml: rules[0]: a rule on drift.share needs a threshold"]


def test_a_webhook_error_does_not_show_the_token():
    with pytest.raises(ConfigError) as err:
        parse_config({"webhook": "ftp://hooks.example.com/services/SECRET"})
    assert "SECRET" not in err.value.message


def test_load_config_without_a_file(tmp_path):
    c = load_config(tmp_path)
    assert isinstance(c, MonitorConfig)
    assert [r.name for r in c.rules] == ["data-drift", "performance-drop"]
    assert [r.severity for r in c.rules] == ["warning", "critical"]
    assert c.every_ms == 600_000 and c.window_ms == 86_400_000


def _write(root, text):
    (root / ".mloop").mkdir(exist_ok=True)
    path = root / ".mloop" / "monitoring.yaml"
    path.write_text(text)
    return path


def test_load_config_reads_the_file(tmp_path):
    _write(tmp_path, "every: 1m\nrules:\n  - name: d\n    signal: drift.share\n"
                     "    threshold: 0.2\n")
    c = load_config(tmp_path)
    assert c.every_ms == 60_000 and [(r.name, r.threshold) for r in c.rules] == [("d", 0.2)]
    _write(tmp_path, "")  # an empty file: the defaults
    assert len(load_config(tmp_path).rules) == 2


@pytest.mark.parametrize(("text", "message"), [
    ("rules: [\n  - oops", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping, got a list ['a', 'b']"),
    ("colour: red\n", "colour: unknown key; known keys: every, window"),
    ("alpha: lots\n", "alpha: expected a number"),
    ("alpha: 7\n", "alpha: must be less than 1, got 7"),
    ("rules:\n  - signal: drift.share\n", "rules[0]: a rule on drift.share needs a threshold"),
    ("rules:\n  - signal: drift.share\n    threshold: 1\n    typo_sevrity: critical\n",
     "rules[0].typo_sevrity: unknown key; did you mean 'severity'?"),
    ("alpha: 0.1\nalpha: 0.2\n", "the key 'alpha' is given twice"),
])
def test_load_config_errors_name_the_file(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert err.value.message.startswith(f"{path}:")  # with the line for YAML mistakes
    assert message in err.value.message


def test_an_infinite_duration_in_the_file_is_a_config_error(tmp_path):
    _write(tmp_path, "every: .inf\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path)


@pytest.mark.parametrize(("text", "ms"), [
    ("90s", 90_000), ("10m", 600_000), ("1h", 3_600_000), ("7d", 604_800_000),
    ("2w", 1_209_600_000), ("1.5h", 5_400_000), (" 2 m ", 120_000), (45, 45_000),
    (0.5, 500), ("0.5s", 500)])
def test_parse_duration(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["", "10", "h", "1x", "1 hour", "-5m", "0s", "0", "1h30m",
                                 "1e3s", True, 0, -3, "0.0m", None, "nan", "inf s"])
def test_parse_duration_errors(bad):
    with pytest.raises(InvalidInputError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize("tiny", [0.0001, "0.0004s"])
def test_parse_duration_never_returns_zero(tiny):
    with pytest.raises(InvalidInputError):
        parse_duration(tiny)


@given(n=st.integers(min_value=1, max_value=10**9), unit=st.sampled_from(sorted(UNITS)),
       pad=st.sampled_from(["", " "]))
def test_parse_duration_round_trips(n, unit, pad):
    text = f"{pad}{n}{pad}{unit}{pad}"
    if n * UNITS[unit] > 100 * 365 * 86_400_000:  # a century is the limit
        with pytest.raises(InvalidInputError, match="between 1 ms and 100 years"):
            parse_duration(text)
    else:
        assert parse_duration(text) == n * UNITS[unit]


@given(n=st.integers(min_value=1, max_value=10**6))
def test_parse_duration_of_seconds(n):
    assert parse_duration(n) == n * 1000 == parse_duration(f"{n}s")
