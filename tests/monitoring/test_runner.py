"""Checks end to end without a server: a registered model, an evaluation, logged
predictions, feedback; drift and performance alerts that fire, repeat and clear; prune."""

import os
import uuid

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from mloop.core.clock import now_ms
from mloop.monitoring import feedback as F
from mloop.monitoring import runner
from mloop.monitoring.alerting import list_alerts
from mloop.monitoring.rules import load_config, parse_config
from mloop.serving.predlog import PredictionLogger, read_predictions

DAY = 86_400_000
X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
_ORDER = np.random.default_rng(0).permutation(len(X))
TRAIN, SERVE = _ORDER[:380], _ORDER[380:]  # one distribution on both sides


class Served:
    """A registered model whose run read train@1, evaluated; logs and labels requests."""

    def __init__(self, project, name="churn"):
        self.project, self.name = project, name
        path = project.root / "train.csv"
        X.iloc[TRAIN].assign(target=Y.iloc[TRAIN]).to_csv(path, index=False)
        mloop.data.add(path, name="train")
        with mloop.start_run():
            rows = mloop.data.load("train@1")
            self.model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
                rows.drop(columns="target"), rows.target)
            mloop.log_model(self.model, input_example=X[:5], registered_name=name,
                            onnx=False)
        test = X.iloc[SERVE].assign(target=Y.iloc[SERVE])
        self.evaluation = mloop.evaluate(f"models:/{name}/1", test, "target", resamples=0)
        self.requests = []  # (request id, predictions)

    def log(self, frame, rows_per_request=10):
        logger = PredictionLogger(self.project.root / ".mloop" / "predictions",
                                  flush_seconds=0.05)
        out = []
        for i in range(0, len(frame), rows_per_request):
            part = frame.iloc[i:i + rows_per_request]
            rid = uuid.uuid4().hex
            pred = self.model.predict(part)
            logger.log(self.name, 1, rid, frame=part, pred=pred,
                       proba=self.model.predict_proba(part), latency_ms=1.5)
            out.append((rid, pred))
        logger.close()
        self.requests.extend(out)
        return out

    def label(self, wrong_share):
        """Send labels: the first ``wrong_share`` of each request's rows wrong."""
        for rid, pred in self.requests:
            wrong = round(len(pred) * wrong_share)
            mloop.log_feedback(rid, [int(1 - p) if k < wrong else int(p)
                                     for k, p in enumerate(pred)])


@pytest.fixture
def served(project):
    return Served(project)


@pytest.fixture
def served_sqlite(sqlite_project):
    return Served(sqlite_project)


def _by_rule(project):
    return {a.rule: a for a in list_alerts(project)}


def test_performance_drop_fires_repeats_and_clears(served, caplog):
    project = served.project
    served.log(X.iloc[SERVE[:150]])
    (nothing,) = mloop.monitoring.check()  # no labels yet: neither fires nor clears
    assert nothing.signals["performance.drop"] is None and nothing.fired == []
    assert nothing.performance.note.startswith("no labels yet")

    served.label(wrong_share=0.8)
    (result,) = mloop.monitoring.check()
    assert (result.model, result.version, result.predictions) == ("churn", 1, 150)
    assert result.subject == "models:/churn/1" and result.notes == []
    signals = result.signals
    assert signals["predictions.count"] == 150.0
    assert signals["performance.drop"] >= 1
    assert signals["performance.accuracy"] == pytest.approx(
        result.performance.metrics["accuracy"]) and signals["performance.accuracy"] < 0.5
    assert signals["drift.share"] == 0.0 and signals["drift.dataset"] == 0.0
    assert signals["drift.column.mean area"] == 0.0
    assert result.performance.labelled == 150
    acc = result.performance.criteria["accuracy"]
    assert acc["status"] == "drop"
    assert acc["evaluated"] == pytest.approx(served.evaluation.metrics["accuracy"]["value"])
    (alert,) = result.fired
    assert (alert.rule, alert.severity, alert.status, alert.count) == (
        "performance-drop", "critical", "open", 1)
    assert "accuracy live" in alert.message
    assert "data-drift" not in _by_rule(project)
    assert any(alert.id in r.getMessage() for r in caplog.records
               if r.name == "mloop.monitoring")

    (again,) = mloop.monitoring.check()
    (same,) = again.fired
    assert (same.id, same.count) == (alert.id, 2)
    assert [a.id for a in mloop.monitoring.alerts(open_only=True)] == [alert.id]

    served.label(wrong_share=0.0)  # the labels were wrong, not the model: resent
    (fixed,) = mloop.monitoring.check()
    assert fixed.signals["performance.drop"] == 0.0 and fixed.fired == []
    assert fixed.resolved == ["performance-drop"]
    assert _by_rule(project)["performance-drop"].status == "resolved"
    assert mloop.monitoring.alerts(open_only=True) == []
    # the public report says the same
    report = mloop.monitoring.performance("churn", window="1h", min_labels=10)
    (version,) = report.versions
    assert version.uri == "models:/churn/1" and version.labelled == 150
    assert version.metrics["accuracy"] > 0.9 and version.drops == []


