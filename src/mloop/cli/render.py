"""Output helpers shared by the commands: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click

from mloop.tracking.model import json_float

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print machine-readable JSON instead of a table.")


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return str(value)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON (NaN and infinities as strings)."""
    click.echo(json.dumps(_clean(obj), indent=2, default=_default))


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return json_float(obj)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
          empty: str = "Nothing to show.") -> None:
    """Print a table; an empty one prints ``empty`` instead."""
    from rich.console import Console
    from rich.table import Table

    rows = list(rows)
    # A pipe or file gets wide, unwrapped lines (easy to grep); a terminal its own width.
    tty = sys.stdout.isatty()
    console = Console(soft_wrap=False, width=None if tty else 240)
    if not rows:
        console.print(empty)
        return
    t = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        t.add_column(col, no_wrap=True, overflow="ellipsis")
    for row in rows:
        t.add_row(*(fmt(v) for v in row))
    console.print(t)


def fmt(value: Any) -> str:
    """A cell: numbers with up to 6 significant digits, '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    return str(value)


def kv_section(title: str, values: dict[str, Any], *, sort: bool = True) -> None:
    """A two-column key/value table under a heading (sorted by key unless ``sort=False``)."""
    items = sorted(values.items()) if sort else list(values.items())
    table(["key", "value"], items, title=title, empty=f"{title}: none")
