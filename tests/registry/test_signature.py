"""Signature enforcement: nothing converts between types, missing values only where taken."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import InvalidInputError
from mloop.registry.signature import ColumnError, Signature, enforce

SIG = Signature("table", (("f", "float64"), ("i", "int64"), ("b", "bool"), ("s", "str"),
                          ("d", "datetime64[ns]")))
GOOD = {"f": 1.5, "i": 2, "b": True, "s": "x", "d": "2024-01-02T03:04:05"}


def _rows(**change):
    """Two records, the second changed: the frame a JSON body gives the server."""
    return pd.DataFrame([GOOD, GOOD | change])


def test_fitting_rows_pass_and_the_two_widenings():
    out = enforce(SIG, _rows(f=3, i=4.0))  # an integer is a float; a whole float an integer
    assert out["f"].tolist() == [1.5, 3.0] and out["i"].tolist() == [2, 4]
    assert [out[c].dtype.kind for c in "fibd"] == ["f", "i", "b", "M"]
    typed = enforce(SIG, [GOOD])
    assert enforce(SIG, typed) is typed  # already right: passes as it is, no copy
    records = [GOOD | {"f": None}]  # a missing float goes to the model when not known
    assert math.isnan(enforce(SIG, records)["f"].iloc[0])


@pytest.mark.parametrize(("change", "column", "says"), [
    ({"f": True}, "f", "row 1 has True"),  # true is not 1
    ({"f": "17.5"}, "f", "row 1 has '17.5'"),  # a string is not a number
    ({"i": False}, "i", "row 1 has False"),
    ({"i": "3"}, "i", "row 1 has '3'"),
    ({"i": 1.5}, "i", "row 1 has 1.5"),
    ({"i": 2 ** 63}, "i", "not a whole number from"),
    ({"i": 2 ** 70}, "i", "int64"),
    ({"f": 2 ** 2000}, "f", "float64"),
    ({"b": 1}, "b", "row 1 has 1"),  # 1 is not true
    ({"b": "true"}, "b", "row 1 has 'true'"),
    ({"s": 5}, "s", "row 1 has 5"),  # a number is not a string
    ({"s": {"a": 1}}, "s", "row 1 has {'a': 1}"),
    ({"f": [1, 2]}, "f", "row 1 has [1, 2]"),
    ({"d": 5}, "d", "row 1 has 5"),
    ({"d": "yesterday"}, "d", "yesterday"),
    ({"i": None}, "i", "an int64 column cannot hold one"),
    ({"b": None}, "b", "a bool column cannot hold one"),
])
def test_values_of_another_type_are_refused_naming_the_column(change, column, says):
    with pytest.raises(ColumnError, match=f"'{column}'") as err:
        enforce(SIG, _rows(**change))
    assert err.value.column == column and says in str(err.value)
    assert isinstance(err.value, InvalidInputError)


def test_missing_values_only_in_the_columns_the_model_takes_them():
    holes = _rows(f=None, s=None, d=None)
    out = enforce(SIG, holes, nullable=frozenset({"f", "s", "d"}))
    assert out["f"].isna().tolist() == [False, True] and out["d"].isna().iloc[1]
    with pytest.raises(ColumnError, match=r"'f' has a missing value .* in row 1") as err:
        enforce(SIG, holes, nullable=frozenset({"s", "d"}))
    assert err.value.column == "f" and "does not take missing values" in str(err.value)
    with pytest.raises(ColumnError, match="'s'"):
        enforce(SIG, _rows(s=None), nullable=frozenset())
    nan = pd.DataFrame([GOOD]).assign(f=np.nan)  # NaN in a typed float column, too
    with pytest.raises(ColumnError, match="'f'"):
        enforce(SIG, nan, nullable=frozenset())


def test_columns_repeated_missing_or_unknown():
    frame = pd.DataFrame([[1.5, 2, True, "x", "2024-01-01", 1.0]],
                         columns=["f", "i", "b", "s", "d", "f"])
    with pytest.raises(ColumnError, match="'f' more than once"):
        enforce(SIG, frame)
    with pytest.raises(ColumnError, match=r"missing column\(s\) 'b'") as err:
        enforce(SIG, pd.DataFrame([GOOD]).drop(columns="b"))
    assert err.value.column == "b"
    many = pd.DataFrame([GOOD | {f"x{n}": 1 for n in range(500)}])
    with pytest.raises(ColumnError, match="and 495 more") as err:  # the message stays short
        enforce(SIG, many)
    assert len(str(err.value)) < 400


def test_tensors_are_checked_the_same_way():
    sig = Signature("tensor", dtype="float64", shape=(2,))
    assert enforce(sig, np.array([[1, 2]])).dtype == np.float64
    with pytest.raises(ColumnError, match="row 1 has True"):
        enforce(sig, pd.DataFrame({"a": [1.0, True], "b": [1.0, 2.0]}))
    with pytest.raises(ColumnError, match="row 1 has '2'"):
        enforce(sig, np.array([[1, 2], [3, "2"]], dtype=object))
    with pytest.raises(ColumnError, match=r"missing value .* row 1"):
        enforce(sig, np.array([[1.0, 2.0], [np.nan, 1.0]]), nullable=frozenset())
    assert enforce(sig, np.array([[np.nan, 1.0]]), nullable=frozenset({"input"})).shape == (1, 2)
    with pytest.raises(ColumnError, match="shape"):
        enforce(sig, np.ones((2, 3)))
    with pytest.raises(InvalidInputError, match="table"):
        enforce(SIG, np.ones((2, 3, 4)))


# -- the property: whatever a JSON body holds, enforce refuses it or keeps its meaning ---------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=4), st.sampled_from(["17.5", "1", "true", "2024-01-01"]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2),
                   st.dictionaries(st.text(max_size=2), SCALARS, max_size=2))
TAKES = {"f": (int, float), "i": (int, float), "b": (bool,), "s": (str,), "d": (str,)}


@settings(max_examples=400, deadline=None)
@given(st.lists(st.fixed_dictionaries(dict.fromkeys("fibsd", VALUES)), min_size=1, max_size=4),
       st.one_of(st.none(), st.frozensets(st.sampled_from("fsd"))))
def test_enforce_refuses_or_keeps_the_meaning_of_any_json_rows(records, nullable):
    try:
        out = enforce(SIG, pd.DataFrame(records), nullable=nullable)
    except ColumnError as exc:  # a caller's mistake, named; nothing else may escape
        assert exc.column in "fibsd"  # noqa: PT017 - a property over many inputs
        return
    for column, takes in TAKES.items():
        for row, value in enumerate(r[column] for r in records):
            if value is None:  # only where the model takes a gap (or nobody knows)
                assert column in (nullable if nullable is not None else "fsd")
                assert pd.isna(out[column].iloc[row])
                continue
            # nothing was converted from another type: true is not 1, "1" is not 1
            assert isinstance(value, takes) and not (isinstance(value, bool)
                                                     and bool not in takes)
            if column in "fi":  # the same number (an integer as the nearest float)
                assert out[column].iloc[row] == (float(value) if column == "f" else value)
            elif column in "bs":
                assert out[column].iloc[row] == value
    assert [out[c].dtype.kind for c in "fib"] == ["f", "i", "b"]


def test_the_serving_docs_list_every_column_type_with_its_v2_datatype():
    from pathlib import Path

    from mloop.registry import signature
    from mloop.serving.inference import _v2_of

    docs = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    table = docs.split("## Values", 1)[1].split("\n## ", 1)[0]
    for dtype in signature._TAKES:
        assert f"| `{dtype}` (`{_v2_of(dtype)}`) |" in table, dtype


@pytest.mark.parametrize("column", [np.array([2**53 + 1, None], dtype=object),
                                    np.array([-(2**53) - 1], dtype=np.int64)])
def test_a_whole_number_a_float_cannot_hold_is_refused_not_rounded(column):
    sig = Signature("table", columns=[("a", "float64")])
    with pytest.raises(ColumnError, match=r"cannot be read as float64 exactly: row 0 has "
                                          r"-?9007199254740993"):
        enforce(sig, pd.DataFrame({"a": column}))
    # 2**53 itself, and every smaller whole number, is exact
    exact = enforce(sig, pd.DataFrame({"a": np.array([2**53, 3, None], dtype=object)}))
    assert exact["a"].tolist()[:2] == [2.0**53, 3.0]
