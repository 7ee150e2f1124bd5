"""Warm step processes (issue 14 §7): each step forked from the run's zygote keeps the
isolation of a fresh interpreter — a crash, ``os._exit`` or SIGKILL fails that step only,
what a step changes dies with it — and each run imports the project's code anew."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import mloop
from mloop.pipelines.engine import run_pipeline
from mloop.pipelines.processes import StepProcesses
from mloop.pipelines.registry import find_pipeline

WHERE = """
def where():
    # the step's parent: the zygote's guard (warm) or guard.py (fresh)
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        parent = f.read().replace(b"\\0", b" ").decode()
    return "warm" if "mloop.pipelines.zygote" in parent else (
        "fresh" if "guard.py" in parent else parent)
"""

CRASHES = """
import ctypes, os, signal, sys
import mloop
""" + WHERE + """
@mloop.step
def good() -> str:
    print("ran", where())
    print("to stdout from good")
    print("to stderr from good", file=sys.stderr)
    return where()

@mloop.step
def raising() -> int:
    raise ValueError("a step's own error")

@mloop.step
def exiting() -> int:
    print("about to leave")
    sys.stdout.flush()
    os._exit(3)

@mloop.step
def killed() -> int:
    os.kill(os.getpid(), signal.SIGKILL)

@mloop.step
def segfault() -> int:
    ctypes.string_at(0)

@mloop.step
def after(good: str) -> str:
    return good + "!"

crashes = mloop.Pipeline("crashes", steps=[good, raising, exiting, killed, segfault, after])
small = mloop.Pipeline("small", steps=[good, killed])
"""

LEAKS = """
import os, sys
import numpy as np
import mloop
import helpers
""" + WHERE + """
@mloop.step
def dirty() -> dict:
    helpers.STATE["touched"] = True
    os.environ["MLOOP_TEST_LEAK"] = "1"
    os.chdir("/")
    sys.path.append("/nowhere")
    return {"where": where(), "pid": os.getpid(), "draw": float(np.random.rand())}

@mloop.step
def clean(dirty: dict) -> dict:
    return {"touched": helpers.STATE.get("touched", False),
            "env": os.environ.get("MLOOP_TEST_LEAK"), "cwd": os.getcwd(),
            "path": "/nowhere" in sys.path, "pid": os.getpid(),
            "draw": float(np.random.rand()), "where": where()}

leaks = mloop.Pipeline("leaks", steps=[dirty, clean])
"""


def _write(project, name: str, text: str) -> None:
    (project.root / name).write_text(textwrap.dedent(text))
    for key in [k for k in sys.modules if k.startswith(("mloop_user_", "helpers"))]:
        del sys.modules[key]


def _run(project, name: str, **kw):
    return run_pipeline(project, find_pipeline(project, name), **kw)


def test_a_crashing_step_fails_alone_and_its_log_is_kept(sqlite_project):
    _write(sqlite_project, "pipelines.py", CRASHES)
    run = _run(sqlite_project, "crashes")
    steps = run.steps
    assert run.status == "failed"
    assert {n: s.status for n, s in steps.items()} == {
        "good": "ran", "raising": "failed", "exiting": "failed", "killed": "failed",
        "segfault": "failed", "after": "ran"}
    assert run.output("good", sqlite_project) == "warm"
    assert run.output("after", sqlite_project) == "warm!"
    assert "ValueError: a step's own error" in steps["raising"].error
    assert "exited with status 3 without a result" in steps["exiting"].error
    assert "killed by signal 9 (SIGKILL)" in steps["killed"].error
    assert "killed by signal 11 (SIGSEGV)" in steps["segfault"].error
    for name in ("raising", "exiting", "killed", "segfault"):  # their tracking runs end
        # FAILED by the engine, or KILLED by a concurrent step that saw its owner dead first
        assert mloop.get_run(steps[name].run_id, project=sqlite_project).status.value in (
            "FAILED", "KILLED")
    assert mloop.get_run(steps["raising"].run_id,
                         project=sqlite_project).status.value == "FAILED"
    log = sqlite_project.objects.get_bytes(steps["good"].log).decode()
    assert "to stdout from good" in log and "to stderr from good" in log
    assert "about to leave" in sqlite_project.objects.get_bytes(steps["exiting"].log).decode()
    assert "a step's own error" in sqlite_project.objects.get_bytes(
        steps["raising"].log).decode()


def test_what_a_step_changes_dies_with_it(sqlite_project):
    _write(sqlite_project, "helpers.py", "STATE = {}\n")
    _write(sqlite_project, "pipelines.py", LEAKS)
    run = _run(sqlite_project, "leaks")
    assert run.status == "succeeded", run.error
    dirty, clean = run.output("dirty", sqlite_project), run.output("clean", sqlite_project)
    assert dirty["where"] == clean["where"] == "warm"
    assert clean == {**clean, "touched": False, "env": None,
                     "cwd": str(sqlite_project.root), "path": False}
    assert dirty["pid"] != clean["pid"]
    assert dirty["draw"] != clean["draw"]  # NumPy's global generator is reseeded
    assert "MLOOP_TEST_LEAK" not in os.environ
    assert os.getcwd() != "/"


def test_each_run_imports_the_project_code_anew(sqlite_project):
    _write(sqlite_project, "helpers.py", "def value():\n    return 1\n")
    _write(sqlite_project, "pipelines.py", """
        import mloop
        import helpers

        @mloop.step
        def read() -> int:
            return helpers.value()

        p = mloop.Pipeline("p", steps=[read])
    """)
    assert _run(sqlite_project, "p").output("read", sqlite_project) == 1
    helpers = sqlite_project.root / "helpers.py"
    helpers.write_text("def value():\n    return 2\n")
    # a .pyc records its source's mtime in whole seconds (and its size, the same here):
    # move the mtime on by 2 s so a rewrite within the same second is seen as one
    stat = helpers.stat()
    os.utime(helpers, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    second = _run(sqlite_project, "p")  # same process, no module purged by hand
    assert second.steps["read"].status == "ran"
    assert second.output("read", sqlite_project) == 2


def test_fresh_mode_and_the_fallback_when_imports_start_threads(sqlite_project, monkeypatch,
                                                                caplog):
    _write(sqlite_project, "pipelines.py", CRASHES)
    monkeypatch.setenv("MLOOP_STEP_PROCESSES", "fresh")
    run = run_pipeline(mloop.Project.open(sqlite_project.root),
                       find_pipeline(sqlite_project, "small"))
    assert run.output("good", sqlite_project) == "fresh"
    assert "killed by signal 9 (SIGKILL)" in run.steps["killed"].error
    monkeypatch.delenv("MLOOP_STEP_PROCESSES")
    # a pipeline module that starts a thread when imported: forking it is unsafe
    _write(sqlite_project, "pipelines.py", CRASHES.replace("import mloop\n", """import mloop
