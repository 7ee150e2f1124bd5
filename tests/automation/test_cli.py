"""``mloop automate …`` through the real entry point: check (two at once), history,
dry runs, a broken file, and ``run`` stopped by SIGTERM; check's exit status (in process,
with the fake engine): 0 for decisions, 1 for errors of the automation."""

import json
import os
import signal
import subprocess
import sys

from mloop.automation import history
from tests.automation.conftest import TEST, TRAIN, add_dataset, write_pipelines, write_yaml
from tests.cli.test_cli import run_cli

CONFIG = """
    pipelines:
      churn-training:
        inputs: {raw: train@latest}
        triggers: [{dataset: train}]
        promotion: {model: churn, data: test@latest, target: target}
"""


def _spawn(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    return subprocess.Popen([sys.executable, "-m", "mloop", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_check_twice_at_once_then_history(proj):
    write_pipelines(proj)
    write_yaml(proj, CONFIG)
    add_dataset(proj, "train", TRAIN)
    add_dataset(proj, "test", TEST)
    dry = json.loads(run_cli("automate", "check", "--dry-run", "--json", cwd=proj.root).stdout)
    assert [(o["pipeline"], o["status"]) for o in dry] == [("churn-training", "would_run")]
    # two cron jobs firing at the same moment: one runs the pipeline
    procs = [_spawn("automate", "check", "--json", cwd=proj.root) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    statuses = sorted(json.loads(out)[0]["status"] for out, _ in outs)
    assert statuses.count("promoted") == 1 and set(statuses) <= {"promoted", "busy", "idle"}
    ran = next(o for o in (json.loads(out)[0] for out, _ in outs) if o["status"] == "promoted")
    assert ran["events"][0]["label"] == "dataset train@1"
    assert ran["decision"]["registered"] == "models:/churn/1"
    # nothing new: the human form says so
    idle = run_cli("automate", "check", cwd=proj.root).stdout
    assert idle.strip() == "churn-training: idle"
    history = json.loads(run_cli("automate", "history", "--json", cwd=proj.root).stdout)
    assert [(d["decision"], d["trigger"]) for d in history] == [("promoted",
                                                                 "dataset train@1")]
    assert history[0]["pipeline_run"].startswith("pipelines:/churn-training/")
    table = run_cli("automate", "history", "--pipeline", "churn-training", cwd=proj.root).stdout
    assert "promoted to challenger: the first churn model" in table
    none = run_cli("automate", "history", "--decision", "blocked", cwd=proj.root).stdout
    assert "No decisions yet." in none


def test_check_with_nothing_automated_and_a_broken_file(proj):
    out = run_cli("automate", "check", cwd=proj.root).stdout
    assert "No pipelines are automated" in out
    write_yaml(proj, "pipelines:\n  p:\n    triggers: [{schedule: '0 3 * *'}]\n")
    bad = run_cli("automate", "check", cwd=proj.root, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "pipelines.p.triggers[0]: cron '0 3 * *'" in bad.stderr
    unknown = run_cli("automate", "check", "--pipeline", "x", cwd=proj.root, check=False)
    assert unknown.returncode == 2  # the file is still broken: that is said first


def test_run_stops_cleanly_on_sigterm(proj):
    write_yaml(proj, "pipelines:\n  p:\n    triggers: [{dataset: train}]\n")
    proc = _spawn("automate", "run", "--poll", "1s", cwd=proj.root)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"Automating {proj.root} (poll every 1s")
        seen = []  # wait for the first round to report, however slow the machine is
        while not any("note: dataset train: no such dataset yet" in s for s in seen):
            got = proc.stdout.readline()
            assert got, "automate run ended before its first round"
            seen.append(got)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Stopping" in err and out.strip().endswith("Stopped.")


def _check(*args):
    """``mloop automate check`` in this process (the fake engine stays in place)."""
    from click.testing import CliRunner

    from mloop.cli.automate import automate

    return CliRunner().invoke(automate, ["check", *args])


def test_check_exits_with_the_error_code_on_errors_and_0_on_decisions(proj, engine):
    write_yaml(proj, """
        pipelines:
          missing:
            triggers: [{dataset: train}]
          p:
            triggers: [{dataset: train}]
    """)
    add_dataset(proj, "train", TRAIN)
    engine.status = "failed"  # a failed run is a decision...
    out = _check("--pipeline", "p")
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("p: failed (dataset train@1)") and out.stderr == ""
    # ...a pipeline that cannot be found is an error; the others are still checked
    engine.status = "succeeded"
    add_dataset(proj, "train", TRAIN.iloc[:300])
    out = _check()
    assert out.exit_code == 3  # not found
    assert out.stderr == "Error: missing: No pipeline 'missing' in this project.\n"
    assert out.stdout.splitlines() == ["missing: error (dataset train@2)",
                                       "p: succeeded (dataset train@2)",
                                       f"  run: {history(project=proj)[0].pipeline_uri}",
                                       "  - pipelines:/p/" + history(project=proj)[0]
                                       .pipeline_run_id + " succeeded (1 ran)",
                                       "  - no promotion policy: nothing registered"]
    dry = _check("--dry-run", "--json")
    assert dry.exit_code == 3 and "Error: missing:" in dry.stderr
    assert [(o["status"], o["error"]) for o in json.loads(dry.stdout)] == [
        ("error", "No pipeline 'missing' in this project."), ("idle", None)]
    # an exception in the automation: recorded as failed, and an error
    engine.hook = lambda: 1 / 0
    add_dataset(proj, "train", TRAIN.iloc[:200])
    out = _check("--pipeline", "p", "--json")
    assert out.exit_code == 70  # an unexpected exception: internal
    assert out.stderr == "Error: p: automation stopped: ZeroDivisionError: division by zero\n"
    got = json.loads(out.stdout)[0]
    assert got["status"] == "failed" and got["decision"]["reasons"] == [
        got["error"], "the events stay pending: the next check tries again"]
    assert got["decision"]["registered"] is None
    # the crashed round did not consume its trigger: the next check runs it again
    engine.hook = None
    again = _check("--pipeline", "p", "--json")
    assert again.exit_code == 0, again.stderr
    assert [(o["status"], o["events"][0]["event"]) for o in json.loads(again.stdout)] == [
        ("succeeded", "3")]
    assert _check("--pipeline", "p").exit_code == 0  # nothing pending now: idle


def test_check_reports_an_exception_while_looking_and_goes_on(proj, engine, monkeypatch,
                                                              caplog):
    from mloop.automation import runner

    write_yaml(proj, """
        pipelines:
          a:
            triggers: [{dataset: train}]
          b:
            triggers: [{dataset: train}]
    """)
    add_dataset(proj, "train", TRAIN)
    real = runner.pending

    def broken(project, auto, **kw):
        if auto.name == "a":
            raise OSError("store unreachable")
        return real(project, auto, **kw)

    monkeypatch.setattr(runner, "pending", broken)
    out = _check()
    assert out.exit_code == 70
    assert out.stderr == "Error: a: OSError: store unreachable\n"
    assert out.stdout.splitlines()[0] == "a: error"
    assert "b: succeeded (dataset train@1)" in out.stdout
    assert "automation of a failed before it started" in caplog.text
    monkeypatch.setattr(runner, "pending", real)
    assert _check("--pipeline", "a").stdout.startswith("a: succeeded")  # it waited


def test_a_param_the_pipeline_refuses_is_a_clear_error_before_any_run(proj):
    write_pipelines(proj)
    write_yaml(proj, """
        pipelines:
          churn-training:
            inputs: {raw: train@latest}
            params: {C: abc}
            triggers: [{dataset: train}]
    """)
    add_dataset(proj, "train", TRAIN)
    out = run_cli("automate", "check", cwd=proj.root, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr  # bad input
    assert "automation.yaml: pipelines.churn-training.params.C: Step 'train': param C takes " \
           "float, not 'abc'." in out.stderr
    assert history(project=proj) == []  # nothing claimed: the event waits for the fix
    write_yaml(proj, """
        pipelines:
          churn-training:
            inputs: {raw: train@latest}
            params: {Cee: 0.5}
            triggers: [{dataset: train}]
    """)
    out = run_cli("automate", "check", cwd=proj.root, check=False)
    assert "pipelines.churn-training.params.Cee: No step of 'churn-training' takes the " \
           "param(s) Cee; params: C." in out.stderr
