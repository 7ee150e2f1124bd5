"""Comparing runs side by side."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.tracking.records import get_run


@dataclass(frozen=True)
class CompareRow:
    field: str  # "params.C", "metrics.acc", "status", …
    values: list[Any]
    differs: bool


@dataclass(frozen=True)
class Comparison:
    run_ids: list[str]
    names: list[str]
    rows: list[CompareRow]


def compare_runs(project: Project, run_ids: list[str]) -> Comparison:
    """Status, params and latest metrics of ``run_ids``, one row per field."""
    if len(run_ids) < 2:
        raise InvalidInputError("Give at least two runs to compare.")
    loaded = [get_run(project, r) for r in run_ids]
    rows = [_row("experiment", [r.experiment for r in loaded]),
            _row("status", [str(r.status) for r in loaded]),
            _row("git_commit", [(r.git_commit or "-")[:12] for r in loaded])]
    for prefix, attr in (("params", "params"), ("metrics", "metrics")):
        keys = sorted({k for r in loaded for k in getattr(r, attr)})
        rows += [_row(f"{prefix}.{k}", [getattr(r, attr).get(k) for r in loaded]) for k in keys]
    return Comparison([r.id for r in loaded], [r.name for r in loaded], rows)


def _row(field: str, values: list[Any]) -> CompareRow:
    norm = ["nan" if isinstance(v, float) and math.isnan(v) else v for v in values]
    return CompareRow(field, values, len({repr(v) for v in norm}) > 1)
