"""A killed engine takes its steps along and leaves runs that read killed (issue 13 §5).

Real processes: ``mloop pipeline run`` is killed with SIGKILL (or interrupted) while a
step sleeps; the step, the processes it started, and its temporary folder must go, and
the pipeline run and its tracking runs must read as killed — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mloop
from mloop.pipelines.processes import FOLDER_PREFIX, clean_stale_folders

PYTHON_STEP = """
    import os, subprocess, time
    import mloop

    @mloop.step
    def slow() -> int:
        child = subprocess.Popen(["sleep", "600"])  # a process the step starts
        with open("pids.tmp", "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        os.replace("pids.tmp", "pids")
        time.sleep(600)
        return 1

    @mloop.step
    def quick() -> int:
        return 1

    sleepy = mloop.Pipeline("sleepy", steps=[slow])
    fast = mloop.Pipeline("fast", steps=[quick])
"""

SHELL_STAGE = """
    stages:
      slow:
        cmd: "sleep 600 & echo $$ $! > pids.tmp && mv pids.tmp pids && wait"
        outs: [out.txt]
"""


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that no longer cares."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _env(project, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLOOP_PROJECT"}
    env["MLOOP_STORE_URI"] = project.settings.store_uri
    env["TMPDIR"] = str(tmp)  # step folders land here, not in the machine's /tmp
    return env


@pytest.fixture
def engines():
    """Engines a test starts; any still running at the end is killed (a failed test)."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _start(engines, project, tmp: Path, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "mloop", "pipeline", "run", *args],
                            cwd=project.root, env=_env(project, tmp), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    engines.append(proc)
    return proc


def _pids(project, proc) -> list[int]:
    deadline = time.monotonic() + 60
    pids = project.root / "pids"
    while not pids.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    return [int(p) for p in pids.read_text().split()]


def _gone(pids: list[int], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


@pytest.mark.parametrize("kind", ["python", "shell"])
def test_sigkill_of_the_engine_kills_its_steps_and_reads_killed(project, tmp_path, kind,
                                                                engines):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    if kind == "python":
        (project.root / "pipelines.py").write_text(textwrap.dedent(PYTHON_STEP))
        args = ["sleepy"]
    else:
        (project.root / "mloop.yaml").write_text(textwrap.dedent(SHELL_STAGE))
        args = []
    engine = _start(engines, project, tmp, *args)
    pids = _pids(project, engine)
    assert all(_alive(p) for p in pids)
    engine.kill()  # SIGKILL: the engine gets no chance to clean up
    engine.wait()
    assert _gone(pids), f"step processes {pids} outlived their engine"
    [run] = mloop.pipelines.list_runs(project=project)
    assert run["status"] == "killed"
    assert f"pid {engine.pid}" in run["error"]
    shown = subprocess.run([sys.executable, "-m", "mloop", "pipeline", "status", "--json"],
                           cwd=project.root, env=_env(project, tmp), capture_output=True,
                           text=True, check=True)
    assert json.loads(shown.stdout)[0]["status"] == "killed"
    if kind == "python":  # the parent tracking run and the step's run
        tracking = mloop.search_runs(experiment="sleepy")
        assert sorted(tracking["status"]) == ["KILLED", "KILLED"]
        left = [p.name for p in tmp.iterdir() if p.name.startswith(FOLDER_PREFIX)]
        assert left and all(name.startswith(f"{FOLDER_PREFIX}{engine.pid}-") for name in left)
        # the next run removes the dead engine's folder
        quick = _start(engines, project, tmp, "fast")
        assert quick.wait(timeout=120) == 0, quick.communicate()
        quick.communicate()
        assert [p for p in tmp.iterdir() if p.name.startswith(FOLDER_PREFIX)] == []


def test_ctrl_c_stops_the_running_steps_at_once(sqlite_project, tmp_path, engines):
    (sqlite_project.root / "pipelines.py").write_text(textwrap.dedent(PYTHON_STEP))
    engine = _start(engines, sqlite_project, tmp_path, "sleepy")
    pids = _pids(sqlite_project, engine)
    engine.send_signal(signal.SIGINT)
    _, err = engine.communicate(timeout=60)
    assert engine.returncode == 130, err
    assert _gone(pids, 2)
    [run] = mloop.pipelines.list_runs(project=sqlite_project)
    assert run["status"] == "failed" and "interrupted" in run["error"]


def test_stale_step_folders_go_and_live_ones_stay(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"{FOLDER_PREFIX}{dead.pid}-0123abcd-x1"
    legacy_old = tmp_path / f"{FOLDER_PREFIX}abc123"
    legacy_new = tmp_path / f"{FOLDER_PREFIX}def456"
    for folder in (stale, legacy_old, legacy_new):
        folder.mkdir()
        (folder / "task.pkl").write_bytes(b"x")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(legacy_old, (day_ago, day_ago))
    from mloop.pipelines.processes import step_folder

    with step_folder() as mine:
        Path(mine).rename(tmp_path / Path(mine).name)
        live = tmp_path / Path(mine).name
        try:
            assert clean_stale_folders(str(tmp_path)) == 2
            assert live.exists() and legacy_new.exists()
            assert not stale.exists() and not legacy_old.exists()
        finally:
            live.rename(mine)
