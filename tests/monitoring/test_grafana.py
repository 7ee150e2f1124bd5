"""The Grafana dashboard in docs/ asks only for metrics the mloop server exports."""

import json
import re
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "mloop-dashboard.json"

# What the server exports on /metrics (prometheus_client names: counters end in _total).
METRICS = {
    "mloop_requests_total", "mloop_request_latency_seconds_bucket", "mloop_in_flight_requests",
    "mloop_prediction_log_dropped", "mloop_drift_share", "mloop_dataset_drift",
    "mloop_drift_statistic", "mloop_drift_detected", "mloop_drift_last_check_timestamp_seconds",
    "mloop_live_metric", "mloop_feedback_rows", "mloop_open_alerts",
    # mloop serve --deployment
    "mloop_deployment_weight", "mloop_deployment_requests_total",
    "mloop_deployment_latency_seconds_bucket", "mloop_deployment_fallbacks_total",
    "mloop_deployment_revision", "mloop_deployment_canary_step",
    "mloop_deployment_bandit_posterior_mean", "mloop_deployment_shadow_dropped_total",
    "mloop_deployment_traffic_dropped",
}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"\d[\w.]*|([A-Za-z_:][\w:]*)(\s*\()?")  # numbers and durations, names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values`` query) selects."""
    expr = re.sub(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", r"\1", expr)
    expr = _STRING.sub("", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = _GROUPING.sub(" ", expr)
    return {m[1] for m in _TOKEN.finditer(expr)
            if m[1] and not m[2] and m[1] not in _KEYWORDS}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # the panels inside collapsed rows
    return out


def _expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    return exprs


def test_metric_names_reads_promql():
    expr = ('histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{model=~"$m", '
            'status!~"5.."}[$__rate_interval]))) / on (model) group_left b_total '
            'or time() - c offset 5m > 1e3')
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert metric_names('label_values(mloop_live_metric{model=~"$model"}, metric)') == \
        {"mloop_live_metric"}


def test_the_dashboard_is_importable(dashboard):
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["model"]["definition"] == "label_values(mloop_requests_total, model)"
    assert variables["model"]["query"]["query"] == variables["model"]["definition"]


def test_every_expression_uses_only_exported_metrics(dashboard):
    used = set()
    for expr in _expressions(dashboard):
        names = metric_names(expr)
        assert names, expr
        assert names <= METRICS, f"{expr}: {names - METRICS}"
        used |= names
    assert used == METRICS  # and every exported metric is on the dashboard


def test_panels_have_unique_ids_and_prometheus_targets(dashboard):
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])


def test_panels_fit_the_grid_without_overlapping(dashboard):
    boxes = [(p["title"], p["gridPos"]) for p in dashboard["panels"]]
    for title, pos in boxes:
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, title
    for i, (a, pa) in enumerate(boxes):
        for b, pb in boxes[i + 1:]:
            apart = (pa["x"] + pa["w"] <= pb["x"] or pb["x"] + pb["w"] <= pa["x"]
                     or pa["y"] + pa["h"] <= pb["y"] or pb["y"] + pb["h"] <= pa["y"])
            assert apart, f"{a} overlaps {b}"


def test_drift_share_shows_the_threshold_and_open_alerts_turn_red(dashboard):
    by_title = {p["title"]: p for p in _panels(dashboard)}
    share = by_title["Share of drifted columns"]["fieldConfig"]["defaults"]
    assert share["custom"]["thresholdsStyle"]["mode"] in {"line", "dashed"}
    assert {"color": "red", "value": 0.5} in share["thresholds"]["steps"]
    alerts = by_title["Open alerts"]
    assert alerts["type"] == "stat"
    assert {"color": "red", "value": 1} in alerts["fieldConfig"]["defaults"]["thresholds"]["steps"]
