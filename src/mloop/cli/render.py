"""Output helpers shared by the commands: rich tables for people, JSON for programs.

Everything shown here is data: a table's cells, headers and title go to rich as
:class:`rich.text.Text` (never parsed as markup or emoji codes, so a run named
``x[/b]y`` is printed as ``x[/b]y``), and every string passes through
:func:`mloop.core.printable.printable`, so control characters from user text (ANSI
escapes, carriage returns, bidi overrides) are shown as escapes, never sent raw. The
commands print lines with :func:`echo` instead of ``click.echo`` for the same reason.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click

from mloop.core.jsonsafe import json_float
from mloop.core.printable import printable

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


def echo(message: object = "", *, err: bool = False, nl: bool = True,
         fg: str | None = None) -> None:
    """``click.echo`` for text that holds user data: control characters are escaped
    (newlines and tabs kept); ``fg`` colours the whole line."""
    text = printable(message)
    if fg is None:
        click.echo(text, err=err, nl=nl)
    else:
        click.secho(text, err=err, nl=nl, fg=fg)


def _cell(value: Any) -> Any:
    """A table cell, header or title as literal text: no markup, no emoji, one line."""
    from rich.text import Text

    return Text(printable(fmt(value), one_line=True))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
          empty: str = "Nothing to show.") -> None:
    """Print a table; an empty one prints ``empty`` instead. Cells are data (see above).

    Every row stays one line: when the table is wider than the screen, the widest columns
    are cut (with an ellipsis) to a common width, and the first column, which names the
    row, keeps up to a third of the screen.
    """
    from rich.console import Console
    from rich.table import Table

    rows = list(rows)
    # A pipe or file gets wide, unwrapped lines (easy to grep); a terminal its own width.
    tty = sys.stdout.isatty()
    console = Console(soft_wrap=False, width=None if tty else 240)
    if not rows:
        console.print(_cell(empty))
        return
    t = Table(title=None if title is None else _cell(title), show_edge=False,
              header_style="bold")
    headers = [_cell(col) for col in columns]
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([h.cell_len, *(r[i].cell_len for r in cells if i < len(r))])
              for i, h in enumerate(headers)]
    first = min(widths[0], console.width // 3) if widths else 0
    # each column has one space of padding either side and one rule between columns
    room = console.width - 3 * len(widths) + 1 - first
    cap = _common_cap(widths[1:], room)
    for i, header in enumerate(headers):
        limit = first if i == 0 else cap
        t.add_column(header, no_wrap=True, overflow="ellipsis",
                     min_width=limit if i == 0 else None, max_width=limit)
    for row_cells in cells:
        t.add_row(*row_cells)
    console.print(t)


def _common_cap(widths: Sequence[int], room: int) -> int | None:
    """The largest width C such that the columns, each cut to at most C, fit in ``room``
    (``None`` when they fit as they are); at least 8, so a cut cell still says something."""
    if sum(widths) <= room:
        return None
    used = 0
    ordered = sorted(widths)
    for i, width in enumerate(ordered):
        cap = (room - used) // (len(ordered) - i)
        if cap < width:
            return max(cap, 8)
        used += width
    return None


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
