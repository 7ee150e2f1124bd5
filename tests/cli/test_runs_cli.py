"""``mloop runs``: a metric's history as a chart, short ids, human sizes."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mloop
from mloop.cli.chart import columns, draw
from mloop.errors import RunNotFoundError
from mloop.tracking.records import resolve_run_id
from tests.cli.test_cli import run_cli


@pytest.fixture
def run_with_history(sqlite_project):
    with mloop.start_run() as run:
        for step in range(200):
            mloop.log_metric("loss", 1 / (1 + step), step=step)
        mloop.log_metric("acc\x1b[31m", 0.5, step=3)  # a key with an ANSI escape in it
        mloop.log_metric("gap", float("nan"), step=0)
        mloop.log_metric("gap", 2.0, step=1)
        mloop.log_text("x" * 3000, "big.txt")
    mloop.flush()
    return sqlite_project.root, run.id


def test_metric_chart(run_with_history):
    root, run_id = run_with_history
    out = run_cli("runs", "show", run_id[-12:], "--metric", "loss", cwd=root).stdout
    lines = out.splitlines()
    assert lines[0] == f"loss of run {run_id[-12:]}: 200 points, steps 0–199"
    assert "█" in out and "(step)" in out
    assert lines[-1] == ("min 0.005 (step 199), max 1 (step 0), "
                         "last 0.005 (step 199)")
    points = json.loads(run_cli("runs", "show", run_id, "--metric", "loss", "--json",
                                cwd=root).stdout)
    assert len(points) == 200 and points[0]["step"] == 0 and points[0]["value"] == 1.0
    gap = run_cli("runs", "show", run_id, "--metric", "gap", cwd=root).stdout
    assert "1 point NaN or infinite, not drawn" in gap
    escaped = run_cli("runs", "show", run_id, "--metric", "acc\x1b[31m", cwd=root).stdout
    assert "\x1b" not in escaped and "acc\\x1b[31m" in escaped
    missing = run_cli("runs", "show", run_id, "--metric", "nope", cwd=root, check=False)
    assert missing.returncode == 3 and "its metrics: acc" in missing.stderr


def test_metric_history_through_the_api(run_with_history):
    _, run_id = run_with_history
    history = mloop.get_run(run_id).metric_history("loss")
    lines = draw(history["step"].tolist(), history["value"].tolist(), width=40, height=5)
    assert len(lines) == 7 and all(len(line) == len(lines[0]) for line in lines[:6])


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1,
                max_size=300), st.integers(min_value=1, max_value=80))
def test_draw_any_values(values, width):
    steps = list(range(len(values)))
    if not any(math.isfinite(v) for v in values):
        with pytest.raises(ValueError):
            draw(steps, values, width=width)
        return
    lines = draw(steps, values, width=width, height=4)
    bars = lines[:4]
    assert len({len(line) for line in bars}) == 1
    assert 1 <= len(bars[0].split("┤")[1]) <= width
    assert len(columns(values, width)) == min(len(values), width)


def test_a_short_run_id_says_how_long_ids_are(run_with_history):
    root, run_id = run_with_history
    project = mloop.current_project()
    with pytest.raises(RunNotFoundError, match="at least 6 characters"):
        resolve_run_id(project, run_id[-4:])
    with pytest.raises(RunNotFoundError, match="hexadecimal"):
        resolve_run_id(project, "zzzzzzz")
    out = run_cli("runs", "compare", "5549", run_id, cwd=root, check=False)
    assert out.returncode == 3 and "give at least 6 characters" in out.stderr


def test_artifact_sizes_are_human_in_tables_and_raw_in_json(run_with_history):
    root, run_id = run_with_history
    assert "2.9 KiB" in run_cli("runs", "show", run_id, cwd=root).stdout
    shown = json.loads(run_cli("runs", "show", run_id, "--json", cwd=root).stdout)
    assert shown["artifacts"][0]["size"] == 3000