def test_shifted_inputs_drift_and_alert(served):
    project = served.project
    shifted = X.iloc[SERVE[:150]].copy()
    for column in ("mean area", "mean radius", "worst area", "mean perimeter"):
        shifted[column] = shifted[column] * 3
    served.log(shifted)
    (result,) = runner.check(project, parse_config({"rules": [
        {"name": "data-drift", "signal": "drift.dataset", "severity": "warning"},
        {"name": "some-drift", "signal": "drift.share", "op": ">", "threshold": 0.0}]}))
    assert result.signals["drift.share"] > 0
    assert result.drift.reference["name"] == "data:/train@1"
    assert result.drift.current["name"] == "serving:churn/1"
    assert set(result.drift.drifted_columns) >= {"mean area", "mean radius"}
    assert result.signals["drift.dataset"] == 0.0  # 4 of 30 columns: under half
    fired = {a.rule: a for a in result.fired}
    assert set(fired) == {"some-drift"}
    assert "drifted columns: " in fired["some-drift"].message
    assert fired["some-drift"].value == result.signals["drift.share"]
    # the default rules: dataset drift at half the columns
    shifted = X.iloc[SERVE[:150]] * 3
    served.log(shifted)
    (result,) = mloop.monitoring.check()
    assert result.signals["drift.dataset"] == 1.0 and result.predictions == 300
    alert = _by_rule(project)["data-drift"]
    assert (alert.severity, alert.status) == ("warning", "open")
    assert alert.signal == "drift.dataset" and alert.subject == "models:/churn/1"


def test_a_drift_column_rule_from_monitoring_yaml(served_sqlite):
    served = served_sqlite
    project = served.project
    (project.root / ".mloop" / "monitoring.yaml").write_text(
        "models: [churn]\n"
        "rules:\n"
        "  - name: area-moved\n"
        "    signal: drift.column.mean area\n"
        "    threshold: 1\n"
        "    severity: critical\n"
        "    window: 2h\n"
        "  - name: radius-moved\n"
        "    signal: drift.column.mean radius\n"
        "    threshold: 1\n")
    shifted = X.iloc[SERVE[:150]].copy()
    shifted["mean area"] = shifted["mean area"] * 3
    served.log(shifted)
    (result,) = mloop.monitoring.check()
    assert result.signals["drift.column.mean area"] == 1.0
    assert result.signals["drift.column.mean radius"] == 0.0
    (alert,) = result.fired
    assert (alert.rule, alert.severity, alert.signal) == (
        "area-moved", "critical", "drift.column.mean area")
    assert set(_by_rule(project)) == {"area-moved"}
    assert mloop.monitoring.check(["fraud"]) == []  # nothing logged for it


def test_a_model_whose_run_read_no_data_has_no_drift_reference(sqlite_project):
    with mloop.start_run():
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
        mloop.log_model(model, input_example=X[:5], registered_name="bare", onnx=False)
    logger = PredictionLogger(sqlite_project.root / ".mloop" / "predictions")
    logger.log("bare", 1, "r1", frame=X[:5], pred=model.predict(X[:5]), proba=None,
               latency_ms=1.0)
    logger.close()
    (result,) = mloop.monitoring.check()
    assert result.drift is None and "drift.share" not in result.signals
    assert "no drift reference" in result.notes[0] and "reference:" in result.notes[0]
    assert result.signals["predictions.count"] == 5.0
    # with a reference file named in monitoring.yaml (absolute here), drift is tested
    ref = sqlite_project.root / "ref.csv"
    X.to_csv(ref, index=False)
    config = parse_config({"reference": {"bare": str(ref)}})
    (result,) = runner.check(sqlite_project, config)
    assert result.drift is not None and result.notes == []


