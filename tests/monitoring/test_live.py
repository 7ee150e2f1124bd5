"""Live performance scores a classifier against its own classes (issue 14 §5).

A window whose labels and predictions were all 0 once read as precision, recall and F1 of
1 and specificity 0: class 0 became the positive class because it was the only one seen.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, recall_score

import mloop
from mloop.evaluation.metrics import Weighted
from mloop.monitoring.live import model_classes
from tests.cli.test_cli import run_cli
from tests.monitoring.test_runner import SERVE, Served, X


def test_fixed_labels_keep_the_positive_class_in_a_one_class_window():
    zeros = np.zeros(4, dtype=int)
    seen_only = Weighted("classification", zeros, zeros).values()
    assert seen_only["precision"] == 1.0 and seen_only["specificity"] == 0.0  # the old flip
    fixed = Weighted("classification", zeros, zeros, labels=[0, 1]).values()
    assert (fixed["precision"], fixed["recall"], fixed["f1"], fixed["specificity"]) == (
        0.0, 0.0, 0.0, 1.0)
    undefined = Weighted("classification", zeros, zeros, np.full((4, 2), [0.9, 0.1]),
                         labels=[0, 1], undefined=float("nan")).values()
    assert np.isnan([undefined[k] for k in ("precision", "recall", "f1", "roc_auc")]).all()
    assert undefined["specificity"] == 1.0 and undefined["brier"] == pytest.approx(0.01)
    # string classes, and labels the caller did not bring to the model's type, are handled
    words = Weighted("classification", np.array(["no", "no"]), np.array(["no", "no"]),
                     labels=np.array(["no", "yes"])).values()
    assert words["specificity"] == 1.0 and words["recall"] == 0.0
    mixed = Weighted("classification", np.array(["0"]), np.array(["0"]), labels=[0, 1])
    assert mixed.values()["accuracy"] == 1.0  # not comparable: the classes seen, as before


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=40))
def test_binary_metrics_with_the_model_classes_equal_scikit_learn(pairs):
    y, p = (np.array(v) for v in zip(*pairs, strict=True))
    got = Weighted("classification", y, p, labels=[0, 1]).values()
    kw = {"labels": [0, 1], "pos_label": 1, "zero_division": 0}
    assert got["precision"] == pytest.approx(precision_score(y, p, **kw))
    assert got["recall"] == pytest.approx(recall_score(y, p, **kw))
    assert got["f1"] == pytest.approx(f1_score(y, p, **kw))


def _negatives(served, rows=30):
    """Log requests whose rows the model predicts 0, and label them all 0."""
    part = X.iloc[SERVE]
    part = part[served.model.predict(part) == 0].iloc[:rows]
    assert len(part) == rows
    for rid, pred in served.log(part):
        mloop.log_feedback(rid, [0] * len(pred))


@pytest.fixture
def negatives(sqlite_project):
    served = Served(sqlite_project)
    _negatives(served)
    return sqlite_project


def test_a_window_of_one_class_keeps_the_model_positive_class(negatives):
    assert model_classes(negatives, "models:/churn/1") == [0, 1]
    (v,) = mloop.monitoring.performance("churn").versions
    assert v.labelled == 30 and v.metrics["accuracy"] == 1.0
    assert v.metrics["specificity"] == 1.0
    # recall and F1 of the positive class have nothing to count: left out, not 1 (or 0)
    assert not {"precision", "recall", "f1", "roc_auc"} & set(v.metrics)
    assert v.criteria["accuracy"]["status"] == "ok" and "f1" not in v.criteria


def test_the_cli_reports_the_same_window(negatives):
    out = json.loads(run_cli("monitor", "performance", "churn", "--json",
                             cwd=negatives.root).stdout)
    metrics = out["versions"][0]["metrics"]
    assert metrics["specificity"] == 1.0 and "recall" not in metrics and "f1" not in metrics
    text = run_cli("monitor", "performance", "churn", cwd=negatives.root).stdout
    assert "specificity" in text and "recall" not in text


def test_the_manifest_records_a_classifier_classes(sqlite_project):
    from sklearn.tree import DecisionTreeClassifier

    with mloop.start_run():
        info = mloop.log_model(DecisionTreeClassifier(max_depth=1).fit(X[:60], np.where(
            np.arange(60) % 2, "spam", "ham")), input_example=X[:2], registered_name="words",
            onnx=False)
    manifest = json.loads(mloop.read_artifact(f"{info.uri}/mloop-model.json"))
    assert manifest["classes"] == ["ham", "spam"]
    assert model_classes(sqlite_project, "models:/words/1") == ["ham", "spam"]
    assert model_classes(sqlite_project, "models:/nope/1") is None


def test_versions_logged_before_manifests_kept_classes_load_them(negatives, monkeypatch):
    """No ``classes`` in the manifest: the loaded model's ``classes_`` say."""
    from mloop.registry.models import get_version

    digest = get_version(negatives, "churn/1").manifest
    real = negatives.objects.get_bytes

    def older(key, *args, **kwargs):
        data = real(key, *args, **kwargs)
        if key != digest:
            return data
        manifest = json.loads(data)
        manifest.pop("classes")
        return json.dumps(manifest).encode()

    monkeypatch.setattr(negatives.objects, "get_bytes", older)
    assert "classes" not in json.loads(negatives.objects.get_bytes(digest))
    assert model_classes(negatives, "models:/churn/1") == [0, 1]
    (v,) = mloop.monitoring.performance("churn").versions
    assert v.metrics["specificity"] == 1.0 and "recall" not in v.metrics
