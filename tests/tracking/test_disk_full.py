"""Metric logging on a full disk: one clear error, and the run ends FAILED (issue 13 §4)."""

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy.exc

import mloop
from mloop.errors import DiskFullError
from mloop.project import Project
from mloop.tracking import writer as writer_module
from mloop.tracking.model import RunStatus


def test_a_full_disk_in_the_writer_raises_disk_full_and_the_run_fails(sqlite_project,
                                                                      monkeypatch):
    def full(store, conn, batch):
        raise sqlalchemy.exc.OperationalError(
            "INSERT", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(writer_module, "write_points", full)
    with pytest.raises(DiskFullError, match="No space left"), mloop.start_run() as run:
        mloop.log_metric("x", 1)
        run.flush()
    assert mloop.get_run(run.id).status is RunStatus.FAILED
    monkeypatch.undo()  # space again: the kept point is written, nothing was lost
    mloop.flush()
    assert mloop.get_run(run.id).metrics == {"x": 1.0}


def test_logging_until_the_disk_is_full_ends_in_one_error_and_a_failed_run(tmp_path,
                                                                            tiny_disk):
    root = tmp_path / "proj"
    mloop.init(root)
    uri = f"sqlite:///{tiny_disk / 'mloop.db'}"
    # batches of 500 points: the first one surely fits in the 1 MiB beside the schema (at
    # 2000, a loaded machine that filled the first batch before any flush wrote nothing)
    env = dict(os.environ, MLOOP_PROJECT=str(root), MLOOP_STORE_URI=uri,
               MLOOP_FLUSH_BATCH_SIZE="500")
    script = textwrap.dedent("""
        import mloop
        with mloop.start_run(experiment="full") as run:
            print(run.id, flush=True)
            for i in range(50_000_000):
                mloop.log_metric("loss", i)
    """)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 1, out.stderr
    assert "mloop.errors.DiskFullError: No space left on the device holding" in out.stderr
    assert "OperationalError" not in out.stderr
    run_id = out.stdout.split()[0]
    project = Project(root, store_uri=uri)
    try:
        run = mloop.get_run(run_id, project=project)
        assert run.status is RunStatus.FAILED and run.end_time is not None
        assert run.metrics["loss"] >= 0  # what fitted is kept
    finally:
        project.close()
