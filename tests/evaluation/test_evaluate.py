"""mloop.evaluate and its checks, suites and stored decisions (SQLite and PostgreSQL)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from mloop.errors import ConfigError, InvalidInputError
from mloop.evaluation.checks import PASS, CheckResult, register_check
from mloop.evaluation.core import latest_evaluation


@pytest.fixture(scope="module")
def frame():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(0)
    return X.assign(target=y, gender=rng.choice(["f", "m"], len(X)))


@pytest.fixture
def models(project, frame):
    X, y = frame.drop(columns=["target", "gender"]), frame.target
    with mloop.start_run():
        for C in (1.0, 0.01):
            m = make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(X[:400], y[:400])
            mloop.log_model(m, input_example=X[:5], registered_name="churn", onnx=False)
    return frame.iloc[400:]


def test_evaluate_measures_checks_and_records(project, models):
    test = models
    report = mloop.evaluate("models:/churn/1", test, "target", sensitive_features=["gender"],
                            baseline="models:/churn/2", resamples=50)
    X = test.drop(columns=["target", "gender"])
    ours = mloop.load_model("models:/churn/1")
    assert report.metrics["accuracy"]["value"] == pytest.approx(
        accuracy_score(test.target, ours.predict(X)))
    assert report.metrics["roc_auc"]["value"] == pytest.approx(
        roc_auc_score(test.target, ours.predict_proba(X)[:, 1]))
    low, high = report.metrics["accuracy"]["low"], report.metrics["accuracy"]["high"]
    assert low <= report.metrics["accuracy"]["value"] <= high
    assert set(report.slices["gender"]) == {"f", "m"}
    assert "demographic_parity_difference" in report.fairness["gender"]["summary"]
    names = [c.name for c in report.checks]
    assert "beats majority baseline (accuracy)" in names and "accuracy vs baseline" in names
    assert report.passed == (not any(c.blocking for c in report.checks))
    stored = latest_evaluation(project, "models:/churn/1")
    assert stored["passed"] == report.passed and stored["suite"] == "default"
    page = report.to_html()
    assert "<script" not in page and "beats majority baseline" in page
    assert json.loads(report.to_json())["counts"] == report.counts


def test_the_issue_suite_form_and_severities(project, models, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("""
first_model: fail
checks:
  - metric: accuracy
    min: 0.999
  - metric: roc_auc
    min_change: -0.01
  - fairness: demographic_parity_difference
    sensitive: gender
    max: 0.0001
    severity: warn
  - robustness: gaussian_noise
    scale: 0.1
    max_metric_drop: 0.05
  - metric: recall
    slice: {gender: f}
    min: 0.5
""")
    report = mloop.evaluate("models:/churn/1", models, "target", sensitive_features=["gender"],
                            suite=str(suite), resamples=0)
    by = {c.name: c for c in report.checks}
    assert by["accuracy"].status == "fail" and by["accuracy"].blocking
    assert by["roc_auc vs baseline"].status == "fail"  # no baseline; first_model: fail
    assert "first model" in by["roc_auc vs baseline"].explanation
    assert by["demographic_parity_difference (gender)"].status == "warn"
    assert by["recall on gender=f"].status == "pass"
    assert not report.passed


def test_bad_input_is_an_error_or_an_explicit_result(project, models, tmp_path):
    with pytest.raises(InvalidInputError, match="no target column 'churned'"):
        mloop.evaluate("models:/churn/1", models, "churned")
    one = models.assign(gender="f")
    with pytest.raises(InvalidInputError, match="one group"):
        mloop.evaluate("models:/churn/1", one, "target", sensitive_features=["gender"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("checks:\n  - vibes: good\n")
    with pytest.raises(ConfigError, match=r"checks\[0\]: names no check kind"):
        mloop.evaluate("models:/churn/1", models, "target", suite=str(bad))
    unseen = models.assign(target=models.target.where(models.index % 7 != 0, 2))
    report = mloop.evaluate("models:/churn/1", unseen, "target", resamples=0)
    assert any(c.name == "labels the model knows" and c.status == "warn"
               for c in report.checks)


def test_regression_model_under_a_classification_check(project, tmp_path):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    with mloop.start_run():
        mloop.log_model(LinearRegression().fit(X, y), input_example=X[:3],
                        registered_name="reg", onnx=False)
    data = X.assign(target=y)
    report = mloop.evaluate("models:/reg/1", data, "target", resamples=0)
    assert report.task == "regression" and "rmse" in report.metrics and report.passed
    suite = tmp_path / "s.yaml"
    suite.write_text("checks:\n  - metric: accuracy\n    min: 0.9\n")
    with pytest.raises(InvalidInputError, match="accuracy is a classification metric"):
        mloop.evaluate("models:/reg/1", data, "target", suite=str(suite))


class NaNModel:
    def predict(self, X):
        return np.full(len(X), np.nan)


def test_nan_predictions_fail_explicitly(project):
    data = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "target": [1.0, 2.0, 3.0, 4.0]})
    with mloop.start_run():
        mloop.log_model(NaNModel(), input_example=data[["a"]], registered_name="nan")
    from mloop.project import Project

    # a plain Python model is a pickle: the user allows it for this project's loads
    allowing = Project(project.root, store_uri=project.settings.store_uri, allow_pickle=True)
    try:
        report = mloop.evaluate("models:/nan/1", data, "target", resamples=0, project=allowing)
    finally:
        allowing.close()
    assert not report.passed
    assert report.checks[0].name == "predictions are numbers"


def test_behaviour_robustness_and_cross_validation(project, models, frame, tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("""
checks:
  - behaviour: invariance
    column: mean texture
    max_flip_rate: 0.5
  - behaviour: monotonic
    column: worst area
    direction: decreasing
    max_violations: 0.2
  - robustness: missing_values
    share: 0.1
  - robustness: flip_search
    rows: 50
