"""Rendering the UI's pages: one Jinja2 environment (autoescaped), tables that download as
CSV, and the context every page shares (who is looking, the CSRF token, the assets).

A page handler returns :func:`page`. Its tables are :class:`Table` objects; the same URL
with ``?format=csv&table=ID`` answers that table as CSV, so every table on every page can
be downloaded without a second handler.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from mloop._version import __version__
from mloop.core.identity import Identity
from mloop.errors import InvalidInputError

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "/ui"


# ── tables ───────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Column:
    """A table column: ``key`` into each row, a ``label``, and how to show the value —
    ``text``, ``num`` (right-aligned, formatted), ``time`` (ms since the epoch), ``link``
    (the row's ``<key>_href`` is the target) or ``html`` (a value made by the page's own
    code as :class:`~markupsafe.Markup`; never user text)."""

    key: str
    label: str
    kind: str = "text"
    sort: str | None = None  # the value of ``order=`` that sorts by this column, when any


@dataclass
class Table:
    id: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    caption: str = ""
    empty: str = "Nothing here yet."

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.label for c in self.columns])
        for row in self.rows:
            writer.writerow([_csv_cell(row.get(c.key), c.kind) for c in self.columns])
        return out.getvalue()


def _csv_cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, Markup):
        value = value.striptags()
    if kind == "time" and isinstance(value, (int, float)):
        return iso_time(value)
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and kind not in ("num", "time"):
        text = "'" + text  # a spreadsheet must not run a cell as a formula
    return text


# ── formatting filters ──────────────────────────────────────────────────────────────
def iso_time(ms: float | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ms: float | None, now_ms: float | None = None) -> str:
    """``3 min ago``-style text for a time in ms."""
    if ms is None:
        return ""
    now = now_ms if now_ms is not None else dt.datetime.now(dt.UTC).timestamp() * 1000
    seconds = max(0.0, (now - ms) / 1000)
    for size, unit in ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def number(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        magnitude = abs(value)
        if magnitude and (magnitude >= 1e6 or magnitude < 10 ** -digits):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def quote(value: Any) -> str:
    """A path segment of a URL (``/`` included)."""
    return urllib.parse.quote(str(value), safe="")


def ui_url(*parts: Any, **query: Any) -> str:
    """A URL of the UI: path segments quoted one by one, empty query values left out."""
    path = PREFIX + "/" + "/".join(quote(p) for p in parts if p != "")
    pairs = {k: v for k, v in query.items() if v is not None and v != ""}
    return path + ("?" + urllib.parse.urlencode(pairs, doseq=True) if pairs else "")


def with_query(request: Request, **changes: Any) -> str:
    """This page's URL with query parameters changed (``None`` removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urllib.parse.urlencode(params)
    return request.url.path + (f"?{query}" if query else "")


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(iso=iso_time, ago=ago, num=number, size=size, duration=duration,
                       q=quote)
    return env


# ── pages ────────────────────────────────────────────────────────────────────────────
NAV = (("home", "Loop", ""), ("runs", "Runs", "runs"), ("data", "Datasets", "data"),
       ("models", "Models", "models"), ("deployments", "Deployments", "deployments"),
       ("monitoring", "Monitoring", "monitoring"), ("pipelines", "Pipelines", "pipelines"),
       ("lineage", "Lineage", "lineage"), ("labels", "Labelling", "labels"))


@dataclass
class Context:
    """What every template sees besides its own values."""

    request: Request
    who: Identity
    csrf: str
    assets: Any
    local: bool
    section: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def can(self, role: str) -> bool:
        return self.who.allows(role)

    def asset(self, name: str) -> str:
        return self.assets.url(PREFIX, name)

    def url(self, *parts: Any, **query: Any) -> str:
        return ui_url(*parts, **query)

    def here(self, **changes: Any) -> str:
        return with_query(self.request, **changes)

    def csv_url(self, table_id: str) -> str:
        return with_query(self.request, format="csv", table=table_id)


def page(ctx: Context, template: str, *, title: str, tables: Sequence[Table] = (),
         status: int = 200, scripts: Iterable[str] = (), **values: Any) -> Response:
    """Render ``template``; or, with ``?format=csv``, one of ``tables`` as CSV."""
    request = ctx.request
    if request.query_params.get("format") == "csv":
        wanted = request.query_params.get("table") or (tables[0].id if tables else "")
        for table in tables:
            if table.id == wanted:
                name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in
                               f"{title}-{table.id}")[:80]
                return Response(table.csv(), media_type="text/csv; charset=utf-8", headers={
                    "content-disposition": f'attachment; filename="{name}.csv"',
                    "cache-control": "no-store"})
        raise InvalidInputError(f"This page has no table {wanted!r}; its tables: "
                                f"{', '.join(t.id for t in tables) or 'none'}.")
    body = environment().get_template(template).render(
        ctx=ctx, title=title, tables={t.id: t for t in tables}, scripts=list(scripts),
        nav=NAV, version=__version__, **values)
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def mapping_rows(values: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``{"key": …, "value": …}`` rows of a mapping, sorted by key."""
    return [{"key": k, "value": v} for k, v in sorted((values or {}).items())]
