"""Nothing logged is lost: normal exit, exception, SIGTERM, and 4 processes at once.

Each case runs a real Python process against a real project (SQLite and PostgreSQL).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import mloop
from mloop.tracking.model import RunStatus

N = 5_000


def _env(project):
    env = dict(os.environ)
    env["MLOOP_PROJECT"] = str(project.root)
    env["MLOOP_STORE_URI"] = project.settings.store_uri
    env["MLOOP_FLUSH_INTERVAL"] = "30"  # only exit paths may flush
    return env


def _script(body: str) -> str:
    return "import mloop, sys, time\n" + textwrap.dedent(body)


def _run(project, body, **kw):
    return subprocess.run([sys.executable, "-c", _script(body)], env=_env(project),
                          capture_output=True, text=True, timeout=120, **kw)


def _only_run(project, experiment):
    df = mloop.search_runs(experiment=experiment, project=project)
    assert len(df) == 1
    return mloop.get_run(df["run_id"].iloc[0], project=project)


def test_normal_exit_without_end_run(project):
    out = _run(project, f"""
        mloop.start_run(experiment="normal")
        for i in range({N}):
            mloop.log_metric("x", i)
    """)
    assert out.returncode == 0, out.stderr
    run = _only_run(project, "normal")
    assert run.status is RunStatus.FINISHED
    assert len(run.metric_history("x")) == N


def test_uncaught_exception(project):
    out = _run(project, f"""
        mloop.start_run(experiment="crash")
        for i in range({N}):
            mloop.log_metric("x", i)
        raise RuntimeError("training diverged")
    """)
    assert out.returncode == 1 and "training diverged" in out.stderr
    run = _only_run(project, "crash")
    assert run.status is RunStatus.FAILED
    assert len(run.metric_history("x")) == N


@pytest.mark.parametrize("style", ["with", "explicit"])
def test_sigterm(project, style):
    body = f"""
        {'with mloop.start_run(experiment="term"):' if style == 'with' else
         'if mloop.start_run(experiment="term"):'}
            for i in range({N}):
                mloop.log_metric("x", i)
            print("ready", flush=True)
            time.sleep(60)
    """
    proc = subprocess.Popen([sys.executable, "-c", _script(body)], env=_env(project),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    run = _only_run(project, "term")
    assert run.status is RunStatus.KILLED
    assert len(run.metric_history("x")) == N


def test_four_processes_log_at_once(project):
    body = f"""
        with mloop.start_run(experiment="multi", name=sys.argv[1]):
            for i in range({N}):
                mloop.log_metric("x", i)
                if i % 1000 == 0:
                    mloop.flush()   # interleave many write transactions
            mloop.log_params({{"worker": sys.argv[1]}})
    """
    procs = [subprocess.Popen([sys.executable, "-c", _script(body), f"w{i}"], env=_env(project),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    deadline = time.time() + 120
    for p in procs:
        _out, err = p.communicate(timeout=max(1, deadline - time.time()))
        assert p.returncode == 0, err
    df = mloop.search_runs(experiment="multi", project=project)
    assert sorted(df["name"]) == ["w0", "w1", "w2", "w3"]
    for run_id in df["run_id"]:
        run = mloop.get_run(run_id, project=project)
        assert run.status is RunStatus.FINISHED
        assert len(run.metric_history("x")) == N
        assert run.metrics["x"] == N - 1


def test_forked_child_logs_into_the_parents_run(project):
    out = _run(project, f"""
        import multiprocessing as mp

        def child():
            for i in range({N}):
                mloop.log_metric("from_child", i)
            mloop.flush()

        with mloop.start_run(experiment="fork"):
            mloop.log_metric("from_parent", 1.0)
            p = mp.get_context("fork").Process(target=child)
            p.start()
            p.join()
            assert p.exitcode == 0
    """)
    assert out.returncode == 0, out.stderr
    run = _only_run(project, "fork")
    assert len(run.metric_history("from_child")) == N
    assert run.metrics["from_parent"] == 1.0
