"""``mloop data validate``: check a tabular version against a schema file.

A schema is YAML (or JSON)::

    columns:
      age:     {type: int, min: 0, max: 120, max_null_share: 0.01}
      email:   {type: str, unique: true}
      plan:    {type: str, allowed: [free, pro, team]}
    rows: {min: 1000}

Types: int, float, str, bool, datetime. Every check reports the measured value; the
result is stored with the version (``mloop data show``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from mloop.data.catalog import get
from mloop.data.compare import version_bytes
from mloop.data.model import dumps
from mloop.data.stats import read_frame, table_format
from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.store.schema import dataset_versions, datasets

KNOWN_KEYS = {"type", "min", "max", "max_null_share", "unique", "allowed", "required"}
TYPES = {"int", "float", "str", "bool", "datetime"}


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


def load_schema(path: str | Path) -> dict[str, Any]:
    """Read and check a schema file; errors name the column and the key at fault."""
    import yaml

    try:
        schema = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"Cannot read schema {path}: {exc}") from exc
    if not isinstance(schema, dict) or not isinstance(schema.get("columns"), dict):
        raise InvalidInputError(f"Schema {path} needs a 'columns:' mapping of column name to "
                                "checks, e.g. columns: {{age: {{type: int, min: 0}}}}.")
    for col, rules in schema["columns"].items():
        if not isinstance(rules, dict):
            raise InvalidInputError(f"Schema {path}: column {col!r} needs a mapping of checks.")
        unknown = set(rules) - KNOWN_KEYS
        if unknown:
            raise InvalidInputError(f"Schema {path}: column {col!r} has unknown check(s) "
                                    f"{sorted(unknown)}; known: {sorted(KNOWN_KEYS)}.")
        if "type" in rules and rules["type"] not in TYPES:
            raise InvalidInputError(f"Schema {path}: column {col!r} type {rules['type']!r} is "
                                    f"not one of {sorted(TYPES)}.")
    return schema


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
        if "min" in rules and len(values):
            low = values.min()
            add(Check(col, "min", bool(low >= rules["min"]), _plain(low), rules["min"]))
        if "max" in rules and len(values):
            high = values.max()
            add(Check(col, "max", bool(high <= rules["max"]), _plain(high), rules["max"]))
        if rules.get("unique"):
            dupes = int(values.duplicated().sum())
            add(Check(col, "unique", dupes == 0, dupes, 0))
        if "allowed" in rules:
            bad = values[~values.isin(rules["allowed"])]
            add(Check(col, "allowed", bad.empty, sorted(map(str, bad.unique()[:5])),
                      rules["allowed"]))
    return result


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
    with project.store.write() as conn:
        ds_id = conn.execute(select(datasets.c.id).where(datasets.c.name == version.name)).scalar()
        conn.execute(update(dataset_versions).where(
            dataset_versions.c.dataset_id == ds_id,
            dataset_versions.c.version == version.version).values(
            validation=dumps(result.to_dict())))
    return result
