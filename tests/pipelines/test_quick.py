"""``mloop pipeline run`` answers an unchanged mloop.yaml before the CLI loads, and only then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

STAGES = """
    stages:
      a:
        cmd: python -c "open('a.txt','w').write(open('in.txt').read() + 'a')"
        deps: [in.txt]
        outs: [a.txt]
      b:
        cmd: python -c "open('b.txt','w').write(open('a.txt').read() + 'b')"
        deps: [a.txt]
        outs: [b.txt]
"""


@pytest.fixture
def yaml_project(sqlite_project):
    (sqlite_project.root / "mloop.yaml").write_text(textwrap.dedent(STAGES))
    (sqlite_project.root / "in.txt").write_text("x")
    return sqlite_project


def _run(project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120, check=True)


def test_an_unchanged_pipeline_is_answered_at_once_and_recorded(yaml_project):
    first = _run(yaml_project, "pipeline", "run")
    assert "2 ran" in first.stdout
    quick = _run(yaml_project, "pipeline", "run")
    assert "nothing changed since the last run" in quick.stdout
    assert "2 cached" in quick.stdout
    as_json = json.loads(_run(yaml_project, "-q", "pipeline", "run", "--json").stdout)
    assert as_json["status"] == "succeeded"
    assert [s["status"] for s in as_json["steps"]] == ["cached", "cached"]
    runs = json.loads(_run(yaml_project, "pipeline", "status", "--json").stdout)
    assert [r["steps"] for r in runs] == [{"cached": 2}, {"cached": 2}, {"ran": 2}]
    shown = json.loads(_run(yaml_project, "pipeline", "show", runs[0]["id"], "--json").stdout)
    assert shown["steps"][0]["outputs"]["a"]["kind"] == "files"


@pytest.mark.parametrize("change", ["dep", "out", "yaml", "deleted"])
def test_any_change_goes_through_the_engine(yaml_project, change):
    _run(yaml_project, "pipeline", "run")
    root = yaml_project.root
    if change == "dep":
        (root / "in.txt").write_text("y")
    elif change == "out":
        (root / "b.txt").write_text("tampered")
    elif change == "deleted":
        (root / "a.txt").unlink()
    else:
        (root / "mloop.yaml").write_text(textwrap.dedent(STAGES).replace("+ 'b'", "+ 'B'"))
    out = _run(yaml_project, "pipeline", "run")
    assert "nothing changed" not in out.stdout
    expected = {"dep": "yab", "out": "xab", "deleted": "xab", "yaml": "xaB"}[change]
    assert (root / "b.txt").read_text() == expected
    again = _run(yaml_project, "pipeline", "run")  # and then it is quick again
    assert "nothing changed since the last run" in again.stdout


def test_options_and_failures_skip_the_quick_answer(yaml_project):
    _run(yaml_project, "pipeline", "run")
    forced = _run(yaml_project, "pipeline", "run", "--force")
    assert "2 ran" in forced.stdout
    assert not (yaml_project.root / ".mloop" / "pipelines" / "noop.json").exists()
    plain = _run(yaml_project, "pipeline", "run")
    assert "nothing changed" not in plain.stdout  # the snapshot was dropped by --force


def test_a_source_edited_during_the_run_writes_no_snapshot(yaml_project):
    from mloop import quick
    from mloop.pipelines.engine import run_pipeline
    from mloop.pipelines.registry import find_pipeline

    pipe = find_pipeline(yaml_project, None)
    before = quick.watched_stats(yaml_project.root, pipe)
    run = run_pipeline(yaml_project, pipe)
    (yaml_project.root / "in.txt").write_text("edited while it ran")
    quick.record(yaml_project.root, pipe, run, before)
    assert not (yaml_project.root / quick.SNAPSHOT).exists()
    out = _run(yaml_project, "pipeline", "run")
    assert "nothing changed" not in out.stdout
    assert (yaml_project.root / "b.txt").read_text() == "edited while it ranab"


def test_a_failing_stage_says_why_and_outs_stay_inside(yaml_project, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (yaml_project.root / "link").symlink_to(victim)
    (yaml_project.root / "mloop.yaml").write_text(textwrap.dedent("""
        stages:
          escape:
            cmd: "true"
            outs: [link/keep.txt]
          broken:
            cmd: exit 3
            outs: [never.txt]
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    out = subprocess.run([sys.executable, "-m", "mloop", "pipeline", "run"],
                         cwd=yaml_project.root, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 1
    assert (victim / "keep.txt").read_text() == "precious"
    assert "leads outside the project" in out.stderr
    assert "exited with status 3" in out.stderr + out.stdout
