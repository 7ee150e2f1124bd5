"""Model cards filled from recorded evaluations (issue 14 §5): API and CLI."""

import json

import pytest
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.tree import DecisionTreeClassifier

import mloop
from mloop.core.clock import format_ms
from mloop.registry import card
from tests.cli.test_cli import run_cli

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
FRAME = X.iloc[:, :4].assign(target=Y)


@pytest.fixture
def project(sqlite_project):
    """`tree/1` trained on train@1 by a run that logged no metric; holdout@1 held out."""
    root = sqlite_project.root
    FRAME.iloc[:400].to_csv(root / "train.csv", index=False)
    FRAME.iloc[400:].to_csv(root / "holdout.csv", index=False)
    mloop.data.add(root / "train.csv", name="train")
    mloop.data.add(root / "holdout.csv", name="holdout")
    with mloop.start_run(experiment="cards"):
        rows = mloop.data.load("train@1")
        model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(
            rows.drop(columns="target"), rows.target)
        mloop.log_model(model, input_example=rows.drop(columns="target")[:3],
                        registered_name="tree", onnx=False)
    return sqlite_project


def _front(text):
    return yaml.safe_load(text.split("---")[1])


def test_no_metrics_and_no_evaluation_means_no_model_index(project):
    built = card.build(project, "tree/1")
    assert built.evaluations == [] and "model-index" not in _front(card.to_hf(built))
    assert {"Metrics", "Evaluation data", "Quantitative analyses"} <= set(built.missing())


def test_evaluations_fill_the_card_and_the_model_index(project):
    first = mloop.evaluate("tree/1", "holdout@1", "target", resamples=20)
    again = mloop.evaluate("models:/tree/1", "holdout@1", "target", resamples=20)
    other = mloop.evaluate("tree", FRAME.iloc[450:], "target",
                           resamples=0)
    built = card.build(project, "tree/1")
    # the newest evaluation per evaluation data, newest first
    assert [e.data for e in built.evaluations] == [other.data, "data:/holdout@1"]
    holdout = built.evaluations[1]
    assert holdout.created_at == again.created_at != first.created_at
    assert holdout.rows == len(FRAME) - 400 and holdout.overlap == 0.0
    assert "Metrics" not in built.missing() and "Evaluation data" not in built.missing()
    md = card.to_markdown(built)
    when = format_ms(again.created_at)
    assert f"**On `data:/holdout@1`** ({holdout.rows:,} rows, evaluated {when} UTC)" in md
    acc = again.metrics["accuracy"]
    assert f"| accuracy | {acc['value']:.4g} | {acc['low']:.4g} to {acc['high']:.4g} |" in md
    assert f"- `data:/holdout@1`: {holdout.rows:,} rows, evaluated {when} UTC" in md
    (index,) = _front(card.to_hf(built))["model-index"]
    assert index["name"] == "tree" and len(index["results"]) == 2
    result = index["results"][1]
    assert result["task"] == {"type": "tabular-classification"}
    assert result["dataset"] == {"name": "holdout@1", "type": "holdout", "revision": "1",
                                 "args": {"evaluated_at": when.replace(" ", "T") + "Z",
                                          "rows": holdout.rows}}
    metrics = {m["type"]: m for m in result["metrics"]}
    assert metrics["accuracy"] == {"type": "accuracy", "value": acc["value"],
                                   "name": "accuracy"}
    # a spec's own sections still win over the generated ones
    spec = card.build(project, "tree/1", {"evaluation_data": "The March holdout."})
    assert spec.sections["evaluation_data"] == "The March holdout."
    html = card.to_html(built)
    assert "<p><strong>On <code>data:/holdout@1</code></strong> (" in html
    assert "<script" not in html and "**" not in html


def test_an_evaluation_of_the_logged_model_by_a_short_run_id_counts(project):
    from mloop.registry.models import get_version

    version = get_version(project, "tree/1")
    report = mloop.evaluate(f"runs:/{version.run_id[-8:]}/model", "holdout@1", "target",
                            resamples=0)
    (only,) = card.build(project, "tree/1").evaluations
    assert only.created_at == report.created_at and only.data == "data:/holdout@1"


def test_testing_on_the_training_data_is_said_on_the_card(project):
    mloop.evaluate("tree/1", "train@1", "target", resamples=0)
    (only,) = card.build(project, "tree/1").evaluations
    assert only.overlap == 1.0
    assert "100% of its rows are also in the training data" in card.to_markdown(
        card.build(project, "tree/1"))


def test_the_cli_card_shows_evaluations_and_hostile_file_names(project):
    root = project.root
    hostile = root / "ev[b] [bold]x[red] :smile:.csv"
    FRAME.iloc[420:].to_csv(hostile, index=False)
    tested = run_cli("test", "tree/1", "--data", str(hostile), "--target", "target",
                     "--resamples", "0", "--json", cwd=root, check=False)
    assert tested.returncode in (0, 1), tested.stderr
    report = json.loads(tested.stdout)
    md = run_cli("models", "card", "tree/1", cwd=root).stdout
    assert f"**On `{hostile}`**" in md and "| accuracy |" in md
    hf = run_cli("models", "card", "tree/1", "-f", "hf", cwd=root).stdout
    (result,) = _front(hf)["model-index"][0]["results"]
    assert result["dataset"]["name"] == str(hostile) and result["dataset"]["type"] == "tabular"
    assert {m["type"]: m["value"] for m in result["metrics"]}["accuracy"] == \
        report["metrics"]["accuracy"]["value"]
    check = run_cli("models", "card", "tree/1", "--check", cwd=root, check=False)
    assert "empty: Evaluation data" not in check.stdout
    assert "empty: Quantitative analyses" not in check.stdout
