import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import FilterSyntaxError
from mloop.tracking.filter import BoolOp, Comparison, parse_filter, parse_order_by


def test_issue_filter():
    node = parse_filter("metrics.acc > 0.9 and params.model = 'logreg'")
    assert node == BoolOp("and", (Comparison("metrics", "acc", ">", 0.9, 0),
                                  Comparison("params", "model", "=", "logreg", 22)))


@pytest.mark.parametrize(("text", "expected"), [
    ("metrics.`val loss` <= 1e-3", Comparison("metrics", "val loss", "<=", 0.001, 0)),
    ('tags."mloop.autolog" = "x"', Comparison("tags", "mloop.autolog", "=", "x", 0)),
    ("tags.mloop.autolog != 'y'", Comparison("tags", "mloop.autolog", "!=", "y", 0)),
    ("params.model IN ('a', 'b')", Comparison("params", "model", "in", ("a", "b"), 0)),
    ("params.model NOT IN ('a')", Comparison("params", "model", "not in", ("a",), 0)),
    ("attributes.status != 'FAILED'", Comparison("attributes", "status", "!=", "FAILED", 0)),
    ("attr.run_name LIKE 'log%'", Comparison("attributes", "name", "like", "log%", 0)),
    ("metric.acc>=-1", Comparison("metrics", "acc", ">=", -1.0, 0)),
    ("params.s = 'it''s'", Comparison("params", "s", "=", "it's", 0)),
    ("tags.t = null", Comparison("tags", "t", "=", None, 0)),
    ("metrics.inf > -inf", Comparison("metrics", "inf", ">", float("-inf"), 0)),
])
def test_forms(text, expected):
    assert parse_filter(text) == expected


def test_precedence_and_parentheses():
    node = parse_filter("metrics.a > 1 or metrics.b > 2 and metrics.c > 3")
    assert isinstance(node, BoolOp) and node.op == "or"
    assert isinstance(node.parts[1], BoolOp) and node.parts[1].op == "and"
    node = parse_filter("(metrics.a > 1 or metrics.b > 2) and metrics.c > 3")
    assert isinstance(node, BoolOp) and node.op == "and"


@pytest.mark.parametrize(("text", "position", "says"), [
    ("metrics.acc 0.9", 12, "comparison operator"),
    ("metrics.acc > 'high'", 14, "is a number"),
    ("params.C > 0.5", 11, "quote the value"),
    ("foo.acc > 1", 0, "Unknown field type"),
    ("metrics.acc > 1 and", 19, "Expected a field"),
    ("metrics.acc > 1 params.x = 'a'", 16, "Expected 'and'"),
    ("attributes.colour = 'red'", 11, "Unknown attribute"),
    ("metrics.acc > 1 ; drop table runs", 16, "Unexpected character"),
    ("(metrics.acc > 1", 16, "Expected ')'"),
    ("params.m IN 'a'", 12, "'('"),
    ("metrics.acc LIKE 'a%'", 12, "LIKE compares text"),
])
def test_errors_point_at_the_mistake(text, position, says):
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.position == position
    assert says in str(info.value)
    assert str(info.value).splitlines()[-1] == "  " + " " * position + "^"


def test_blank_filter_is_none():
    assert parse_filter(None) is None and parse_filter("  ") is None


def test_order_by():
    keys = parse_order_by(["metrics.acc DESC", "params.C", "attributes.start_time asc"])
    assert [(k.entity, k.key, k.descending) for k in keys] == [
        ("metrics", "acc", True), ("params", "C", False), ("attributes", "start_time", False)]
    with pytest.raises(FilterSyntaxError):
        parse_order_by(["metrics.acc DOWN"])


@given(st.text(max_size=60))
def test_parser_never_crashes(text):
    try:
        parse_filter(text)
    except FilterSyntaxError:
        pass


values = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32),
                   st.integers(-10**6, 10**6))


@given(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), values)
def test_numeric_comparisons_round_trip(op, value):
    node = parse_filter(f"metrics.m {op} {value!r}")
    assert node == Comparison("metrics", "m", op, float(value), 0)
