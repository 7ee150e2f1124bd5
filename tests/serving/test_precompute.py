"""Precomputed predictions with Dask: local threads and a real scheduler, both backends."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from mloop.core.humanize import iso_ms
from mloop.errors import InvalidInputError, NotFoundError
from tests.cli.test_cli import run_cli

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)


@pytest.fixture
def scored(project, tmp_path):
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    with mloop.start_run():
        mloop.log_model(model, input_example=X[:5], registered_name="churn", onnx=False)
    rows = X.assign(customer_id=np.arange(len(X)) + 1000)
    path = tmp_path / "customers.parquet"
    rows.to_parquet(path)
    return model, rows, path


def test_batch_predict_lookup_and_incremental_runs(project, scored, tmp_path):
    model, rows, path = scored
    first = mloop.batch_predict("models:/churn/1", str(path), key="customer_id")
    assert (first.rows, first.skipped, first.table) == (len(rows), 0, "churn")
    found = mloop.lookup("churn", 1003)
    expected = model.predict_proba(X.iloc[[3]])[0]
    assert found["prediction"] == int(model.predict(X.iloc[[3]])[0])
    np.testing.assert_allclose(found["proba"], expected)
    more = pd.concat([rows, rows.iloc[:10].assign(customer_id=lambda d: d.customer_id + 10**6)])
    more.to_csv(tmp_path / "more.csv", index=False)
    again = mloop.batch_predict("models:/churn/1", str(tmp_path / "more.csv"),
                                key="customer_id")
    assert (again.rows, again.skipped) == (10, len(rows))  # only the new keys
    assert mloop.batch_predict("models:/churn/1", str(path), key="customer_id",
                               full=True).rows == len(rows)
    with pytest.raises(NotFoundError, match="No precomputed prediction"):
        mloop.lookup("churn", "nobody")
    with pytest.raises(NotFoundError, match="No complete batch"):
        mloop.lookup("fraud", 1)
    with pytest.raises(InvalidInputError, match="no key column 'id'"):
        mloop.batch_predict("models:/churn/1", str(path), key="id")
    with pytest.raises(InvalidInputError, match="No input"):
        mloop.batch_predict("models:/churn/1", str(tmp_path / "nope.parquet"), key="id")


def test_a_new_version_writes_alongside_and_lookups_follow_it(project, scored):
    *_, path = scored
    mloop.batch_predict("models:/churn/1", str(path), key="customer_id")
    other = LogisticRegression(C=0.001, max_iter=500).fit(X, Y)
    with mloop.start_run():
        mloop.log_model(other, input_example=X[:5], registered_name="churn", onnx=False)
    mloop.batch_predict("models:/churn/2", str(path), key="customer_id", table="churn")
    assert mloop.lookup("churn", 1000)["model"] == "models:/churn/2"
    assert mloop.lookup("churn", 1000, model="models:/churn/1")["model"] == "models:/churn/1"


def test_on_a_dask_scheduler_and_through_the_cli(sqlite_project, tmp_path):
    from distributed import LocalCluster

    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    with mloop.start_run():
        mloop.log_model(model, input_example=X[:5], registered_name="churn", onnx=False)
    path = tmp_path / "c.parquet"
    X.assign(customer_id=np.arange(len(X))).to_parquet(path)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        result = mloop.batch_predict("models:/churn/1", str(path), key="customer_id",
                                     scheduler=cluster.scheduler_address, full=True)
    assert result.rows == len(X)
    out = run_cli("batch", "lookup", "churn", "7", "--json", cwd=sqlite_project.root)
    assert '"prediction"' in out.stdout
    # times as ISO 8601 (the API keeps milliseconds)
    stamp = json.loads(out.stdout)["created_at"]
    assert stamp == iso_ms(mloop.lookup("churn", 7)["created_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", stamp)
    shown = run_cli("batch", "lookup", "churn", "7", cwd=sqlite_project.root).stdout
    assert stamp in shown
    cli = run_cli("batch", "predict", "models:/churn/1", "-i", str(path), "-k", "customer_id",
                  "--table", "scores", cwd=sqlite_project.root)
    assert "scores:" in cli.stdout and "rows/s" in cli.stdout
    down = run_cli("batch", "predict", "models:/churn/1", "-i", str(path), "-k", "customer_id",
                   "--scheduler", "tcp://127.0.0.1:1", cwd=sqlite_project.root, check=False)
    assert down.returncode == 69 and "Dask scheduler" in down.stderr  # unavailable
