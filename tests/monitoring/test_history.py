"""A version's monitoring over time: drift per window of equal rows against the version's
reference, the latest report over the whole range, and live metrics per window."""

import pytest

from mloop.core.clock import now_ms
from mloop.monitoring.datadrift import ColumnDrift, DriftStatus
from mloop.monitoring.history import column_score, drift_history, live_history
from tests.monitoring.test_runner import SERVE, Served, X


@pytest.fixture
def served(sqlite_project):
    served = Served(sqlite_project)
    served.log(X.iloc[SERVE[:120]])  # as trained: no drift
    served.log(X.iloc[SERVE[120:]] * 1.5)  # then every measurement half as large again
    return served


def test_drift_rises_window_by_window(served):
    history = drift_history(served.project, "churn", 1, windows=4)
    assert history.reference == "data:/train@1" and history.rows == len(SERVE)
    assert len(history.windows) == 4 and sum(w.rows for w in history.windows) == len(SERVE)
    shares = [w.report.share_drifted for w in history.windows]
    assert shares[0] < 0.2 and shares[-1] > 0.8
    assert [w.end_ms for w in history.windows] == sorted(w.end_ms for w in history.windows)
    assert history.latest is not None and history.latest.current["rows"] == len(SERVE)
    assert history.columns == list(X.columns)
    times, scores, limits, what = history.series("mean radius")
    assert what == "wasserstein" and len(times) == len(scores) == 4
    assert scores[-1] > limits[-1] == 0.1 and scores[-1] > 2 * scores[0]


def test_few_rows_make_one_window_and_unknown_versions_nothing(served):
    few = drift_history(served.project, "churn", 1, since_ms=now_ms() - 10**9, windows=50)
    assert len(few.windows) == len(SERVE) // 30  # 30 rows a window at least
    assert drift_history(served.project, "churn", 7).windows == []


def test_without_a_reference_the_history_says_why(sqlite_project):
    from mloop.serving.predlog import PredictionLogger, log_root

    logger = PredictionLogger(log_root(sqlite_project), flush_seconds=0.05)
    logger.log("loose", 1, "r1", frame=X.iloc[:40], pred=[0] * 40, proba=None,
               latency_ms=1.0)
    logger.close()
    history = drift_history(sqlite_project, "loose", 1)
    assert history.windows == [] and history.latest is None
    assert history.note and "monitoring.yaml" in history.note


def test_live_metrics_per_window_against_the_evaluation(served):
    served.label(wrong_share=0.0)
    live = live_history(served.project, "churn", 1, since_ms=0, until_ms=now_ms() + 1,
                        windows=3)
    assert live.overall is not None and live.overall.labelled == len(SERVE)
    accuracy = live.overall.criteria["accuracy"]
    assert accuracy["evaluated"] == pytest.approx(
        served.evaluation.metrics["accuracy"]["value"])
    assert len(live.windows) == 3 and sum(n for _, n, _ in live.windows) == len(SERVE)
    assert all(0 <= metrics["accuracy"] <= 1 for _, _, metrics in live.windows)


@pytest.mark.parametrize(("column", "expected"), [
    (ColumnDrift("a", "numeric", DriftStatus.DRIFT, "ks", 0.3, 0.001, 0.05,
                 {"method": "wasserstein", "value": 0.4, "threshold": 0.1}),
     (0.4, 0.1, "wasserstein")),
    (ColumnDrift("b", "numeric", DriftStatus.OK, "psi", 0.05, None, 0.2), (0.05, 0.2, "psi")),
    (ColumnDrift("c", "categorical", DriftStatus.OK, "chisquare", 3.0, 0.3, 0.05),
     (0.3, 0.05, "chisquare p-value")),
    (ColumnDrift("d", None, DriftStatus.NOT_TESTED), (None, None, "")),
])
def test_the_score_of_a_column(column, expected):
    assert column_score(column) == expected
