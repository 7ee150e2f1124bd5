"""``mloop monitor …`` through the real entry point."""

import json
import time

import pytest

import mloop
from mloop.core.clock import now_ms
from tests.cli.test_cli import run_cli
from tests.monitoring.test_runner import SERVE, Served, X


def _clear_error(out, code, *words):
    assert out.returncode == code, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stderr.startswith("Error: ")
    for word in words:
        assert word in out.stderr


@pytest.fixture
def csvs(sqlite_project):
    root = sqlite_project.root
    X.iloc[:200].to_csv(root / "a.csv", index=False)
    (X.iloc[200:400] * 3).to_csv(root / "b.csv", index=False)  # every column moved
    X.iloc[:200].sample(frac=1.0, random_state=1).to_csv(root / "same.csv", index=False)
    return root


def test_drift_json_html_and_fail_on_drift(csvs):
    out = run_cli("monitor", "drift", "--reference", "a.csv", "--current", "b.csv", "--json",
                  "-o", "report.html", "--fail-on-drift", cwd=csvs, check=False)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["dataset_drift"] is True and report["share_drifted"] == 1.0
    assert report["reference"]["name"] == "a.csv" and report["current"]["rows"] == 200
    assert len(report["drifted_columns"]) == 30
    page = (csvs / "report.html").read_text()
    assert "<svg" in page and "mean radius" in page
    # the same rows against a stored dataset version (its profile): no drift, exit 0
    mloop.data.add(csvs / "a.csv", name="ref")
    out = run_cli("monitor", "drift", "-r", "ref@1", "-c", "same.csv", "--fail-on-drift",
                  "--column", "mean radius", "--column", "mean area", "-o", "r.json",
                  cwd=csvs)
    assert "Dataset: no drift — 0 of 2 tested columns drifted" in out.stdout
    assert "Report written to r.json" in out.stdout
    saved = json.loads((csvs / "r.json").read_text())
    assert saved["dataset_drift"] is False and set(saved["columns"]) == {
        "mean radius", "mean area"}


def test_clear_errors_without_a_traceback(csvs):
    missing = run_cli("monitor", "drift", "-r", "a.csv", "-c", "nope.csv", cwd=csvs,
                      check=False)
    _clear_error(missing, 2, "nope.csv: no such file.")
    # not-found errors end with 3 (mloop.errors: NotFoundError → exit 3)
    unknown = run_cli("monitor", "drift", "-r", "train@1", "-c", "a.csv", cwd=csvs,
                      check=False)
    _clear_error(unknown, 3, "No dataset named 'train'")
    no_model = run_cli("monitor", "performance", "nope", "--json", cwd=csvs, check=False)
    _clear_error(no_model, 3, "No registered model named 'nope'")
    served = run_cli("monitor", "drift", "-r", "a.csv", "-c", "serving:nope", cwd=csvs,
                     check=False)
    _clear_error(served, 3, "No registered model named 'nope'")
    bad_age = run_cli("monitor", "prune", "--older-than", "soon", cwd=csvs, check=False)
    _clear_error(bad_age, 2, "Cannot read the duration 'soon'")
    (csvs / ".mloop" / "monitoring.yaml").write_text("rules: [\n  - oops")
    bad_yaml = run_cli("monitor", "run", "--once", cwd=csvs, check=False)
    _clear_error(bad_yaml, 2, "monitoring.yaml:2:3: not valid YAML")


@pytest.fixture
def served(sqlite_project):
    s = Served(sqlite_project)
    s.log(X.iloc[SERVE[:100]])
    return s