import threading, time
threading.Thread(target=time.sleep, args=(30,), daemon=True, name="poller").start()
""", 1))
    with caplog.at_level("WARNING"):
        fallback = _run(sqlite_project, "small", force=True)
    assert fallback.output("good", sqlite_project) == "fresh"
    assert fallback.steps["killed"].status == "failed"
    assert "started threads (poller)" in caplog.text


def test_cli_runs_steps_warm_or_fresh_and_shows_their_logs(sqlite_project):
    _write(sqlite_project, "pipelines.py", CRASHES)
    env = {k: v for k, v in os.environ.items() if k != "MLOOP_PROJECT"}

    def cli(*args: str, mode: str = "warm") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=sqlite_project.root,
                              env={**env, "MLOOP_STEP_PROCESSES": mode}, capture_output=True,
                              text=True, timeout=300, check=False)

    for name, mode in (("crashes", "warm"), ("small", "fresh")):
        done = cli("pipeline", "run", name, "--force", "--json", mode=mode)
        assert done.returncode == 1, done.stderr
        out = json.loads(done.stdout)
        statuses = {s["step"]: s["status"] for s in out["steps"]}
        assert statuses["good"] == "ran" and statuses["killed"] == "failed"
        assert statuses.get("after", "ran") == "ran"
        shown = cli("pipeline", "show", out["id"][-12:], "--log", "good")
        assert shown.returncode == 0, shown.stderr
        assert f"ran {mode}" in shown.stdout
        assert "to stdout from good" in shown.stdout and "to stderr from good" in shown.stdout
        assert "SIGKILL" in cli("pipeline", "show", out["id"][-12:]).stdout


def test_watched_groups_die_with_the_run():
    procs = StepProcesses()
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        assert procs.watch(sleeper.pid)
        procs.stop()
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
        late = subprocess.Popen(["sleep", "60"], start_new_session=True)
        assert not procs.watch(late.pid)  # the run is stopping: killed at once
        assert late.wait(timeout=10) == -signal.SIGKILL
    finally:
        sleeper.kill()


@pytest.mark.parametrize("mode", ["warm", "fresh", "lukewarm"])
def test_step_processes_setting(sqlite_project, monkeypatch, mode):
    from mloop.errors import ConfigError

    monkeypatch.setenv("MLOOP_STEP_PROCESSES", mode)
    if mode == "lukewarm":
        with pytest.raises(ConfigError, match="MLOOP_STEP_PROCESSES"):
            mloop.Project.open(sqlite_project.root)
    else:
        assert mloop.Project.open(sqlite_project.root).settings.step_processes == mode
