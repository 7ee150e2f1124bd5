"""``mloop models …`` through the real entry point."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from tests.cli.test_cli import run_cli


@pytest.fixture
def registered(sqlite_project):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    path = sqlite_project.root / "train.csv"
    X.assign(target=y).to_csv(path, index=False)
    mloop.data.add(path, name="train")
    for C in (1.0, 0.1):
        with mloop.start_run(experiment="churn"):
            frame = mloop.data.load("train@1")
            mloop.log_param("C", C)
            model = make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(
                frame.drop(columns="target"), frame.target)
            mloop.log_metric("accuracy", model.score(X, y))
            mloop.log_model(model, input_example=X[:5], registered_name="churn")
    mloop.flush()
    return sqlite_project.root, model, X


def test_list_versions_show_alias_and_governance(registered):
    root, _, _ = registered
    listed = json.loads(run_cli("models", "list", "--json", cwd=root).stdout)
    assert [(m["name"], m["version"]) for m in listed] == [("churn", 2)]
    assert "churn@champion → version 1" in run_cli("models", "alias", "churn", "champion", "1",
                                                    cwd=root).stdout
    versions = json.loads(run_cli("models", "versions", "churn", "--json", cwd=root).stdout)
    assert [(v["version"], v["aliases"]) for v in versions] == [(2, []), (1, ["champion"])]
    assert "approved" in run_cli("models", "approve", "churn/2", "-m", "passed review",
                                 cwd=root).stdout
    shown = json.loads(run_cli("models", "show", "churn/2", "--json", cwd=root).stdout)
    assert shown["status"] == "approved" and shown["onnx"] is True
    assert shown["signature"]["kind"] == "table"
    assert any(h["action"] == "approved" and h["message"] == "passed review"
               for h in shown["history"])
    refused = run_cli("models", "delete", "churn/1", cwd=root, check=False)
    assert refused.returncode == 4 and "aliased as champion" in refused.stderr
    assert run_cli("models", "archive", "churn/1", cwd=root).returncode == 0
    assert "ticket=ML-42" in run_cli("models", "tag", "churn/1", "ticket", "ML-42",
                                     cwd=root).stdout
    assert json.loads(run_cli("models", "show", "churn/1", "--json", cwd=root).stdout)[
        "tags"] == {"ticket": "ML-42"}
    history = json.loads(run_cli("models", "history", "churn", "--json", cwd=root).stdout)
    assert [h["action"] for h in history][-3:] == ["alias", "approved", "archived"]
    missing = run_cli("models", "show", "churn/9", cwd=root, check=False)
    assert missing.returncode == 3 and "no such version" in missing.stderr
    bad = run_cli("models", "alias", "churn", "9x", "1", cwd=root, check=False)
    assert bad.returncode == 2 and "identifier" in bad.stderr


def test_compare_and_lineage(registered):
    root, _, _ = registered
    out = json.loads(run_cli("models", "compare", "churn/1", "churn/2", "--json",
                             cwd=root).stdout)
    rows = {r["field"]: (r["a"], r["b"]) for r in out["rows"]}
    assert rows["params.C"] == ("1.0", "0.1")
    graph = json.loads(run_cli("lineage", "models:/churn/2", "--json", cwd=root).stdout)
    assert [e["src"] for e in graph["from"] if e["hop"] == 2] == ["data:/train@1"]
    run = graph["from"][0]["src"]  # runs:/<32 hex digits>; the text shows 12, as tables do
    text = run_cli("lineage", "models:/churn/2", cwd=root).stdout.splitlines()
    assert text == ["models:/churn/2", f"  ← runs:/{run[-12:]}  (produced models:/churn/2)",
                    f"    ← data:/train@1  (input to runs:/{run[-12:]})"]
    shown = run_cli("models", "show", "churn/2", cwd=root).stdout
    assert f"from runs:/{run[-12:]}  (produced models:/churn/2)" in shown
    data = run_cli("data", "show", "train@1", cwd=root).stdout
    assert f"to   runs:/{run[-12:]}  (reads data:/train@1)" in data


def test_model_cards(registered, tmp_path):
    root, _, _ = registered
    check = run_cli("models", "card", "churn/1", "--check", cwd=root, check=False)
    assert check.returncode == 1 and "empty: Intended use" in check.stdout
    spec = tmp_path / "card.yaml"
    spec.write_text("intended_use: Rank customers by churn risk.\nfactors: Region.\n"
                    "evaluation_data: The March holdout.\nethical_considerations: None known.\n"
                    "caveats_and_recommendations: Retrain monthly.\nlicense: apache-2.0\n")
    assert run_cli("models", "card", "churn/1", "--check", "--spec", str(spec),
                   cwd=root).returncode == 0
    md = run_cli("models", "card", "churn/1", "--spec", str(spec), cwd=root).stdout
    assert "## Training data" in md and "data:/train@1" in md and "| accuracy |" in md
    out = tmp_path / "card.html"
    run_cli("models", "card", "churn/1", "-f", "html", "-o", str(out), cwd=root)
    assert out.read_text().startswith("<!doctype html>") and "<script" not in out.read_text()
    hf = run_cli("models", "card", "churn/1", "-f", "hf", "--spec", str(spec), cwd=root).stdout
    import yaml

    front = yaml.safe_load(hf.split("---")[1])
    assert front["license"] == "apache-2.0"
    assert front["model-index"][0]["results"][0]["metrics"][0]["type"] == "accuracy"
    bad = tmp_path / "bad.yaml"
    bad.write_text("intended_usage: typo\n")
    wrong = run_cli("models", "card", "churn/1", "--spec", str(bad), cwd=root, check=False)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "bad.yaml: intended_usage: unknown key; did you mean 'intended_use'?" in wrong.stderr
    bad.write_text("factors:\n  region: north\n")  # a section is Markdown text
    wrong = run_cli("models", "card", "churn/1", "--spec", str(bad), cwd=root, check=False)
    assert wrong.returncode == 2 and "factors: expected a string, got a mapping" in wrong.stderr


def test_export_onnx_and_an_installable_package(registered, tmp_path):
    root, model, X = registered
    onnx_file = tmp_path / "churn.onnx"
    run_cli("models", "export", "churn/2", "-f", "onnx", "-o", str(onnx_file), cwd=root)
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    labels = session.run(None, {session.get_inputs()[0].name: X.to_numpy()})[0]
    np.testing.assert_array_equal(labels, model.predict(X))
    pkg = tmp_path / "churn-model"
    run_cli("models", "export", "churn/2", "-f", "package", "-o", str(pkg), cwd=root)
    assert "churn-model" in (pkg / "pyproject.toml").read_text()
    code = ("import json, sys, churn_model\n"
            "rows = json.loads(sys.stdin.read())\n"
            "print(json.dumps(churn_model.predict(rows).tolist()), churn_model.__version__)")
    env = dict(os.environ, PYTHONPATH=str(pkg / "src"))
    out = subprocess.run([sys.executable, "-c", code], input=X[:20].to_json(orient="records"),
                         capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    preds, version = out.stdout.strip().rsplit(" ", 1)
    assert json.loads(preds) == model.predict(X[:20]).tolist() and version == "2.0.0"
    again = run_cli("models", "export", "churn/2", "-f", "package", "-o", str(pkg), cwd=root,
                    check=False)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_register_a_logged_model_from_the_cli(sqlite_project):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with mloop.start_run() as run:
        mloop.log_model(LogisticRegression(max_iter=50).fit(X.iloc[:, :3], y),
                        input_example=X.iloc[:5, :3], onnx=False)
    root = sqlite_project.root
    out = run_cli("models", "register", f"runs:/{run.id[-12:]}/model", "fraud", cwd=root)
    assert out.stdout.startswith("Registered models:/fraud/1 (sklearn) from runs:/")
    again = json.loads(run_cli("models", "register", f"runs:/{run.id}/model", "fraud",
                               "-d", "the same, again", "--json", cwd=root).stdout)
    assert again["version"] == 2 and again["description"] == "the same, again"
    assert mloop.get_model_version("fraud/2").source == f"runs:/{run.id}/model"
    bad = run_cli("models", "register", "models:/fraud/1", "x", cwd=root, check=False)
    assert bad.returncode == 2 and "runs:/<run_id>/model" in bad.stderr


def test_reject_needs_a_reason_and_is_audited(registered):
    root, _, _ = registered
    missing = run_cli("models", "reject", "churn/2", cwd=root, check=False)
    assert missing.returncode == 2 and "--message" in missing.stderr
    blank = run_cli("models", "reject", "churn/2", "-m", "  ", cwd=root, check=False)
    assert blank.returncode != 0 and "why" in blank.stderr.lower()
    assert "rejected" in run_cli("models", "reject", "churn/2", "-m", "leaks ids",
                                 cwd=root).stdout
    history = json.loads(run_cli("models", "history", "churn", "--json", cwd=root).stdout)
    assert history[-1]["action"] == "rejected" and history[-1]["message"] == "leaks ids"
