"""``mloop data validate``: check a tabular version against a schema file.

A schema is YAML (or JSON)::

    columns:
      age:     {type: int, min: 0, max: 120, max_null_share: 0.01}
      email:   {type: str, unique: true}
      plan:    {type: str, allowed: [free, pro, team]}
    rows: {min: 1000}

Types: int, float, str, bool, datetime. Every check reports the measured value; the
result is stored with the version (``mloop data show``). The file is checked against
:class:`DataSchema` first (every key is listed in ``docs/configuration.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from mloop.core import schema as S
from mloop.core.schema import Name, Schema, TypeName
from mloop.data.catalog import get
from mloop.data.compare import version_bytes
from mloop.data.stats import read_frame, table_format
from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.repositories import backend


@dataclass
class Check:
    column: str
    check: str
    passed: bool
    measured: Any
    expected: Any

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "check": self.check, "passed": self.passed,
                "measured": self.measured, "expected": self.expected}


@dataclass
class ValidationResult:
    ref: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "passed": self.passed,
                "checks": [c.to_dict() for c in self.checks]}


Bound = Annotated[int | float | str | date | datetime,
                  TypeName("a number (a date or text for such columns)")]
Share = Annotated[float, Field(ge=0, le=1)]


class ColumnRules(Schema):
    """The checks of one column; each is optional."""

    type: Literal["int", "float", "str", "bool", "datetime"] | None = Field(
        None, description="the column's type")
    min: Bound | None = Field(None, description="no value below")
    max: Bound | None = Field(None, description="no value above")
    max_null_share: Share | None = Field(None, description="at most this share of nulls")
    unique: bool = Field(False, description="no value twice")
    allowed: Annotated[list[str | bool | int | float] | None,
                       TypeName("a list of values (text, numbers, true/false)")] = Field(
        None, description="the only values allowed")
    required: bool = Field(True, description="the column must be present")

    @model_validator(mode="after")
    def _bounds_fit_the_type(self) -> ColumnRules:
        numeric = self.type in ("int", "float", "bool")
        for key in ("min", "max"):
            value = getattr(self, key)
            if numeric and value is not None and not isinstance(value, int | float):
                raise ValueError(f"{key} of {self.type} values must be a number, not "
                                 f"{value!r}")
        if isinstance(self.min, int | float) and isinstance(self.max, int | float) and \
                self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}: no value can pass")
        return self


class RowRules(Schema):
    min: Annotated[int, Field(ge=0)] | None = Field(None, description="at least this many "
                                                    "rows")


class DataSchema(Schema):
    """A data validation schema (``mloop data validate --schema``)."""

    columns: dict[Name, ColumnRules] = Field(..., description="column name to its checks")
    rows: RowRules | None = Field(None, description="checks of the whole table")


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read and check a schema file (YAML or JSON): a :class:`ConfigError` names the file,
    the column and the key at fault, with the closest known key."""
    from mloop.core.yamlio import load_yaml

    data = load_yaml(path)
    return S.validate(DataSchema, data, source=path).model_dump(exclude_unset=True,
                                                             exclude_none=True)


def _type_ok(series: Any, want: str) -> bool:
    import pandas as pd

    api = pd.api.types
    return {
        "int": api.is_integer_dtype(series),
        "float": api.is_float_dtype(series) or api.is_integer_dtype(series),
        "str": api.is_string_dtype(series) or api.is_object_dtype(series),
        "bool": api.is_bool_dtype(series),
        "datetime": api.is_datetime64_any_dtype(series),
    }[want]


def check_frame(df: Any, schema: dict[str, Any], ref: str) -> ValidationResult:
    """Run every check of ``schema`` on ``df`` (vectorised per column)."""
    result = ValidationResult(ref)
    rows = schema.get("rows") or {}
    if "min" in rows:
        result.checks.append(Check("*", "rows.min", len(df) >= rows["min"], len(df), rows["min"]))
    for col, rules in schema["columns"].items():
        if col not in df.columns:
            result.checks.append(Check(col, "present", not rules.get("required", True),
                                       False, True))
            continue
        s = df[col]
        add = result.checks.append
        if "type" in rules:
            add(Check(col, "type", _type_ok(s, rules["type"]), str(s.dtype), rules["type"]))
        if "max_null_share" in rules:
            share = float(s.isna().mean()) if len(s) else 0.0
            add(Check(col, "max_null_share", share <= rules["max_null_share"], share,
                      rules["max_null_share"]))
        values = s.dropna()
        for key in ("min", "max"):
            if key in rules and len(values):
                add(_bound(col, key, values, rules[key]))
        if rules.get("unique"):
            dupes = int(values.duplicated().sum())
            add(Check(col, "unique", dupes == 0, dupes, 0))
        if "allowed" in rules:
            bad = values[~values.isin(rules["allowed"])]
            add(Check(col, "allowed", bad.empty, sorted(map(str, bad.unique()[:5])),
                      rules["allowed"]))
    return result


def _bound(col: str, key: str, values: Any, bound: Any) -> Check:
    """The ``min``/``max`` check of a column; a bound its values cannot be compared with
    (text for numbers) is the schema's mistake, said as such."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values) and isinstance(bound, str | date):
        bound = pd.Timestamp(bound)  # YAML reads 2024-01-31 as a date
    try:
        edge = values.min() if key == "min" else values.max()
        ok = bool(edge >= bound) if key == "min" else bool(edge <= bound)
    except (TypeError, ValueError):
        raise InvalidInputError(f"Schema: columns.{col}.{key}: {bound!r} cannot be compared "
                                f"with the values of {col!r} ({values.dtype}); give a bound "
                                "of the column's type.") from None
    return Check(col, key, ok, _plain(edge), bound)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def validate(project: Project, ref: str, schema_path: str | Path) -> ValidationResult:
    """Validate a CSV/Parquet version and store the result with it."""
    schema = load_schema(schema_path)
    version = get(project, ref)
    name, data = version_bytes(project, version.ref)
    fmt = table_format(name)
    if fmt is None:
        raise InvalidInputError(f"{version.ref} is {name!r}, not a CSV or Parquet file.")
    result = check_frame(read_frame(data, fmt), schema, version.ref)
    backend(project).datasets.set_validation(version.name, version.version, result.to_dict())
    return result
