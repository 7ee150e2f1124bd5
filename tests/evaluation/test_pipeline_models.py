"""Models trained in a pipeline are first-class (issue 14 §3): a signature inferred from
the step's input data, evaluation data with ids and the target tested without a crash."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import mloop
from mloop.errors import InvalidInputError
from mloop.pipelines import values
from mloop.pipelines.engine import run_pipeline
from mloop.pipelines.registry import find_pipeline
from mloop.pipelines.step import Dataset

PIPELINES = """
    import pandas as pd
    import mloop

    @mloop.step(outputs="model")
    def train(raw: mloop.Dataset) -> mloop.Model:
        from sklearn.linear_model import LogisticRegression

        frame = raw.load()
        X = frame.drop(columns=["patient_id", "target"])
        return LogisticRegression(max_iter=500).fit(X, frame["target"])

    diabetes = mloop.Pipeline("diabetes", steps=[train])
"""


def _frame(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    glucose = rng.normal(100, 20, rows)
    bmi = rng.normal(28, 4, rows)
    return pd.DataFrame({"patient_id": [f"p{i:04d}" for i in range(rows)],
                         "glucose": glucose, "bmi": bmi,
                         "target": (glucose + 2 * bmi > 156).astype(int)})


@pytest.fixture
def trained(sqlite_project, tmp_path):
    """diabetes/1, trained by a pipeline on rows with an id column and the target."""
    csv = sqlite_project.root / "diabetes.csv"
    _frame().to_csv(csv, index=False)
    mloop.data.add(csv, name="diabetes", project=sqlite_project)
    (sqlite_project.root / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    run = run_pipeline(sqlite_project, find_pipeline(sqlite_project, "diabetes"),
                       inputs={"raw": "diabetes@latest"})
    assert run.status == "succeeded", run.error
    mloop.register_model(run.models[-1], "diabetes", project=sqlite_project)
    test_csv = tmp_path / "test.csv"
    _frame(60, seed=1).to_csv(test_csv, index=False)
    return sqlite_project, test_csv


def test_a_pipeline_model_has_a_signature_and_evaluation_leaves_out_ids(trained):
    project, test_csv = trained
    loaded = mloop.load_model("models:/diabetes/1", project=project)
    assert loaded.signature is not None
    assert loaded.signature.columns == (("glucose", "float64"), ("bmi", "float64"))
    report = mloop.evaluate("diabetes/1", str(test_csv), target="target", resamples=0,
                            project=project)
    assert report.rows == 60 and report.metrics["accuracy"]["value"] > 0.7
    assert report.notes == ["Columns the model does not take were left out of its input: "
                            "patient_id (the target 'target' is never an input)."]
    assert report.to_dict()["notes"] == report.notes
    lacking = pd.read_csv(test_csv).drop(columns=["bmi"])
    with pytest.raises(InvalidInputError, match=r"lacks the model's input column.* bmi"):
        mloop.evaluate("diabetes/1", lacking, target="target", project=project)


def _cli(project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    env["MLOOP_STORE_URI"] = project.settings.store_uri
    return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=180)


def test_mloop_test_with_extra_columns_works_and_missing_ones_exit_2(trained, tmp_path):
    project, test_csv = trained
    out = _cli(project, "test", "diabetes/1", "--data", str(test_csv), "--target", "target",
               "--resamples", "0")
    assert out.returncode in (0, 1), out.stderr  # the gate's decision, not a crash
    assert "Traceback" not in out.stderr and "unseen at fit time" not in out.stderr
    assert out.stderr.count("patient_id") == 1  # the note, once
    lacking = tmp_path / "lacking.csv"
    pd.read_csv(test_csv).drop(columns=["glucose"]).to_csv(lacking, index=False)
    bad = _cli(project, "test", "diabetes/1", "--data", str(lacking), "--target", "target")
    assert bad.returncode == 2, bad.stderr
    assert "glucose" in bad.stderr and "Traceback" not in bad.stderr


def test_the_example_comes_from_an_input_frame_or_a_loaded_dataset():
    from sklearn.linear_model import LinearRegression

    frame = _frame(30)
    model = LinearRegression().fit(frame[["bmi", "glucose"]], frame["target"])
    example = values.input_example(model, {"rows": frame, "n": 3})
    assert list(example.columns) == ["bmi", "glucose"] and len(example) == 20
    handle = Dataset("d@1", "data:/d@1", "x")
    assert values.input_example(model, {"raw": handle}) is None  # never loaded
    handle.sample = frame.head(5)
    assert list(values.input_example(model, {"raw": handle}).columns) == ["bmi", "glucose"]
    assert values.input_example(model, {"rows": frame[["bmi"]]}) is None  # lacks one
    on_arrays = LinearRegression().fit(frame[["bmi"]].to_numpy(), frame["target"])
    assert values.input_example(on_arrays, {"rows": frame}) is None  # names unknown


def test_without_a_signature_the_estimators_feature_names_decide(sqlite_project):
    from sklearn.linear_model import LogisticRegression

    frame = _frame(80)
    model = LogisticRegression(max_iter=500).fit(frame[["glucose", "bmi"]], frame["target"])
    with mloop.start_run(project=sqlite_project) as run:
        info = mloop.log_model(model, name="m")  # no input example: no signature
    assert info.signature is None
    shuffled = frame[["target", "bmi", "patient_id", "glucose"]]
    report = mloop.evaluate(f"runs:/{run.id}/m", shuffled, target="target", resamples=0,
                            record=False, project=sqlite_project)
    assert report.metrics["accuracy"]["value"] > 0.7
    assert report.notes and "patient_id" in report.notes[0]
    with pytest.raises(InvalidInputError, match=r"lacks the model's input column.* glucose"):
        mloop.evaluate(f"runs:/{run.id}/m", frame.drop(columns=["glucose"]), target="target",
                       record=False, project=sqlite_project)
