"""The data-drift report as one self-contained HTML page.

``render_html`` takes the dict form of a drift report (``DriftReport.to_dict()``) and returns a
page with no scripts and no external assets: inline CSS, one inline SVG chart per column that
has plot data, and every string from the data (column names, category labels, reasons)
escaped. A Content-Security-Policy meta tag forbids scripts as a second line of defence.

The colours are those of the evaluation report (``mloop.evaluation.report``), so the two pages
read alike. The page stays small on purpose (a few KB per column) so that it can be stored
with every check and mailed as an attachment.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["render_html"]

_GREEN, _AMBER, _RED = "#1a7f37", "#9a6700", "#cf222e"  # the evaluation report's palette
_ORDER = {"drift": 0, "not_tested": 1, "ok": 2}  # problems first; untested ones stay in view
_STATUS_TEXT = {"drift": "DRIFT", "ok": "ok", "not_tested": "not tested"}
_TOP_CATEGORIES = 8  # the rest are summed on one line of text
_LABEL_CHARS = 18  # category labels in charts are cut here; the hover title has more
_TITLE_CHARS = 200
_W = 300  # chart width in SVG units; the CSS scales it to the card

_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin-bottom:1em}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}"
    "td.n{white-space:nowrap}"
    "tr.drift td{background:#ffebe9}"
    f".drift .s{{color:{_RED}}}.ok .s{{color:{_GREEN}}}.not_tested .s{{color:{_AMBER}}}"
    f".m{{color:#57606a;font-size:.85em}}.w{{color:{_AMBER}}}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(20em,1fr));gap:1em}"
    "figure{margin:0;border:1px solid #ccc;padding:.4em}"
    f"figure.drift{{border-color:{_RED}}}"
    "figcaption{margin-bottom:.3em;overflow-wrap:anywhere}"
    "svg{display:block;width:100%;height:auto}svg text{font-size:10px;fill:#57606a}"
    ".r,.kr{fill:#afb8c1;background:#afb8c1}.c{fill:none;stroke:#0969da;stroke-width:1.5}"
    "rect.c{fill:#0969da;stroke:none}.kc{background:#0969da}.a{stroke:#ccc}"
    ".kr,.kc{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}"
)


def render_html(report: dict[str, Any]) -> str:
    """The drift report ``report`` (the dict of ``DriftReport.to_dict()``) as one HTML page.

    Drifted columns come first, then untested ones (with the reason), then the rest; within
    each group the report's own column order is kept. Missing keys render as "-".
    """
    e = html.escape
    columns = _columns(report)
    current, reference = report.get("current") or {}, report.get("reference") or {}
    title = f"Data drift: {current.get('name', '?')} vs {reference.get('name', '?')}"
    rows = "".join(_table_row(i, col) for i, col in enumerate(columns))
    figures = "".join(_figure(i, col) for i, col in enumerate(columns))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>"
        f"{_header(report, columns)}"
        "<h2>Columns</h2><table><thead><tr><th>column</th><th>kind</th><th>method</th>"
        "<th>statistic</th><th>p-value</th><th>effect</th><th>status</th>"
        f"<th>reason / warnings</th></tr></thead><tbody>{rows}</tbody></table>"
        "<h2>Distributions</h2><p class='m'><span class='kr'></span>reference"
        "<span class='kc'></span>current (share of rows per bin or category)</p>"
        f"<div class='grid'>{figures}</div></body></html>")


def _columns(report: dict[str, Any]) -> list[dict[str, Any]]:
    raw = report.get("columns") or {}
    items = raw.items() if isinstance(raw, dict) else enumerate(raw)
    columns = [{**col, "name": col.get("name", key)} for key, col in items]
    return sorted(columns, key=lambda col: _ORDER.get(_status(col)[0], len(_ORDER)))


def _status(col: dict[str, Any]) -> tuple[str, str]:
    """The column's status as a safe CSS class ("other" if unknown) and as text."""
    raw = col.get("status")
    key = raw if isinstance(raw, str) and raw in _ORDER else "other"
    return key, _STATUS_TEXT.get(key, _num(raw))


