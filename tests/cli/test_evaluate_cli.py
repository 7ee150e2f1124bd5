"""``mloop test`` and ``mloop evaluate`` through the real entry point."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from tests.cli.test_cli import run_cli


@pytest.fixture
def proj(sqlite_project):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with mloop.start_run():
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:400], y[:400])
        mloop.log_model(model, input_example=X[:5], registered_name="churn", onnx=False)
    test = X[400:].assign(target=y[400:],
                          gender=np.random.default_rng(0).choice(["f", "m"], len(X) - 400))
    test.to_csv(sqlite_project.root / "test.csv", index=False)
    mloop.data.add(sqlite_project.root / "test.csv", name="test")
    return sqlite_project.root


def test_test_gates_with_exit_codes_and_records_the_decision(proj, tmp_path):
    out = run_cli("test", "models:/churn/1", "--data", "test@1", "--target", "target",
                  "--sensitive", "gender", "--resamples", "20", "-o", str(tmp_path / "r.html"),
                  cwd=proj)
    assert "PASSED" in out.stdout and "beats majority baseline" in out.stdout
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")
    shown = json.loads(run_cli("models", "show", "churn/1", "--json", cwd=proj).stdout)
    assert shown["evaluation"]["passed"] is True and shown["evaluation"]["suite"] == "default"
    strict = tmp_path / "strict.yaml"
    strict.write_text("checks:\n  - metric: accuracy\n    min: 0.9999\n")
    failed = run_cli("test", "models:/churn/1", "-d", "test.csv", "-t", "target", "--suite",
                     str(strict), "--json", cwd=proj, check=False)
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    assert report["passed"] is False and report["checks"][0]["status"] == "fail"
    shown = json.loads(run_cli("models", "show", "churn/1", "--json", cwd=proj).stdout)
    assert shown["evaluation"]["passed"] is False and shown["evaluation"]["suite"] == "strict"


def test_evaluate_with_cross_validation(proj):
    out = run_cli("evaluate", "models:/churn/1", "-d", "test@1", "-t", "target", "--cv", "3",
                  "--seeds", "2", "--json", "--no-record", cwd=proj)
    report = json.loads(out.stdout)
    assert report["cv"]["accuracy"]["folds"] == 6
    assert report["metrics"]["roc_auc"]["low"] <= report["metrics"]["roc_auc"]["value"]
    text = run_cli("evaluate", "models:/churn/1", "-d", "test@1", "-t", "target",
                   "--sensitive", "gender", "--resamples", "0", cwd=proj).stdout
    assert "By gender" in text and "Cross-validation" not in text


def test_bad_input_exit_codes(proj):
    missing = run_cli("test", "models:/churn/1", "-d", "test@1", "-t", "nope", cwd=proj,
                      check=False)
    assert missing.returncode == 2 and "no target column 'nope'" in missing.stderr
    unknown = run_cli("test", "models:/churn/7", "-d", "test@1", "-t", "target", cwd=proj,
                      check=False)
    assert unknown.returncode == 3


@pytest.mark.parametrize(("suite", "words"), [
    # the gate: a typo of min passed with exit 0
    ("checks: [{metric: accuracy, mni: 0.99}]",
     "checks[0].mni: unknown key; did you mean 'min'?"),
    ("checks:\n  - behaviour: monotonic\n    feature: mean radius\n",
     "checks[0].feature: unknown key; did you mean 'column'?"),
    ("checks: [{metric: accuracy, min: high}]", "checks[0].min: expected a number, got 'high'"),
    ("checks: [{metric: accuracy, min: 0.9, severity: warning}]",
     "checks[0].severity: expected one of 'block' or 'warn', got 'warning'; did you mean "
     "'warn'?"),
    ("checks: [{metric: acuracy, min: 0.9}]",
     "checks[0].metric: 'acuracy' is not a metric check; did you mean 'accuracy'?"),
    ("first_modle: fail\nchecks: []", "first_modle: unknown key; did you mean 'first_model'?"),
])
def test_a_mistake_in_a_suite_stops_the_gate_with_exit_2(proj, tmp_path, suite, words):
    path = tmp_path / "suite.yaml"
    path.write_text(suite)
    out = run_cli("test", "models:/churn/1", "-d", "test@1", "-t", "target", "--suite",
                  str(path), cwd=proj, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"Error: {path}: ") and words in out.stderr
    assert "PASSED" not in out.stdout
