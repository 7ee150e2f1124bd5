"""The CLI, through the real ``mloop`` entry point."""

import json
import os
import subprocess
import sys

import click
import pytest

import mloop
from mloop._version import __version__
from mloop.cli import cli


def run_cli(*args, cwd, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    out = subprocess.run([sys.executable, "-m", "mloop", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def _commands(group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help():
    for path, cmd in _commands(cli):
        assert (cmd.help or "").strip(), f"`mloop {' '.join(path)}` has no help text"
        for param in cmd.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"option {param.opts} of `mloop {' '.join(path)}` lacks help"


def test_version(tmp_path):
    assert run_cli("--version", cwd=tmp_path).stdout.strip() == f"mloop, version {__version__}"


def test_outside_project_clear_error_no_traceback(tmp_path):
    out = run_cli("runs", "list", cwd=tmp_path, check=False)
    assert out.returncode == 2
    assert "mloop init" in out.stderr and "Traceback" not in out.stderr


@pytest.fixture
def logged(tmp_path):
    project = mloop.init(tmp_path / "p")
    with mloop.start_run(experiment="churn", name="a") as a:
        mloop.log_params({"C": 1, "model": "logreg"})
        mloop.log_metrics({"acc": 0.91, "odd": float("nan")})
        mloop.log_text("hi", "notes/hello.txt")
    with mloop.start_run(experiment="churn", name="b") as b:
        mloop.log_params({"C": 2, "model": "logreg"})
        mloop.log_metrics({"acc": 0.80})
    sub = project.root / "src" / "deep"
    sub.mkdir(parents=True)
    return project, a.id, b.id, sub


def test_init_then_list_from_subfolder(logged):
    _project, a, _b, sub = logged
    out = run_cli("runs", "list", "-e", "churn", "-o", "metrics.acc DESC", "--json", cwd=sub)
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[0]["metrics.odd"] == "NaN" and rows[0]["params.C"] == "1"
    assert rows[1]["params.C"] == "2"
    out = run_cli("runs", "list", "-f", "metrics.acc > 0.9", cwd=sub)
    assert a[-12:] in out.stdout and "0.91" in out.stdout


def test_show_compare_delete_restore_download(logged, tmp_path):
    _project, a, b, sub = logged
    shown = json.loads(run_cli("runs", "show", a[-8:], "--json", cwd=sub).stdout)
    assert shown["params"] == {"C": "1", "model": "logreg"} and shown["status"] == "FINISHED"
    assert shown["artifacts"][0]["path"] == "notes/hello.txt"
    text = run_cli("runs", "show", a, cwd=sub).stdout
    assert "Params" in text and "logreg" in text
    cmp = json.loads(run_cli("runs", "compare", a, b, "--json", cwd=sub).stdout)
    differs = {r["field"]: r["differs"] for r in cmp["rows"]}
    assert differs["params.C"] and not differs["params.model"]
    run_cli("runs", "delete", b, cwd=sub)
    listed = json.loads(run_cli("runs", "list", "--json", cwd=sub).stdout)
    assert [r["name"] for r in listed] == ["a"]
    run_cli("runs", "restore", b[-10:], cwd=sub)
    assert len(json.loads(run_cli("runs", "list", "--json", cwd=sub).stdout)) == 2
    run_cli("runs", "download", a, "notes", "-o", str(tmp_path / "dl"), cwd=sub)
    assert (tmp_path / "dl" / "notes" / "hello.txt").read_text() == "hi"
    exps = json.loads(run_cli("experiments", "list", "--json", cwd=sub).stdout)
    assert [(e["name"], e["runs"]) for e in exps] == [("churn", 2)]


def test_bad_filter_points_at_position(logged):
    *_, sub = logged
    out = run_cli("runs", "list", "-f", "metrics.acc >> 1", cwd=sub, check=False)
    assert out.returncode == 2 and "position 13" in out.stderr and "^" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_run_exit_code(logged):
    *_, sub = logged
    out = run_cli("runs", "show", "abcdef123456", cwd=sub, check=False)
    assert out.returncode == 3 and "No run" in out.stderr


def test_init_command(tmp_path):
    out = run_cli("init", "proj", cwd=tmp_path)
    assert "Initialised" in out.stdout
    assert (tmp_path / "proj" / ".mloop" / "config.toml").is_file()
    assert (tmp_path / "proj" / ".mloop" / "mloop.db").is_file()
    assert run_cli("init", "proj", cwd=tmp_path).returncode == 0


def test_demo_makes_a_project_and_prints_next_steps(tmp_path):
    out = run_cli("demo", cwd=tmp_path)
    assert "Next, try:" in out.stdout and "mloop runs list" in out.stdout
    demo_dir = tmp_path / "mloop-demo"
    runs = json.loads(run_cli("runs", "list", "-e", "demo-breast-cancer", "--json",
                              cwd=demo_dir).stdout)
    assert len(runs) == 5
    assert all(r["status"] == "FINISHED" for r in runs)
    assert sum(1 for r in runs if r["parent_id"]) == 4
    parent = next(r for r in runs if not r["parent_id"])
    steps = json.loads(run_cli("runs", "list", "-e", "breast-cancer-training", "--json",
                               cwd=demo_dir).stdout)
    assert sorted(r["name"] for r in steps if r["parent_id"]) == ["evaluate", "split", "train"]
    # the training pipeline ran, then ran again from its cache
    assert "split cached, train cached, evaluate cached" in out.stdout
    pipeline_runs = json.loads(run_cli("pipeline", "status", "--json", cwd=demo_dir).stdout)
    assert [r["steps"] for r in pipeline_runs] == [{"cached": 3}, {"ran": 3}]
    # model selection reads the training split: the parent run first, then each candidate
    graph = json.loads(run_cli("lineage", "breast-cancer-train@1", "--json",
                               cwd=demo_dir).stdout)
    first_hop = [e["dst"] for e in graph["to"] if e["hop"] == 1]
    assert first_hop[0] == f"runs:/{parent['run_id']}" and len(first_hop) == 5
    assert "models:/breast-cancer/1" in [e["dst"] for e in graph["to"] if e["hop"] == 2]
    model = json.loads(run_cli("models", "show", "breast-cancer@champion", "--json",
                               cwd=demo_dir).stdout)
    assert model["uri"] == "models:/breast-cancer/1" and model["aliases"] == ["champion"]
    # registered from the nested run that trained it, so the card has its C and metrics
    best = next(r for r in runs if r["parent_id"] and r["run_id"].endswith(
        out.stdout.split("Best: ")[1].split("run ")[1][:12]))
    back = json.loads(run_cli("lineage", "models:/breast-cancer@champion", "--json",
                              cwd=demo_dir).stdout)
    assert [(e["hop"], e["src"]) for e in back["from"]] == [
        (1, f"runs:/{best['run_id']}"), (2, "data:/breast-cancer-train@1")]
    card = run_cli("models", "card", "breast-cancer@champion", cwd=demo_dir).stdout
    assert "| C | `1.0` |" in card and "| accuracy |" in card and "| f1 |" in card
    # the suggested test uses the held-out split, which shares no row with the training one
    assert "--data breast-cancer-holdout@1 --target target" in out.stdout
    tested = json.loads(run_cli("test", "breast-cancer@champion", "--data",
                                "breast-cancer-holdout@1", "--target", "target",
                                "--resamples", "0", "--json", cwd=demo_dir).stdout)
    overlap = next(c for c in tested["checks"] if c["name"] == "data: train/test overlap")
    assert overlap["status"] == "pass" and overlap["value"] == 0
    # the fully cached pipeline run still has its lineage: its input, the runs it reused
    cached = json.loads(run_cli("lineage", pipeline_runs[0]["uri"], "--json",
                                cwd=demo_dir).stdout)
    assert [(e["src"], e["relation"]) for e in cached["from"]] == [
        ("data:/breast-cancer@1", "input")]
    assert sorted(e["relation"] for e in cached["to"] if e["hop"] == 1) == ["cached"] * 3
    _demo_fills_the_ui(out.stdout, demo_dir)
    again = run_cli("demo", cwd=tmp_path, check=False)  # would register duplicates
    assert again.returncode == 4 and "already holds the mloop demo" in again.stderr
    assert "--fresh" in again.stderr
    assert len(json.loads(run_cli("models", "versions", "breast-cancer", "--json",
                                  cwd=demo_dir).stdout)) == 2


def _demo_fills_the_ui(stdout, demo_dir):
    """What the UI's pages show: two raw data versions, a tested champion, a challenger,
    a canary with traffic and an analysis, labels for part of it, drift alerts."""
    assert "mloop ui" in stdout.split("Next, try:")[1]
    data = json.loads(run_cli("data", "log", "breast-cancer", "--json", cwd=demo_dir).stdout)
    assert sorted(v["version"] for v in data) == [1, 2]
    assert {v["version"]: v["rows"] for v in data} == {1: 569, 2: 581}
    champion = json.loads(run_cli("models", "show", "breast-cancer@champion", "--json",
                                  cwd=demo_dir).stdout)
    assert champion["evaluation"]["passed"] is True
    assert champion["evaluation"]["data"] == "data:/breast-cancer-holdout@1"
    challenger = json.loads(run_cli("models", "show", "breast-cancer@challenger", "--json",
                                    cwd=demo_dir).stdout)
    assert challenger["uri"] == "models:/breast-cancer/2"
    status = json.loads(run_cli("deploy", "status", "breast-cancer-live", "--window", "all",
                                "--json", cwd=demo_dir).stdout)
    assert status["revision"]["strategy"] == "canary"
    assert status["weights"] == {"stable": 50.0, "canary": 50.0}  # stepped by the analysis
    assert status["decision"]["verdict"] == "pass"
    labels = json.loads(run_cli("monitor", "feedback", "--json", cwd=demo_dir).stdout)
    assert labels["matched"] == {"breast-cancer": labels["labels"]} and labels["labels"] > 0
    alerts = json.loads(run_cli("monitor", "alerts", "--json", cwd=demo_dir).stdout)
    assert {(a["rule"], a["subject"]) for a in alerts if a["status"] == "open"} >= {
        ("data-drift", "models:/breast-cancer/1"), ("data-drift", "models:/breast-cancer/2")}