def test_a_relative_reference_file_is_read_from_the_project_root(sqlite_project, tmp_path,
                                                                  monkeypatch):
    with mloop.start_run():
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
        mloop.log_model(model, input_example=X[:5], registered_name="bare", onnx=False)
    logger = PredictionLogger(sqlite_project.root / ".mloop" / "predictions")
    logger.log("bare", 1, "r1", frame=X[:50], pred=model.predict(X[:50]), proba=None,
               latency_ms=1.0)
    logger.close()
    X.to_csv(sqlite_project.root / "ref.csv", index=False)
    (sqlite_project.root / ".mloop" / "monitoring.yaml").write_text(
        "reference:\n  bare: ref.csv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (result,) = mloop.monitoring.check()
    assert result.notes == [] and result.drift is not None


def test_run_checks_and_prunes_on_schedule(served_sqlite):
    served = served_sqlite
    served.log(X.iloc[SERVE[:20]])
    seen = []
    runner.run(served.project, every_ms=10, on_check=seen.append, iterations=2)
    assert [len(r) for r in seen] == [1, 1]
    assert seen[0][0].to_dict()["model"] == "models:/churn/1"
    assert runner.monitored_models(served.project, load_config(served.project.root)) == [
        "churn"]
    assert runner.monitored_models(served.project, parse_config({"models": ["x"]})) == ["x"]


def test_prune_deletes_old_segments_and_feedback(served):
    project = served.project
    folder = project.root / ".mloop" / "predictions" / "churn" / "1"
    served.log(X.iloc[SERVE[:20]])
    served.label(wrong_share=0.0)
    (new,) = folder.glob("*.parquet")
    now = now_ms()
    old = folder / f"{now - 3 * DAY}-deadbeef.parquet"
    new.rename(old)  # the same rows, written three days ago
    served.log(X.iloc[SERVE[20:30]])
    from sqlalchemy import update

    from mloop.store.schema import feedback

    with project.store.write() as conn:  # the first request's labels arrived long ago
        conn.execute(update(feedback).where(feedback.c.request_id == served.requests[0][0])
                     .values(created_at=now - 3 * DAY))
    assert len(list(folder.glob("*.parquet"))) == 2
    size = old.stat().st_size
    done = runner.prune(project, DAY, now=now)
    assert (done.segments, done.bytes, done.feedback) == (1, size, 10)
    assert not old.exists() and len(list(folder.glob("*.parquet"))) == 1
    assert len(read_predictions(project.root / ".mloop" / "predictions", "churn")) == 10
    assert len(F.read(project, 0)) == 10
    assert runner.prune(project, DAY, now=now) == runner.PruneResult(0, 0, 0)
    everything = runner.prune(project, DAY, now=now + 2 * DAY)
    assert everything.segments == 1 and everything.feedback == 10
    assert list(folder.glob("*.parquet")) == []
    assert F.read(project, 0).empty
    # a file that is not a segment is left alone
    stray = folder / "notes.parquet"
    stray.write_bytes(b"")
    runner.prune(project, DAY, now=now + 10 * DAY)
    assert stray.exists()
    os.remove(stray)


def test_run_survives_a_broken_edit_of_monitoring_yaml(served_sqlite):
    served = served_sqlite
    served.log(X.iloc[SERVE[:20]])
    path = served.project.root / ".mloop" / "monitoring.yaml"
    rounds = []

    def edit(results):
        rounds.append(results)
        path.write_text("rules: [\n  - oops")  # someone saves a half-written file

    runner.run(served.project, every_ms=10, on_check=edit, iterations=2)
    assert len(rounds) == 2


def test_a_stray_file_in_the_log_folder_does_not_break_checks(served_sqlite):
    served = served_sqlite
    served.log(X.iloc[SERVE[:20]])
    folder = served.project.root / ".mloop" / "predictions" / "churn" / "1"
    (folder / "notes.parquet").write_bytes(b"")
    (result,) = mloop.monitoring.check()
    assert result.predictions == 20


def test_a_failing_check_is_retried_or_raised_when_strict(sqlite_project, monkeypatch):
    from mloop.errors import CheckFailedError, ServiceUnavailableError

    calls = []

    def broken(*_args, **_kwargs):
        calls.append(1)
        raise ServiceUnavailableError("the prediction log cannot be read")

    monkeypatch.setattr(runner, "check", broken)
    runner.run(sqlite_project, every_ms=10, iterations=2)  # logged, tried again
    assert len(calls) == 2
    with pytest.raises(CheckFailedError, match="monitoring check failed: the prediction log"):
        runner.run(sqlite_project, iterations=1, strict=True)
