"""Wiring never guesses: by name, and by type only for mloop's markers (issue 14 §2)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mloop
from mloop.errors import InvalidInputError
from mloop.pipelines.engine import run_pipeline
from mloop.pipelines.step import Step

MISWIRED = """
    import mloop

    @mloop.step
    def miss_ok() -> int:
        return 1

    @mloop.step
    def miss_x(miss_ok: int, nonexistent_input: int) -> int:
        return miss_ok + int(nonexistent_input)  # --input values are strings

    miss = mloop.Pipeline("miss", steps=[miss_ok, miss_x])
"""


@mloop.step
def miss_ok() -> int:
    return 1


@mloop.step
def miss_x(miss_ok: int, nonexistent_input: int) -> int:
    return miss_ok + nonexistent_input


def test_an_input_of_a_plain_type_is_never_bound_by_type():
    pipe = mloop.Pipeline("miss", steps=[miss_ok, miss_x])
    with pytest.raises(InvalidInputError) as caught:
        pipe.wire()
    message = caught.value.message
    assert "Step 'miss_x': nothing provides input 'nonexistent_input' (int)" in message
    assert "step outputs: miss_ok (step miss_ok)" in message
    assert pipe.external_inputs() == {"nonexistent_input": int}  # what run() must be given
    edges, external = pipe.wire(["nonexistent_input"])
    assert [(e.src, e.dst, e.input) for e in edges] == [("miss_ok", "miss_x", "miss_ok")]
    assert external == {"miss_x": {"nonexistent_input": "nonexistent_input"}}


def test_the_error_suggests_the_closest_input_or_output():
    pipe = mloop.Pipeline("miss", steps=[miss_ok, miss_x])
    with pytest.raises(InvalidInputError,
                       match="Did you mean the pipeline input 'nonexistent_inpt'"):
        pipe.wire(["nonexistent_inpt"])

    @mloop.step(outputs="features")
    def prepare() -> pd.DataFrame:
        return pd.DataFrame()

    @mloop.step
    def train(feature: pd.DataFrame) -> int:
        return len(feature)

    with pytest.raises(InvalidInputError, match="Did you mean 'features', the output of step "
                                                "'prepare'"):
        mloop.Pipeline("typo", steps=[prepare, train]).wire()


def test_dataframes_wire_by_name_only():
    @mloop.step
    def prepare() -> pd.DataFrame:
        return pd.DataFrame()

    @mloop.step
    def train(features: pd.DataFrame) -> int:
        return len(features)

    with pytest.raises(InvalidInputError, match="nothing provides input 'features'"):
        mloop.Pipeline("frames", steps=[prepare, train]).wire()
    named = mloop.Pipeline("frames", steps=[mloop.step(outputs="features")(prepare.fn), train])
    edges, _ = named.wire()
    assert [(e.src, e.output, e.input) for e in edges] == [("prepare", "features", "features")]


def test_markers_wire_by_type_to_their_one_producer_else_name_the_candidates():
    @mloop.step
    def fit() -> mloop.Model:
        return None

    @mloop.step
    def refit() -> mloop.Model:
        return None

    @mloop.step
    def check(model: mloop.Model) -> mloop.Report:
        return {}

    edges, _ = mloop.Pipeline("one", steps=[fit, check]).wire()
    assert [(e.src, e.output, e.dst, e.input) for e in edges] == [
        ("fit", "fit", "check", "model")]
    with pytest.raises(InvalidInputError, match=r"input 'model' \(Model\) could come from "
                                                r"fit\.fit, refit\.refit"):
        mloop.Pipeline("two", steps=[fit, refit, check]).wire()


def test_an_input_with_a_default_takes_it_when_nothing_provides_it(sqlite_project):
    @mloop.step
    def count(extra: tuple = (1, 2)) -> int:  # a tuple default: an input, not a param
        return len(extra)

    pipe = mloop.Pipeline("defaults", steps=[count])
    assert pipe.wire() == ([], {})
    assert pipe.external_inputs() == {}
    run = run_pipeline(sqlite_project, pipe)
    assert run.status == "succeeded", run.error
    assert run.output("count", sqlite_project) == 2


def test_a_miswired_pipeline_fails_before_anything_runs(sqlite_project):
    from mloop.pipelines import list_runs

    with pytest.raises(InvalidInputError, match="nothing provides input 'nonexistent_input'"):
        run_pipeline(sqlite_project, mloop.Pipeline("miss", steps=[miss_ok, miss_x]))
    assert list_runs(project=sqlite_project) == []  # no run recorded, no step started


@settings(max_examples=30, deadline=None)
@given(name=st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True).filter(lambda n: n != "use"),
       annotation=st.sampled_from([int, str, float, pd.DataFrame, dict]))
def test_only_an_input_named_after_an_output_or_a_given_input_is_wired(name, annotation):
    @mloop.step(outputs="number")
    def make() -> int:
        return 1

    use = Step(lambda **kwargs: kwargs, "use", ("use",), {name: annotation}, {}, int)
    pipe = mloop.Pipeline("prop", steps=[make, use])
    if name == "number":
        edges, _ = pipe.wire()
        assert [(e.src, e.input) for e in edges] == [("make", "number")]
        return
    with pytest.raises(InvalidInputError, match=f"nothing provides input '{name}'"):
        pipe.wire()
    _, external = pipe.wire([name])
    assert external == {"use": {name: name}}


def test_the_cli_refuses_a_miswired_pipeline_with_exit_2(sqlite_project):
    (sqlite_project.root / "pipelines.py").write_text(textwrap.dedent(MISWIRED))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    env["MLOOP_STORE_URI"] = sqlite_project.settings.store_uri
    out = subprocess.run([sys.executable, "-m", "mloop", "pipeline", "run", "miss"],
                         cwd=sqlite_project.root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert "miss_x" in out.stderr and "nonexistent_input" in out.stderr
    assert "Traceback" not in out.stderr
    given = subprocess.run([sys.executable, "-m", "mloop", "pipeline", "run", "miss",
                            "--input", "nonexistent_input=5"], cwd=sqlite_project.root,
                           env=env, capture_output=True, text=True, timeout=120)
    assert given.returncode == 0, given.stderr
