"""The pipeline engine through real step processes: caching, failures, resume, lineage."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import mloop
from mloop.errors import ConfigError, InvalidInputError, NotFoundError, ServiceUnavailableError
from mloop.pipelines.engine import run_pipeline
from mloop.pipelines.registry import find_pipeline, list_pipelines

ROOT = Path(__file__).resolve().parents[2]


def _write(project, name: str, text: str) -> Path:
    path = project.root / name
    path.write_text(textwrap.dedent(text))
    for key in [k for k in sys.modules if k.startswith(("mloop_user_", "helpers"))]:
        del sys.modules[key]
    return path


PIPELINES = """
    import os
    import pandas as pd
    import mloop
    import helpers

    @mloop.step(outputs="features")
    def prepare(raw: mloop.Dataset) -> pd.DataFrame:
        return helpers.clean(raw.load())

    @mloop.step(outputs="stats")
    def describe(features: pd.DataFrame, scale: float = 1.0) -> dict:
        return {"rows": len(features), "mean": float(features["x"].mean()) * scale}

    @mloop.step
    def total(features: pd.DataFrame) -> dict:
        return {"sum": float(helpers.plain_sum(features["x"]))}

    @mloop.step
    def report(stats: dict, total: dict) -> mloop.Report:
        mloop.log_metric("rows", stats["rows"])
        return {**stats, **total}

    flow = mloop.Pipeline("flow", steps=[prepare, describe, total, report])
"""

HELPERS = """
    import helpers_deep

    def clean(df):
        return df.dropna()

    def plain_sum(values):
        return helpers_deep.add_up(values)
"""

DEEP = """
    def add_up(values):
        return sum(values)
