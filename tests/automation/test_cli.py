"""``mloop automate …`` through the real entry point: check (two at once), history,
dry runs, a broken file, and ``run`` stopped by SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time

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
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Stopping" in err and out.strip().endswith("Stopped.")
    assert "note: dataset train: no such dataset yet" in out
