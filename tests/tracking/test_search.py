"""Search semantics on SQLite and PostgreSQL, checked against a pandas oracle."""

import pytest

import mloop


@pytest.fixture
def populated(project):
    rows = []
    for i in range(40):
        model = ["logreg", "rf", "svm"][i % 3]
        with mloop.start_run(experiment="s" if i < 30 else "other", name=f"run{i:02d}",
                             tags={"team": "risk" if i % 2 else "ops"}) as run:
            mloop.log_params({"model": model, "C": i % 5})
            acc = (i * 37 % 100) / 100
            mloop.log_metrics({"acc": acc, "loss": 1 - acc})
            if i % 4 == 0:
                mloop.log_metric("extra", i)
        rows.append({"run_id": run.id, "i": i, "model": model, "acc": acc,
                     "team": "risk" if i % 2 else "ops", "exp": "s" if i < 30 else "other",
                     "C": str(i % 5)})
    return rows


def _ids(df):
    return set(df["run_id"])


@pytest.mark.parametrize(("flt", "oracle"), [
    ("metrics.acc > 0.5 and params.model = 'logreg'",
     lambda r: r["acc"] > 0.5 and r["model"] == "logreg"),
    ("metrics.acc <= 0.3 or tags.team = 'ops'", lambda r: r["acc"] <= 0.3 or r["team"] == "ops"),
    ("params.model IN ('rf', 'svm') and metrics.loss < 0.5",
     lambda r: r["model"] in ("rf", "svm") and 1 - r["acc"] < 0.5),
    ("params.model NOT IN ('rf')", lambda r: r["model"] != "rf"),
    ("attributes.name LIKE 'run1%'", lambda r: 10 <= r["i"] <= 19),
    ("attributes.name ILIKE 'RUN1%'", lambda r: 10 <= r["i"] <= 19),
    ("metrics.extra >= 0", lambda r: r["i"] % 4 == 0),
    ("metrics.extra = null", lambda r: r["i"] % 4 != 0),
    ("params.C > '2'", lambda r: r["C"] > "2"),
    ("attributes.experiment = 'other'", lambda r: r["exp"] == "other"),
    ("attributes.status = 'FINISHED' and metrics.acc != 0.37", lambda r: r["acc"] != 0.37),
])
def test_filters_match_oracle(populated, flt, oracle):
    df = mloop.search_runs(filter=flt, max_results=None)
    assert _ids(df) == {r["run_id"] for r in populated if oracle(r)}


def test_order_by_metric_and_param(populated):
    df = mloop.search_runs(experiment="s", order_by=["metrics.acc DESC"], max_results=None)
    accs = df["metrics.acc"].tolist()
    assert accs == sorted(accs, reverse=True) and len(df) == 30
    df = mloop.search_runs(experiment="s", order_by=["params.model", "metrics.acc"],
                           max_results=None)
    pairs = list(zip(df["params.model"], df["metrics.acc"], strict=True))
    assert pairs == sorted(pairs)


def test_missing_metric_sorts_last(populated):
    df = mloop.search_runs(order_by=["metrics.extra DESC"], max_results=None)
    assert df["metrics.extra"].iloc[:10].notna().all()
    assert df["metrics.extra"].iloc[10:].isna().all()


def test_pagination_visits_every_run_once(populated):
    seen, token = [], None
    while True:
        page = mloop.search_runs(order_by=["metrics.acc"], max_results=7, page_token=token)
        seen += page["run_id"].tolist()
        token = page.attrs["next_page_token"]
        if token is None:
            break
    assert len(seen) == 40 and len(set(seen)) == 40


def test_columns_and_types(populated):
    df = mloop.search_runs(experiment="s", max_results=3)
    assert list(df.columns[:8]) == ["run_id", "experiment", "name", "status", "start_time",
                                    "end_time", "parent_id", "user"]
    assert {"metrics.acc", "params.model", "tags.team"} <= set(df.columns)
    assert str(df["start_time"].dtype).startswith("datetime64")
    assert df["metrics.acc"].dtype == "float64"
    assert df["name"].tolist() == ["run29", "run28", "run27"]  # newest first


def test_bad_page_token(populated):
    with pytest.raises(mloop.MloopError, match="page_token"):
        mloop.search_runs(page_token="garbage!")


def test_filter_values_are_bound_not_interpolated(populated):
    df = mloop.search_runs(filter="params.model = 'x'' OR 1=1 --'")
    assert df.empty
