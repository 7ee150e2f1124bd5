"""What a crash leaves behind is recognised (issue 13 §5): a run whose process died reads
KILLED everywhere, on SQLite and PostgreSQL."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import select, update

import mloop
from mloop.core import owner as owner_module
from mloop.core.clock import now_ms
from mloop.store.schema import runs
from mloop.tracking.model import RunStatus
from mloop.tracking.tracker import tracker_for


def _env(project):
    env = dict(os.environ)
    env["MLOOP_PROJECT"] = str(project.root)
    env["MLOOP_STORE_URI"] = project.settings.store_uri
    return env


def _row(project, run_id):
    with project.store.read() as conn:
        return conn.execute(select(runs).where(runs.c.id == run_id)).one()


def _set(project, run_id, **values):
    with project.store.write() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


def test_a_sigkilled_process_leaves_a_run_that_reads_killed_everywhere(project):
    script = textwrap.dedent("""
        import mloop, time
        with mloop.start_run(experiment="crash", name="victim") as run:
            mloop.log_metric("x", 1)
            mloop.flush()
            print(run.id, flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=_env(project),
                            stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    assert mloop.get_run(run_id).status is RunStatus.RUNNING  # alive: not killed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    filtered = mloop.search_runs(filter="attributes.status = 'KILLED'")
    assert filtered["run_id"].tolist() == [run_id]
    assert mloop.search_runs(filter="attributes.status = 'RUNNING'").empty
    run = mloop.get_run(run_id)
    assert run.status is RunStatus.KILLED and run.metrics == {"x": 1.0}
    assert run.end_time is not None and run.end_time >= run.start_time
    cli = subprocess.run([sys.executable, "-m", "mloop", "runs", "list", "--json"],
                         env=_env(project), capture_output=True, text=True, check=True)
    assert [r["status"] for r in json.loads(cli.stdout)] == ["KILLED"]


def test_a_live_owner_here_stays_running_even_with_a_late_heartbeat(project):
    with mloop.start_run() as run:
        _set(project, run.id, heartbeat_at=1)  # a suspended machine, a stopped process
        assert mloop.get_run(run.id).status is RunStatus.RUNNING
    assert mloop.get_run(run.id).status is RunStatus.FINISHED


def test_a_reused_pid_is_not_the_owner(project):
    run = mloop.start_run()
    run.tracker.disown(run.id)
    me = owner_module.this_process()
    _set(project, run.id, owner_start=me.start.rsplit(":", 1)[0] + ":1")  # another start
    assert mloop.get_run(run.id).status is RunStatus.KILLED
    mloop.end_run()


@pytest.mark.parametrize(("age_minutes", "expected"), [(6, RunStatus.KILLED),
                                                       (1, RunStatus.RUNNING)])
def test_on_another_host_the_heartbeat_decides(project, age_minutes, expected):
    run = mloop.start_run()
    run.tracker.disown(run.id)
    _set(project, run.id, owner_host="other-host", owner_pid=1, owner_start="x:y:1",
         heartbeat_at=now_ms() - age_minutes * 60_000)
    assert mloop.get_run(run.id).status is expected
    assert len(mloop.search_runs(filter=f"attributes.status = '{expected}'")) == 1
    mloop.end_run()


def test_runs_written_before_owners_were_recorded_are_left_alone(project):
    run = mloop.start_run()
    run.tracker.disown(run.id)
    _set(project, run.id, owner_host=None, owner_pid=None, owner_start=None,
         heartbeat_at=None)
    assert mloop.get_run(run.id).status is RunStatus.RUNNING
    mloop.end_run()


def test_the_heartbeat_refreshes_and_revives_a_run_marked_by_mistake(project):
    run = mloop.start_run()
    # a reader on another host missed our beats (a partition) and marked it KILLED
    _set(project, run.id, status="KILLED", end_time=now_ms(), heartbeat_at=1)
    tracker_for(project).heartbeat.beat_now()
    row = _row(project, run.id)
    assert row.status == "RUNNING" and row.end_time is None
    assert now_ms() - row.heartbeat_at < 60_000
    run.end("KILLED")  # an end written after it is never undone by a late beat
    tracker_for(project).heartbeat.beat_now()
    assert _row(project, run.id).status == "KILLED"


def test_the_heartbeat_beats_on_the_writers_thread(project):
    run = mloop.start_run()
    heartbeat = tracker_for(project).heartbeat
    heartbeat.interval = 0.05
    heartbeat._due = 0.0
    _set(project, run.id, heartbeat_at=1)
    deadline = time.monotonic() + 20
    while _row(project, run.id).heartbeat_at == 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _row(project, run.id).heartbeat_at > 1
    mloop.end_run()