""")
    report = mloop.evaluate("models:/churn/1", frame, "target", suite=str(suite), resamples=0,
                            cv=3, seeds=2)
    by = {c.name: c for c in report.checks}
    assert by["invariance to mean texture"].status in ("pass", "fail")
    assert by["monotonic decreasing in worst area"].value is not None
    missing = by["robustness: missing_values"]
    assert missing.status == "fail" and "NaN" in missing.explanation  # LR cannot take NaN
    assert by["robustness: flip_search"].value > 0
    assert report.cv["accuracy"]["folds"] == 6 and 0.8 < report.cv["accuracy"]["mean"] <= 1


def test_plugins_register_checks(project, models, tmp_path):
    def always(ctx, entry):
        return CheckResult(f"custom {entry['custom']}", PASS, 1.0, "-", "plugged in")

    register_check("custom", always)
    suite = tmp_path / "s.yaml"
    suite.write_text("checks:\n  - custom: hello\n")
    report = mloop.evaluate("models:/churn/1", models, "target", suite=str(suite),
                            resamples=0, record=False)
    assert [c.name for c in report.checks] == ["custom hello"]


def test_cross_validation_folds_become_nested_runs(project, models, frame):
    with mloop.start_run() as parent:
        report = mloop.evaluate("models:/churn/1", frame, "target", cv=3, seeds=2, resamples=0)
    mloop.flush()
    children = mloop.search_runs(filter=f"attributes.parent_id = '{parent.id}'")
    assert len(children) == 6 == report.cv["accuracy"]["folds"]
    assert set(children["params.cv_seed"]) == {"0", "1"}
    assert children["metrics.accuracy"].between(0.8, 1.0).all()
    artifacts = [a.path for a in mloop.get_run(parent.id).artifacts]
    assert "evaluation/report.json" in artifacts


def test_skew_and_the_served_twin(project, tmp_path):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    path = project.root / "train.csv"
    X.assign(target=y).to_csv(path, index=False)
    mloop.data.add(path, name="train")
    with mloop.start_run():
        rows = mloop.data.load("train@1")
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
            rows.drop(columns="target"), rows.target)
        mloop.log_model(model, input_example=X[:20], registered_name="twin")
    shifted = X.assign(**{"mean area": X["mean area"] * 3}, target=y)
    report = mloop.evaluate("models:/twin/1", shifted, "target", resamples=0)
    by = {c.name: c for c in report.checks}
    assert by["served model agrees with the trained one"].status == "pass"
    skew = by["data: training/serving skew"]
    assert skew.status == "warn" and "mean area" in skew.explanation and skew.value > 0.5
    overlap = by["data: train/test overlap"]
    assert overlap.value < 0.05  # the shifted rows are not the training rows


def test_ranges_seed_stability_and_group_folds(project, tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    path = project.root / "train.csv"
    X.assign(target=y).to_csv(path, index=False)
    mloop.data.add(path, name="train")
    with mloop.start_run():
        rows = mloop.data.load("train@1")
        forest = RandomForestClassifier(30, random_state=0).fit(rows.drop(columns="target"),
                                                                rows.target)
        mloop.log_model(forest, input_example=X[:5], registered_name="rf", onnx=False)
    suite = tmp_path / "s.yaml"
    suite.write_text("""
checks:
  - data: ranges
    columns: {mean radius: {min: 0, max: 25}, mean area: {max: 100}}
    max: 0.5
  - behaviour: seed_stability
    seeds: 2
    min_agreement: 0.9
""")
    data = X.assign(target=y, customer=np.arange(len(X)) % 40)
    report = mloop.evaluate("models:/rf/1", data, "target", suite=str(suite), resamples=0,
                            cv=4, cv_strategy="group", cv_groups="customer")
    by = {c.name: c for c in report.checks}
    ranges = by["data: ranges"]
    assert ranges.status == "fail" and "mean area" in ranges.explanation  # areas exceed 100
    stable = by["stable across training seeds"]
    assert stable.status == "pass" and stable.value >= 0.9
    assert report.cv["accuracy"]["folds"] == 4
