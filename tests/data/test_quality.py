"""Data validation schemas: the file's schema (every mistake named with its key) and the
checks on a frame."""

import datetime

import pandas as pd
import pytest

from mloop.data.quality import check_frame, load_schema
from mloop.errors import ConfigError, InvalidInputError

FRAME = pd.DataFrame({"age": [18, 40, 89], "plan": ["free", "pro", "team"],
                      "day": pd.to_datetime(["2024-01-02", "2024-02-01", "2024-03-01"])})


def _schema(tmp_path, text):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "words"), [
    ("columns:\n  age: {type: int, mni: 0}\n", "columns.age.mni: unknown key; did you mean 'min'?"),
    ("colums:\n  age: {}\n", "colums: unknown key; did you mean 'columns'?"),
    ("columns:\n  age: {type: integer}\n",
     "columns.age.type: expected one of 'int', 'float', 'str', 'bool' or 'datetime', got "
     "'integer'; did you mean 'int'?"),
    ("columns:\n  age: {type: int, min: high}\n",
     "columns.age: min of int values must be a number, not 'high'"),
    ("columns:\n  age: {min: 5, max: 1}\n", "columns.age: min 5 is above max 1"),
    ("columns:\n  age: {max_null_share: 2}\n",
     "columns.age.max_null_share: must be less than or equal to 1, got 2"),
    ("columns:\n  age: {unique: 'yes'}\n", "columns.age.unique: expected true or false"),
    ("columns: {}\nrows: {min: -1}\n", "rows.min: must be greater than or equal to 0"),
    ("columns: {}\nrows: {max: 5}\n", "rows.max: unknown key; known keys: min"),
    ("columns: [age]\n", "columns: expected a mapping"),
    ("rows: {min: 1}\n", "the key 'columns' is required"),
])
def test_mistakes_name_the_file_and_the_key(tmp_path, text, words):
    path = _schema(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_schema(path)
    assert err.value.message.startswith(f"{path}: ")
    assert words in err.value.message


def test_checks_on_a_frame(tmp_path):
    schema = load_schema(_schema(tmp_path, """
        columns:
          age: {type: int, min: 18, max: 65}
          plan: {type: str, allowed: [free, pro]}
          day: {type: datetime, min: 2024-01-01, max: "2024-02-15"}
          email: {required: false}
        rows: {min: 3}
    """.replace("\n        ", "\n")))
    assert schema["columns"]["day"]["min"] == datetime.date(2024, 1, 1)
    result = check_frame(FRAME, schema, "t@1")
    failed = {(c.column, c.check) for c in result.checks if not c.passed}
    assert failed == {("age", "max"), ("plan", "allowed"), ("day", "max")}
    assert {c.check for c in result.checks if c.column == "email"} == {"present"}


def test_a_bound_the_values_cannot_be_compared_with_is_a_clear_error(tmp_path):
    schema = load_schema(_schema(tmp_path, "columns:\n  plan: {min: 3}\n"))
    with pytest.raises(InvalidInputError, match=r"columns.plan.min: 3 cannot be compared with "
                                                "the values of 'plan'"):
        check_frame(FRAME, schema, "t@1")


def test_json_schemas_load_too(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text('{"columns": {"age": {"type": "int", "min": 0}}}')
    assert load_schema(path) == {"columns": {"age": {"type": "int", "min": 0}}}