def _header(report: dict[str, Any], columns: list[dict[str, Any]]) -> str:
    e = html.escape
    drift = report.get("dataset_drift")
    if drift is None:
        verdict, colour = "Dataset drift: not decided", _AMBER
    elif drift:
        verdict, colour = "Dataset drift: yes", _RED
    else:
        verdict, colour = "Dataset drift: no", _GREEN
    counts = {s: sum(_status(c)[0] == s for c in columns) for s in _ORDER}
    tested = counts["drift"] + counts["ok"]
    why = " (no column could be tested)" if drift is None and not tested else ""
    sides = "".join(_side(label, report.get(label) or {}) for label in ("reference", "current"))
    return (
        f"<h1 style='color:{colour}'>{verdict}</h1>"
        f"<p>Drifted: <b>{e(_pct(report.get('share_drifted')))}</b> of the tested columns, "
        f"threshold "
        f"{e(_pct(report.get('drift_share')))}{why}: {counts['drift']} drifted, {counts['ok']} "
        f"ok, {counts['not_tested']} not tested, of {len(columns)} columns.</p>"
        f"<table>{sides}</table>"
        f"<p class='m'>Method preset {e(_num(report.get('method')))}; created "
        f"{e(_when(report.get('created_at')))}; computed in "
        f"{e(_num(report.get('seconds')))} s.</p>")


def _side(label: str, side: dict[str, Any]) -> str:
    e = html.escape
    profile = " <span class='m'>(from a stored profile)</span>" if side.get("profile") else ""
    return (f"<tr><th>{label}</th><td>{e(_num(side.get('name')))}{profile}</td>"
            f"<td>{e(_num(side.get('rows')))} rows</td></tr>")


def _table_row(i: int, col: dict[str, Any]) -> str:
    e = html.escape
    cls, status = _status(col)
    p_value, threshold = col.get("p_value"), col.get("threshold")
    limit = "" if threshold is None else f" <span class='m'>threshold {e(_num(threshold))}</span>"
    statistic = e(_num(col.get("statistic"))) + (limit if p_value is None else "")
    p_text = "-" if p_value is None else e(_pval(p_value)) + limit
    effect = col.get("effect")
    effect_text = "-" if not effect else (
        f"{e(_num(effect.get('method')))} {e(_num(effect.get('value')))}"
        f" <span class='m'>threshold {e(_num(effect.get('threshold')))}</span>")
    notes = [f"<div>{e(str(col['reason']))}</div>"] if col.get("reason") else []
    notes += [f"<div class='w'>{e(str(w))}</div>" for w in col.get("warnings") or []]
    return (
        f"<tr class='{cls}'><td><a href='#c{i}'>{e(str(col['name']))}</a></td>"
        f"<td>{e(_num(col.get('kind')))}</td><td>{e(_num(col.get('method')))}</td>"
        f"<td class='n'>{statistic}</td><td class='n'>{p_text}</td>"
        f"<td class='n'>{effect_text}</td>"
        f"<td class='s'><b>{e(status)}</b></td>"
        f"<td>{''.join(notes)}</td></tr>")


def _figure(i: int, col: dict[str, Any]) -> str:
    e = html.escape
    cls, status = _status(col)
    chart = _chart(str(col["name"]), col.get("plot"))
    if chart is None:
        reason = col.get("reason") or "no distribution data in the report"
        chart = f"<p class='m'>No chart: {e(str(reason))}</p>"
    return (f"<figure id='c{i}' class='{cls}'><figcaption><b>{e(str(col['name']))}</b> "
            f"<span class='m'>{e(_num(col.get('kind')))}, "
            f"{e(status)}</span></figcaption>{chart}</figure>")


def _chart(name: str, plot: Any) -> str | None:
    """The SVG for one column's ``plot`` dict, or None when it is missing or malformed."""
    if not isinstance(plot, dict):
        return None
    reference, current = _floats(plot.get("reference")), _floats(plot.get("current"))
    if reference is None or current is None or not reference or len(reference) != len(current):
        return None
    if plot.get("kind") == "numeric":
        edges = plot.get("edges")
        if not isinstance(edges, list) or len(edges) != len(reference) + 1:
            return None
        return _numeric_svg(name, edges, reference, current)
    labels = plot.get("labels")
    if not isinstance(labels, list) or len(labels) != len(reference):
        return None
    return _categorical_svg(name, labels, reference, current)


