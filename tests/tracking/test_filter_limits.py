"""Filters of any shape or size are either searched or refused with a FilterSyntaxError.

A filter 3,000 parentheses deep once raised RecursionError, and a 5,000-term OR built
an expression tree SQLite refuses ("maximum depth 1000"). The parser now bounds depth,
comparisons, IN values and length, and what it accepts at those bounds runs on both
stores.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mloop
from mloop.errors import FilterSyntaxError, InvalidInputError
from mloop.tracking.filter import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_TERMS,
    MAX_VALUES,
    parse_filter,
    parse_order_by,
)
from mloop.tracking.search import search_runs
from tests.cli.test_cli import run_cli


def _nested(depth: int) -> str:
    return "(" * depth + "metrics.acc > 0" + ")" * depth


def _alternating(depth: int, leaf: str = "params.q in ('a', 'b')") -> str:
    """``a or a and (a or a and (…))``: two and/or groups per parenthesis."""
    return "".join(f"({leaf} or {leaf} and " for _ in range(depth)) + leaf + ")" * depth


def _or_terms(n: int) -> str:
    return " or ".join(f"metrics.acc > {i}" for i in range(n))


@pytest.mark.parametrize(("text", "says"), [
    (_nested(3000), f"nested more than {MAX_DEPTH} deep"),
    (_nested(MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} deep"),
    (_alternating(MAX_DEPTH // 2 + 1), f"groups nested more than {MAX_DEPTH} deep"),
    (_or_terms(5000), f"More than {MAX_TERMS} comparisons"),
    (_or_terms(MAX_TERMS + 1), f"More than {MAX_TERMS} comparisons"),
    ("params.p in (" + ", ".join(["'v'"] * (MAX_VALUES + 1)) + ")", "values in IN lists"),
    ("params.p = '" + "x" * MAX_LENGTH + "'", "characters long"),
    ("params.p = 'a\x00b'", "NUL character"),
    ("params.p = 'a\udcffb'", "undecodable byte"),
])
def test_limits_are_filter_syntax_errors(text, says):
    with pytest.raises(FilterSyntaxError, match=says) as info:
        parse_filter(text)
    _message, excerpt, caret = str(info.value).splitlines()
    assert len(excerpt) <= 90 and caret.strip() == "^"  # a window, not the whole filter


def _worst_case() -> str:
    """MAX_TERMS comparisons in and/or groups nested MAX_DEPTH deep (an IN probe, the
    deepest SQL, at the bottom), mixing every kind of probe."""
    kinds = ["metrics.acc > {i}", "params.p != 'v{i}'", "tags.t = 'x{i}'",
             "attributes.name like 'n{i}%'", "metrics.other <= {i}", "params.q in ('a', 'b')"]
    per_level = MAX_TERMS // MAX_DEPTH - 1
    text, used = "", 0
    for level in range(MAX_DEPTH - 1):
        terms = [kinds[(level + j) % len(kinds)].format(i=level * 100 + j)
                 for j in range(per_level)]
        used += len(terms)
        joiner = " or " if level % 2 else " and "
        text += "(" + joiner.join(terms) + joiner
    rest = MAX_TERMS - used - 1
    text += ("(params.q in ('a', 'b') and "
             + " and ".join(f"metrics.acc >= {-i}" for i in range(rest)) + ")"
             + ")" * (MAX_DEPTH - 1))
    return text


def test_the_largest_accepted_filter_runs_on_every_store(project):
    with mloop.start_run(experiment="e", project=project) as run:
        run.log_params({"p": "v", "q": "a"})
        run.log_metrics({"acc": 0.5, "other": -1})
        run.set_tags({"t": "x"})
    for text in (_worst_case(), _alternating(MAX_DEPTH // 2), _nested(MAX_DEPTH)):
        frame = search_runs(project, filter=text)
        assert len(frame) <= 1  # ran; whether it matches is not the point
    wide = "metrics.acc > -1 or " + " or ".join(
        f"params.p = 'v{i}'" for i in range(MAX_TERMS - 1))
    assert list(search_runs(project, filter=wide)["run_id"]) == [run.id]
    values = "params.p in (" + ", ".join(f"'v{i}'" for i in range(MAX_VALUES - 1)) + ", 'v')"
    assert list(search_runs(project, filter=values)["run_id"]) == [run.id]


# Strings made of the filter language's own pieces reach far deeper into the parser than
# arbitrary text does.
PIECES = ["(", ")", "(", ")", " and ", " or ", " not ", " in ", " like ", " ilike ", "metrics",
          "params", "tags", "attributes", "attr", ".", "acc", "status", "name", "start_time",
          "`a b`", "\"q\"", "=", "!=", "<>", "<", "<=", ">", ">=", "'x'", "'it''s'", "'%'",
          "1", "-2.5", "1e999", "nan", "inf", "null", ",", " ", "\\", "'", "\x00", "é", "\n"]
filters = st.one_of(st.text(max_size=80),
                    st.lists(st.sampled_from(PIECES), max_size=40).map("".join))


@settings(max_examples=500, deadline=None)
@given(filters)
def test_parser_accepts_or_refuses_cleanly(text):
    try:
        parse_filter(text)
    except FilterSyntaxError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(filters, max_size=3))
def test_order_by_accepts_or_refuses_cleanly(items):
    try:
        parse_order_by(items)
    except FilterSyntaxError:
        pass


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filters)
def test_search_answers_or_refuses_cleanly(sqlite_project, text):
    """Whatever parses also compiles to SQL the store runs (SQLite here)."""
    try:
        search_runs(sqlite_project, filter=text, max_results=5)
    except (FilterSyntaxError, InvalidInputError):
        pass


@pytest.mark.parametrize("text", [_nested(3000), _or_terms(5000)], ids=["deep", "wide"])
def test_cli_refuses_in_one_error_and_exit_2(tmp_path, text):
    mloop.init(tmp_path / "p")
    out = run_cli("runs", "list", "-f", text, cwd=tmp_path / "p", check=False)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("Error: ") and "Traceback" not in out.stderr
    assert len(out.stderr) < 600  # the filter is quoted around the mistake, not whole