def test_feedback_performance_run_alerts_resolve_and_prune(served):
    root = served.project.root
    rid, pred = served.requests[0]
    out = run_cli("monitor", "feedback", rid, str(int(1 - pred[3])), "--row", "3", "--json",
                  cwd=root)
    assert json.loads(out.stdout) == {"stored": 1, "unmatched": 0}
    lines = ["request_id,row,label"] + [f"{r},{k},{int(1 - p)}" for r, ps in
                                        served.requests[1:] for k, p in enumerate(ps)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    out = run_cli("monitor", "feedback", "--file", "labels.csv", cwd=root)
    assert out.stdout.strip() == "Stored 90 labels, all matched to logged predictions."
    both = run_cli("monitor", "feedback", rid, "1", "--file", "labels.csv", cwd=root,
                   check=False)
    _clear_error(both, 2, "not both")

    perf = json.loads(run_cli("monitor", "performance", "churn", "--json", cwd=root).stdout)
    (version,) = perf["versions"]
    assert version["model"] == "models:/churn/1" and version["labelled"] == 91
    assert version["predictions"] == 100 and "accuracy" in version["drops"]
    assert version["criteria"]["accuracy"]["status"] == "drop"

    checked = json.loads(run_cli("monitor", "run", "--once", "--json", cwd=root).stdout)
    (result,) = checked
    assert result["model"] == "models:/churn/1" and result["predictions"] == 100
    assert result["signals"]["performance.drop"] >= 1 and result["signals"][
        "drift.share"] == 0.0
    assert [a["rule"] for a in result["fired"]] == ["performance-drop"]

    alerts = json.loads(run_cli("monitor", "alerts", "--open", "--json", cwd=root).stdout)
    (alert,) = alerts
    assert (alert["rule"], alert["severity"], alert["status"], alert["count"]) == (
        "performance-drop", "critical", "open", 1)
    assert alert["uri"] == f"alerts:/{alert['id']}"
    text = run_cli("monitor", "alerts", "--model", "churn", cwd=root).stdout
    assert "performance-drop" in text and "churn/1" in text
    assert run_cli("monitor", "resolve", alert["id"], cwd=root).stdout.strip() == \
        f"{alert['id']}: resolved"
    assert json.loads(run_cli("monitor", "alerts", "--open", "--json", cwd=root).stdout) == []
    assert "No open alerts." in run_cli("monitor", "alerts", "--open", cwd=root).stdout

    text = run_cli("monitor", "run", "--once", cwd=root).stdout
    assert "models:/churn/1: 100 predictions; drift 0% drifted; accuracy" in text

    folder = root / ".mloop" / "predictions" / "churn" / "1"
    segments = sorted(folder.glob("*.parquet"))
    old = segments[0].with_name(f"{now_ms() - 3 * 86_400_000}-0000beef.parquet")
    segments[0].rename(old)  # written three days ago
    pruned = json.loads(run_cli("monitor", "prune", "--older-than", "1d", "--json",
                                cwd=root).stdout)
    assert pruned["segments"] == 1 and pruned["feedback"] == 0 and pruned["bytes"] > 0
    assert not old.exists() and sorted(folder.glob("*.parquet")) == segments[1:]
    assert ("Deleted 0 prediction segments (0.0 MB), 0 feedback rows and 0 deployment "
            "traffic rows.") in run_cli(
        "monitor", "prune", cwd=root).stdout  # the default retention: 30 days


def test_feedback_for_an_unknown_request_says_not_yet_matched_and_is_listed(served):
    root = served.project.root
    rid, _ = served.requests[0]
    status = json.loads(run_cli("monitor", "feedback", "--json", cwd=root).stdout)
    assert status == {"labels": 0, "matched": {}, "unmatched": 0, "oldest_unmatched_ms": None,
                      "unmatched_examples": []}
    # it said "Stored 1 label(s)" as if the label counted: it is stored, but waits (exit 0)
    out = run_cli("monitor", "feedback", "nonexistent", "1", cwd=root)
    assert out.stdout.startswith("Stored 1 label, 1 not yet matched: no logged "
                                 "prediction has that request id and row")
    out = run_cli("monitor", "feedback", rid, "[1, 0]", "--json", cwd=root)
    assert json.loads(out.stdout) == {"stored": 2, "unmatched": 0}
    out = run_cli("monitor", "feedback", rid, "1", "--row", "99", "--json", cwd=root)
    assert json.loads(out.stdout) == {"stored": 1, "unmatched": 1}  # no such row
    status = json.loads(run_cli("monitor", "feedback", "--json", cwd=root).stdout)
    assert status["labels"] == 4 and status["matched"] == {"churn": 2}
    assert status["unmatched"] == 2 and status["oldest_unmatched_ms"] <= now_ms()
    assert status["unmatched_examples"] == ["nonexistent", rid]
    text = run_cli("monitor", "feedback", cwd=root).stdout
    assert "4 labels stored, 2 not yet matched." in text and "nonexistent" in text
    assert "churn" in text
    out = run_cli("monitor", "feedback", "--row", "1", cwd=root, check=False)
    _clear_error(out, 2, "REQUEST_ID LABEL")


def test_feedback_file_with_an_empty_row_cell_is_a_clear_error(sqlite_project):
    (sqlite_project.root / "fb.csv").write_text("request_id,label,row\na,1,0\nb,0,\n")
    out = run_cli("monitor", "feedback", "--file", "fb.csv", cwd=sqlite_project.root,
                  check=False)
    _clear_error(out, 2)


@pytest.mark.parametrize(("text", "words"), [
    ("rules:\n  - signal: drift.dataset\n    typo_sevrity: critical\n",
     "monitoring.yaml: rules[0].typo_sevrity: unknown key; did you mean 'severity'?"),
    ("alpha: 7\n", "monitoring.yaml: alpha: must be less than 1, got 7"),
    ("rules:\n  - signal: drift.share\n    threshold: high\n",
     "rules[0].threshold: expected a number, got 'high'"),
    ("method: bogus\n", "method: unknown drift method 'bogus'"),
])
def test_a_mistake_in_monitoring_yaml_exits_2_naming_the_key(sqlite_project, text, words):
    root = sqlite_project.root
    (root / ".mloop" / "monitoring.yaml").write_text(text)
    _clear_error(run_cli("monitor", "run", "--once", cwd=root, check=False), 2, words)


def test_an_alias_bomb_in_monitoring_yaml_is_refused_fast(sqlite_project):
    from tests.core.test_yamlio import alias_bomb

    root = sqlite_project.root
    (root / ".mloop" / "monitoring.yaml").write_text("models:\n" + alias_bomb(indent="  "))
    start = time.monotonic()
    out = run_cli("monitor", "run", "--once", cwd=root, check=False)
    assert time.monotonic() - start < 5  # it used 6.5 GB for 129 s
    _clear_error(out, 2, "monitoring.yaml:", "too many YAML aliases")


def test_monitor_run_once_exits_1_when_the_check_fails(sqlite_project, monkeypatch, capsys):
    from mloop.cli import main
    from mloop.errors import ServiceUnavailableError
    from mloop.monitoring import runner

    def broken(*_args, **_kwargs):
        raise ServiceUnavailableError("the prediction log cannot be read")

    monkeypatch.chdir(sqlite_project.root)
    monkeypatch.setattr(runner, "check", broken)
    with pytest.raises(SystemExit) as done:
        main(["monitor", "run", "--once"])
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: The monitoring check failed: the prediction log cannot be")