def _numeric_svg(name: str, edges: list[Any], reference: list[float],
                 current: list[float]) -> str:
    """Two overlaid step histograms: reference filled, current as an outline.

    Bins are drawn at equal width and the edges label the axis, so quantile bins read as
    well as equal-width ones (a density scale would turn narrow bins into spikes).
    """
    left, right, base, height = 4.0, _W - 4.0, 92.0, 86.0
    top = max([*reference, *current, 0.0]) or 1.0
    step = (right - left) / len(reference)

    def path(values: list[float]) -> str:
        out = [f"M{left:g} {base:g}"]
        for j, value in enumerate(values):
            out.append(f"V{base - value / top * height:.1f}H{left + (j + 1) * step:.1f}")
        return "".join(out) + f"V{base:g}"

    k = len(reference)
    ticks = [(left, "start", edges[0]), (right, "end", edges[-1])]
    if k >= 2:
        ticks.append((left + k // 2 * step, "middle", edges[k // 2]))
    labels = "".join(f"<text x='{x:.1f}' y='106' text-anchor='{anchor}'>"
                     f"{html.escape(_num(value))}</text>" for x, anchor, value in ticks)
    return (f"<svg viewBox='0 0 {_W} 110' role='img' aria-label='{_aria(name)}'>"
            f"<path class='r' d='{path(reference)}Z'/><path class='c' d='{path(current)}'/>"
            f"<path class='a' d='M{left:g} {base:g}H{right:g}'/>{labels}</svg>")


def _categorical_svg(name: str, labels: list[Any], reference: list[float],
                     current: list[float]) -> str:
    """Paired bars for the largest categories; the others are summed on one line of text.

    The others get no bar: their sum would dwarf the categories shown and flatten them.
    """
    e = html.escape
    items = sorted(zip(["(missing)" if x is None else str(x) for x in labels], reference,
                       current, strict=True), key=lambda t: -max(t[1], t[2]))
    shown, rest = items[:_TOP_CATEGORIES], items[_TOP_CATEGORIES:]
    top = max(max(r, c) for _, r, c in shown) or 1.0
    bar_x, bar_w = 108.0, 120.0
    out = []
    for j, (label, ref, cur) in enumerate(shown):
        y = 4 + j * 18
        hover = f"{_cut(label, _TITLE_CHARS)}: reference {ref:.1%}, current {cur:.1%}"
        out.append(
            f"<g><title>{e(hover)}</title>"
            f"<text x='0' y='{y + 10}'>{e(_cut(label, _LABEL_CHARS))}</text>"
            f"<rect class='r' x='{bar_x:g}' y='{y}' width='{ref / top * bar_w:.1f}' height='6'/>"
            f"<rect class='c' x='{bar_x:g}' y='{y + 7}' width='{cur / top * bar_w:.1f}' "
            f"height='6'/><text x='{_W}' y='{y + 10}' text-anchor='end'>"
            f"{ref:.0%}\u2192{cur:.0%}</text></g>")
    height = 8 + 18 * len(shown)
    if rest:
        ref, cur = sum(t[1] for t in rest), sum(t[2] for t in rest)
        out.append(f"<text x='0' y='{height + 6}'>{len(rest)} more categories, "
                   f"{ref:.0%}\u2192{cur:.0%} of rows together</text>")
        height += 14
    return (f"<svg viewBox='0 0 {_W} {height}' role='img' "
            f"aria-label='{_aria(name)}'>{''.join(out)}</svg>")


def _floats(values: Any) -> list[float] | None:
    """Shares as floats, missing or NaN as 0 and negatives clipped; None if not a list."""
    if not isinstance(values, list):
        return None
    try:
        out = [0.0 if v is None else float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return [v if math.isfinite(v) and v > 0 else 0.0 for v in out]


def _num(value: Any) -> str:
    """Compact text for a number: 4 significant digits, thousands separated; "-" if None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _pval(value: Any) -> str:
    """A p-value: small ones in scientific notation with two digits (3.2e-07)."""
    if isinstance(value, float) and 0 < value < 1e-3:
        return f"{value:.1e}"
    return _num(value)


def _pct(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value * 100:.4g}%"
    return _num(value)


def _when(millis: Any) -> str:
    """Epoch milliseconds as UTC time, or "-" when missing or out of range."""
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _aria(name: str) -> str:
    return html.escape(f"{_cut(name, _TITLE_CHARS)}: reference and current distributions")