"""


@pytest.fixture
def flow_project(sqlite_project):
    csv = sqlite_project.root / "raw.csv"
    pd.DataFrame({"x": [1.0, 2.0, None, 4.0]}).to_csv(csv, index=False)
    mloop.data.add(csv, name="raw", project=sqlite_project)
    _write(sqlite_project, "helpers_deep.py", DEEP)
    _write(sqlite_project, "helpers.py", HELPERS)
    _write(sqlite_project, "pipelines.py", PIPELINES)
    return sqlite_project


def _run(project, **kw):
    pipe = find_pipeline(project, "flow")
    return run_pipeline(project, pipe, inputs={"raw": "raw@latest"}, **kw)


def test_runs_caches_and_reruns_exactly_what_changed(flow_project):
    first = _run(flow_project)
    assert first.status == "succeeded", first.error
    assert {s.status for s in first.steps.values()} == {"ran"}
    assert first.output("report", flow_project) == {"rows": 3, "mean": 7 / 3, "sum": 7.0}

    again = _run(flow_project)
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert again.run_id is None  # nothing ran: no tracking run

    # a param reruns the step that takes it and what depends on it
    scaled = _run(flow_project, params={"scale": 2.0})
    assert {n: s.status for n, s in scaled.steps.items()} == {
        "prepare": "cached", "describe": "ran", "total": "cached", "report": "ran"}

    # editing a helper two calls deep reruns exactly the step that uses it
    _write(flow_project, "helpers_deep.py", """
        def add_up(values):
            return float(sum(values)) + 0.0
    """)
    edited = _run(flow_project)
    assert {n: s.status for n, s in edited.steps.items()} == {
        "prepare": "cached", "describe": "cached", "total": "ran", "report": "cached"}

    forced = _run(flow_project, from_step="total")
    assert [n for n, s in forced.steps.items() if s.status == "ran"] == ["total", "report"]


def test_records_lineage_and_nested_tracking_runs(flow_project):
    run = _run(flow_project)
    parent = mloop.get_run(run.run_id, project=flow_project)
    assert parent.experiment == "flow"
    for s in run.steps.values():
        child = mloop.get_run(s.run_id, project=flow_project)
        assert child.parent_id == run.run_id
        assert child.status.value == "FINISHED"
    assert mloop.get_run(run.steps["report"].run_id, project=flow_project).metrics["rows"] == 3
    assert mloop.get_run(run.steps["describe"].run_id, project=flow_project).params == {
        "scale": "1.0"}
    into, out_of = mloop.lineage.neighbours(flow_project, f"runs:/{run.steps['prepare'].run_id}")
    assert any(e.src.startswith("data:/raw@") and e.relation == "input" for e in into)
    assert {e.relation for e in out_of} == {"feeds"}
    _, steps = mloop.lineage.neighbours(flow_project, run.uri)
    assert len(steps) == 4
    shown = mloop.pipelines.get_run(run.id[-8:], project=flow_project)
    assert [s["status"] for s in shown["steps"]] == ["ran"] * 4


def test_a_failing_step_stops_its_downstream_and_resume_works(flow_project):
    _write(flow_project, "helpers_deep.py", """
        def add_up(values):
            raise ValueError("broken helper")
    """)
    failed = _run(flow_project)
    assert failed.status == "failed"
    assert failed.steps["total"].status == "failed"
    assert "ValueError: broken helper" in failed.steps["total"].error
    assert "Traceback" in failed.steps["total"].error  # the traceback is kept
    assert failed.steps["report"].status == "not_run"
    assert failed.steps["describe"].status == "ran"  # an independent branch finished
    assert "broken helper" in failed.error
    run_id = failed.steps["total"].run_id
    assert mloop.get_run(run_id, project=flow_project).status.value == "FAILED"
    log = flow_project.objects.get_bytes(failed.steps["total"].log).decode()
    assert "broken helper" in log

    _write(flow_project, "helpers_deep.py", DEEP)
    resumed = _run(flow_project)
    assert resumed.status == "succeeded"
    assert {n: s.status for n, s in resumed.steps.items()} == {
        "prepare": "cached", "describe": "cached", "total": "ran", "report": "ran"}


def test_retries_with_backoff_and_a_killed_step(sqlite_project, tmp_path):
    marker = tmp_path / "attempted"
    _write(sqlite_project, "pipelines.py", f"""
        import os, signal
        import mloop

        @mloop.step(retries=2, retry_delay=0.1)
        def flaky() -> int:
            if not os.path.exists({str(marker)!r}):
                open({str(marker)!r}, "w").close()
                raise RuntimeError("first attempt fails")
            return 1

        @mloop.step
        def victim() -> int:
            os.kill(os.getpid(), signal.SIGKILL)

        retrying = mloop.Pipeline("retrying", steps=[flaky])
        killing = mloop.Pipeline("killing", steps=[victim])
    """)
    ok = run_pipeline(sqlite_project, find_pipeline(sqlite_project, "retrying"))
    assert ok.status == "succeeded"
    assert ok.steps["flaky"].attempts == 2
    killed = run_pipeline(sqlite_project, find_pipeline(sqlite_project, "killing"))
    assert killed.status == "failed"
    assert "killed by signal 9 (SIGKILL)" in killed.steps["victim"].error
    assert mloop.get_run(killed.steps["victim"].run_id,
                         project=sqlite_project).status.value == "FAILED"


def test_independent_steps_run_side_by_side(sqlite_project):
    _write(sqlite_project, "pipelines.py", """
        import time
        import mloop

        @mloop.step
        def left() -> float:
            time.sleep(2.0)
            return 1.0

        @mloop.step
        def right() -> float:
            time.sleep(2.0)
            return 2.0

        both = mloop.Pipeline("both", steps=[left, right])
    """)
    start = time.perf_counter()
    run = run_pipeline(sqlite_project, find_pipeline(sqlite_project, "both"))
    took = time.perf_counter() - start
    assert run.status == "succeeded"
    steps = run.steps.values()
    assert took < sum(s.seconds for s in steps) - 1.0, (took, [s.seconds for s in steps])


def test_validation_errors_name_the_steps(sqlite_project):
    @mloop.step
    def a(b: int) -> int:
        return b

    @mloop.step
    def b(a: int) -> int:
        return a

    with pytest.raises(InvalidInputError, match="cycle through a, b"):
        mloop.Pipeline("loop", steps=[a, b]).wire()

    @mloop.step
    def make() -> pd.DataFrame:
        return pd.DataFrame()

    @mloop.step
    def use(make: int) -> int:
        return make

    with pytest.raises(InvalidInputError, match="'use' takes 'make' as int, but step 'make' "
                                                "returns DataFrame"):
        mloop.Pipeline("types", steps=[make, use]).wire()

    @mloop.step
    def needs(thing: str, C: float = 1.0) -> str:
        return thing

    pipe = mloop.Pipeline("needs", steps=[needs])
    with pytest.raises(InvalidInputError, match="nothing provides input 'thing'"):
        pipe.wire()
    with pytest.raises(InvalidInputError, match="param C takes float, not 'abc'"):
        run_pipeline(sqlite_project, pipe, inputs={"thing": "x"}, params={"C": "abc"})
    with pytest.raises(InvalidInputError, match="No step of 'needs' takes the param"):
        run_pipeline(sqlite_project, pipe, inputs={"thing": "x"}, params={"D": 1})
    with pytest.raises(InvalidInputError, match="takes no input 'other'"):
        run_pipeline(sqlite_project, pipe, inputs={"thing": "x", "other": 1})
    with pytest.raises(InvalidInputError, match="both produce"):
        mloop.Pipeline("dup", steps=[make, mloop.step(name="make2", outputs="make")(
            lambda: 1)])


def test_finding_pipelines(sqlite_project):
    with pytest.raises(NotFoundError, match="No pipeline 'x' in this project; defined: none"):
        find_pipeline(sqlite_project, "x")
    with pytest.raises(NotFoundError, match=r"No mloop\.yaml"):
        find_pipeline(sqlite_project, None)
    _write(sqlite_project, "pipelines.py", "raise RuntimeError('oops')\n")
    with pytest.raises(InvalidInputError, match=r"pipelines\.py failed to import: RuntimeError"):
        list_pipelines(sqlite_project)


def test_an_unreachable_dask_scheduler_is_a_clear_error(sqlite_project):
    @mloop.step
    def one() -> int:
        return 1

    with pytest.raises(ServiceUnavailableError, match="--executor local"):  # exit 69
        run_pipeline(sqlite_project, mloop.Pipeline("d", steps=[one]), executor="dask",
                     scheduler="tcp://127.0.0.1:1")


def test_the_same_pipeline_on_a_local_dask_cluster(flow_project):
    pytest.importorskip("distributed")
    run = _run(flow_project, executor="dask")
    assert run.status == "succeeded", run.error
    assert run.output("report", flow_project)["sum"] == 7.0
    again = _run(flow_project)  # the local executor finds the Dask run's cache
    assert {s.status for s in again.steps.values()} == {"cached"}


def test_cli_run_status_show_dag(flow_project):
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=flow_project.root,
                              env=env, capture_output=True, text=True, check=check,
                              timeout=120)

    dag = cli("pipeline", "dag", "flow").stdout
    assert "prepare" in dag
    assert "can run side by side: describe, total" in dag
    out = json.loads(cli("pipeline", "run", "flow", "--input", "raw=raw@latest",
                         "--param", "scale=3", "--json").stdout)
    assert out["status"] == "succeeded"
    assert {s["status"] for s in out["steps"]} == {"ran"}
    again = cli("pipeline", "run", "flow", "-i", "raw=raw@latest", "-p", "scale=3")
    assert "4 cached" in again.stdout
    status = json.loads(cli("pipeline", "status", "--json").stdout)
    assert status[0]["steps"] == {"cached": 4}
    # params and inputs are JSON objects, a param as the step takes it (a float)
    assert status[0]["params"] == {"scale": 3.0}
    assert isinstance(status[0]["inputs"], dict) and "raw" in status[0]["inputs"]
    from mloop.pipelines.history import list_runs

    assert list_runs(flow_project, "flow")[0]["params"] == {"scale": 3.0}
    # a step that printed nothing has an empty log, not an error
    quiet = cli("pipeline", "show", status[1]["id"][-12:], "--log", "total")
    assert quiet.stdout == "(step total printed nothing)\n"
    cached = cli("pipeline", "show", status[0]["id"][-12:], "--log", "total")
    assert cached.stdout == "(step total did not run in this run: cached)\n"
    missing = cli("pipeline", "show", status[0]["id"][-12:], "--log", "nope", check=False)
    assert missing.returncode == NotFoundError.exit_code and "its steps:" in missing.stderr
    shown = cli("pipeline", "show", status[1]["id"][-12:]).stdout
    assert "describe" in shown
    assert "ran" in shown
    listed = cli("pipeline", "list").stdout
    assert "flow" in listed
    bad = cli("pipeline", "run", "flow", "-i", "raw=raw@latest", "-p", "scale=x", check=False)
    assert bad.returncode == 2
    assert "param scale takes float, not 'x'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_gc_keeps_what_the_cache_restores(flow_project):
    from mloop.data.garbage import gc

    first = _run(flow_project)
    assert first.status == "succeeded"
    gc(flow_project, grace_seconds=0)
    again = _run(flow_project)
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert again.output("report", flow_project)["sum"] == 7.0
    log = first.steps["prepare"].log
    assert log is None or flow_project.objects.exists(log)


def test_a_long_running_process_runs_the_edited_code(sqlite_project):
    _write(sqlite_project, "pipelines.py", """
        import mloop

        @mloop.step
        def value() -> int:
            return 1

        p = mloop.Pipeline("p", steps=[value])
    """)
    first = run_pipeline(sqlite_project, find_pipeline(sqlite_project, "p"))
    assert first.output("value", sqlite_project) == 1
    time.sleep(0.01)
    path = sqlite_project.root / "pipelines.py"
    path.write_text(path.read_text().replace("return 1", "return 2"))  # no module purge
    second = run_pipeline(sqlite_project, find_pipeline(sqlite_project, "p"))
    assert second.steps["value"].status == "ran"
    assert second.output("value", sqlite_project) == 2


def test_values_keep_their_types_between_steps(sqlite_project):
    import numpy as np

    from mloop.pipelines import values

    for value in (pd.Series([1.0, 2.0]), {1: "a", 2: (3, 4)}, (1, 2), {"a": [1, 2.5, None]}):
        ref = values.store(sqlite_project, "v", value, None, None)
        back = values.load(sqlite_project, ref)
        if isinstance(value, pd.Series):
            pd.testing.assert_series_equal(back, value)
        else:
            assert back == value
            assert type(back) is type(value)
    assert values.store(sqlite_project, "v", {"a": 1}, None, None).kind == "json"
    report = values.store(sqlite_project, "r", {"acc": np.float64(0.5)}, mloop.Report, None)
    assert report.kind == "report"
    assert values.load(sqlite_project, report) == {"acc": 0.5}


def test_optional_params_and_type_wiring_from_earlier_steps(sqlite_project):
    from mloop.pipelines.step import coerce_param

    @mloop.step
    def count(n: int | None = None) -> int:
        return n or 0

    param = count.params["n"]
    assert coerce_param(count, param, "5") == 5
    assert coerce_param(count, param, "none") is None
    with pytest.raises(InvalidInputError, match="param n takes int"):
        coerce_param(count, param, "abc")

    @mloop.step
    def readfile(path: str) -> str:
        return path

    @mloop.step
    def upper(readfile: str) -> str:
        return readfile.upper()

    pipe = mloop.Pipeline("f", steps=[readfile, upper])
    assert set(pipe.external_inputs()) == {"path"}  # not wired to upper's str output
    assert "input path" in pipe.draw()


def test_an_interrupted_run_is_recorded_as_failed(flow_project, monkeypatch):
    from mloop.pipelines import engine

    def interrupted(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_loop", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(flow_project)
    last = mloop.pipelines.list_runs(project=flow_project)[0]
    assert last["status"] == "failed"
    assert "interrupted" in last["error"]
    assert last["steps"] == {"not_run": 4}


def test_one_run_of_a_pipeline_at_a_time(flow_project):
    import fcntl

    from mloop.errors import ConflictError

    folder = flow_project.root / ".mloop" / "pipelines"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "flow.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ConflictError, match="'flow' is already running"):
            _run(flow_project)
    assert _run(flow_project).status == "succeeded"  # released with its holder


def test_a_malformed_scheduler_address_is_a_clear_error(sqlite_project):
    @mloop.step
    def one() -> int:
        return 1

    with pytest.raises(ConfigError, match="--executor local"):
        run_pipeline(sqlite_project, mloop.Pipeline("d", steps=[one]), executor="dask",
                     scheduler="http://x")


def test_a_fully_cached_run_still_has_its_lineage(flow_project):
    """Issue 14 §5: a cached run read "(no lineage recorded yet)"; its input was missing."""
    import re

    from tests.cli.test_cli import run_cli

    first, again = _run(flow_project), _run(flow_project)
    assert {s.status for s in again.steps.values()} == {"cached"}
    raw = mloop.data.get("raw@latest", project=flow_project).uri
    into, out_of = mloop.lineage.neighbours(flow_project, again.uri)
    assert [(e.src, e.relation) for e in into] == [(raw, "input")]
    assert sorted((e.dst, e.relation) for e in out_of) == sorted(
        (f"runs:/{s.run_id}", "cached") for s in first.steps.values())
    # the CLI: a short pipeline run id, each edge as a phrase, 12-character ids
    me = f"pipelines:/flow/{again.id[-12:]}"
    out = run_cli("lineage", me, cwd=flow_project.root).stdout
    prepare, describe = (first.steps[n].run_id[-12:] for n in ("prepare", "describe"))
    assert out.splitlines()[0] == me
    assert f"  ← {raw}  (input to {me})" in out
    assert f"  → runs:/{prepare}  (reused by {me})" in out
    assert f"    → runs:/{describe}  (fed by runs:/{prepare})" in out
    assert " of " not in out and not re.search(r"[0-9a-f]{32}", out)
    graph = json.loads(run_cli("lineage", me, "--json", cwd=flow_project.root).stdout)
    assert graph["uri"] == again.uri and graph["from"][0]["dst"] == again.uri  # full in JSON
    wrong = run_cli("lineage", f"pipelines:/other/{again.id[-12:]}", cwd=flow_project.root,
                    check=False)
    assert wrong.returncode == 3 and "is a run of 'flow'" in wrong.stderr


def test_a_cached_model_is_whole_for_fsck_and_gc_keeps_its_files(sqlite_project):
    """A model output's digest fingerprints the model's files (its run's artifacts), it
    names no blob: fsck must not call it missing, and gc must keep the files a cached
    step restores the model from."""
    from mloop.data.fsck import check
    from mloop.data.garbage import gc

    _write(sqlite_project, "pipelines.py", """
        import mloop
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        @mloop.step(outputs="model")
        def train() -> mloop.Model:
            x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
            return LogisticRegression().fit(x, [0, 0, 1, 1])

        @mloop.step
        def score(model: mloop.Model) -> dict:
            return {"p": int(model.predict(pd.DataFrame({"a": [3.0]}))[0])}

        m = mloop.Pipeline("m", steps=[train, score])
    """)
    pipe = find_pipeline(sqlite_project, "m")
    first = run_pipeline(sqlite_project, pipe)
    assert first.status == "succeeded", first.error
    assert first.steps["train"].outputs["model"].kind == "model"
    result = check(sqlite_project, quiet=True)
    assert result.ok, [p.to_dict() for p in result.problems]
    assert result.orphans == 0  # the model's files are reached (as the run's artifacts)
    gc(sqlite_project, grace_seconds=0)
    assert check(sqlite_project, quiet=True).ok
    again = run_pipeline(sqlite_project, pipe, from_step="score")  # needs the cached model
    assert again.steps["train"].status == "cached"
    assert again.steps["score"].status == "ran", again.error
    assert again.output("score", sqlite_project) == {"p": 1}
    assert again.output("model", sqlite_project).predict(pd.DataFrame({"a": [0.0]}))[0] == 0
