"""Monitoring: the models whose predictions are logged, and per model and version the
drift of each input column over time (its score and threshold), the latest drift report,
live performance against the evaluated baseline, and alerts with a resolve button (for
writers: the role the API asks to resolve one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from mloop.server.ui.app import View, as_caller, audit, back, change, project_of
from mloop.server.ui.charts import Chart
from mloop.server.ui.render import PREFIX, Column, Context, Table, page

if TYPE_CHECKING:
    from mloop.monitoring.alerting import Alert
    from mloop.monitoring.datadrift import DriftReport
    from mloop.monitoring.history import DriftHistory, LiveHistory
    from mloop.monitoring.rules import MonitorConfig
    from mloop.project import Project

router = APIRouter()
ROLE = "writer"  # alerts.resolve in mloop.server.methods
CHARTED = 6  # columns charted without a choice: the ones that moved most
HISTOGRAMS = 12  # drifted columns whose distributions the latest report draws


def _logged(project: Project, config: MonitorConfig) -> dict[str, list[int]]:
    """Monitored models and the versions with logged predictions (a folder listing)."""
    from mloop.monitoring.runner import monitored_models
    from mloop.serving.predlog import log_root

    root = log_root(project)
    out = {}
    for model in monitored_models(project, config):
        folder = root / model
        out[model] = sorted(int(p.name) for p in folder.iterdir()
                            if p.is_dir() and p.name.isdigit()) if folder.is_dir() else []
    return out


def _window(ctx: Context, config: MonitorConfig) -> tuple[str, int]:
    """The window asked for (``?window=7d``), else the one the checks use; as typed and in
    ms."""
    from mloop.core.clock import parse_duration

    text = ctx.request.query_params.get("window") or ""
    if text:
        return text, parse_duration(text)
    ms = config.window_ms
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}", ms
    return f"{ms / 1000:g}s", ms


@router.get("/monitoring")
def monitoring(ctx: Context = View, model: str | None = None,
               version: int | None = None, column: str | None = None) -> Response:
    from mloop.monitoring.rules import load_config

    project = project_of(ctx.request)
    config = load_config(project.root)
    if model:
        return _model_page(ctx, project, config, model, version=version, column=column)
    from mloop.monitoring.alerting import list_alerts, open_counts

    logged = _logged(project, config)
    alerts = list_alerts(project, limit=200)
    opened: dict[str, int] = {}
    for alert in alerts:
        if str(alert.status) == "open":
            name = alert.subject.removeprefix("models:/").rsplit("/", 1)[0]
            opened[name] = opened.get(name, 0) + 1
    models = Table("models", [
        Column("model", "Model", "link"), Column("versions", "Versions logged"),
        Column("open", "Open alerts", "num")],
        [{"model": m, "model_href": ctx.url("monitoring", model=m),
          "versions": ", ".join(str(v) for v in versions), "open": opened.get(m, 0)}
         for m, versions in logged.items()],
        empty="No predictions logged yet: serve a model (mloop serve MODEL) and send it "
              "requests.")
    return page(ctx, "monitor.html", title="Monitoring", tables=[models, _alerts(ctx, alerts)],
                alerts=alerts, counts=open_counts(project))


def _alerts(ctx: Context, alerts: list[Alert]) -> Table:
    rows = [{"id": a.id, "severity": a.severity, "status": str(a.status), "rule": a.rule,
             "subject": a.subject, "message": a.message, "value": a.value,
             "threshold": a.threshold, "count": a.count, "opened": a.opened_at,
             "last_seen": a.last_seen_at, "resolved": a.resolved_at} for a in alerts]
    return Table("alerts", [
        Column("severity", "Severity"), Column("status", "Status"), Column("rule", "Rule"),
        Column("subject", "Subject"), Column("message", "Message"),
        Column("value", "Value", "num"), Column("threshold", "Threshold", "num"),
        Column("count", "Times", "num"), Column("opened", "Opened", "time"),
        Column("last_seen", "Last seen", "time"), Column("resolved", "Resolved", "time"),
        Column("id", "Id")], rows, empty="No alerts.")


def _model_page(ctx: Context, project: Project, config: MonitorConfig, model: str, *,
                version: int | None, column: str | None) -> Response:
    from mloop.core.clock import now_ms
    from mloop.errors import NotFoundError
    from mloop.monitoring.alerting import list_alerts
    from mloop.monitoring.history import drift_history, live_history
    from mloop.registry.models import get_version

    name = get_version(project, model).name  # an unknown model: the 404 page
    versions = _logged(project, config).get(name) or []
    if version is None and versions:
        version = versions[-1]
    if version is not None and version not in versions:
        raise NotFoundError(f"No predictions of models:/{name}/{version} are logged; "
                            f"logged versions: {', '.join(map(str, versions)) or 'none'}.")
    window_text, window_ms = _window(ctx, config)
    until = now_ms() + 1
    alerts = list_alerts(project, subject=f"models:/{name}/", limit=200)
    tables = [_alerts(ctx, alerts)]
    values: dict[str, Any] = {"model": name, "shown": version, "versions": versions,
                              "window": window_text, "alerts": alerts, "drift": None,
                              "live": None, "charts": [], "columns": [], "column": column,
                              "histograms": [], "live_chart": None, "verdict": None}
    if version is not None:
        drift = drift_history(project, name, version, since_ms=until - window_ms,
                              until_ms=until, config=config)
        live = live_history(project, name, version, since_ms=until - window_ms,
                            until_ms=until, config=config)
        if column is not None and column not in drift.columns:
            raise NotFoundError(f"models:/{name}/{version} has no logged input column "
                                f"{column!r} in this window.")
        values |= {"drift": drift, "live": live, "columns": drift.columns,
                   "charts": _drift_charts(drift, column),
                   "histograms": _histograms(drift.latest),
                   "verdict": _verdict(drift.latest), "live_chart": _live_chart(live)}
        if drift.latest is not None:
            tables.append(_columns_table(ctx, drift))
        if live.overall is not None:
            tables.append(_criteria_table(live))
    return page(ctx, "monitor_model.html", title=f"Monitoring {name}", tables=tables,
                scripts=("chart",), **values)


def _drift_charts(drift: DriftHistory, column: str | None) -> list[Chart]:
    """The share of drifted columns per window, then each chosen column's score against
    its threshold (without a choice: the columns that moved most in the latest report)."""
    if not drift.windows:
        return []
    share = Chart("drift-share", "Share of columns drifted", x="time", kind="points")
    share.add("drifted share", [w.end_ms for w in drift.windows],
              [w.report.share_drifted for w in drift.windows])
    share.add("dataset drift at", [w.end_ms for w in drift.windows],
              [w.report.drift_share for w in drift.windows])
    charts = [share]
    for i, name in enumerate([column] if column else _moved(drift)):
        times, scores, limits, what = drift.series(name)
        chart = Chart(f"drift-col-{i}", f"{name}: {what or 'not tested'}", x="time",
                      kind="points")
        chart.add(what or "score", times, [_nan(v) for v in scores])
        chart.add("threshold", times, [_nan(v) for v in limits])
        charts.append(chart)
    return charts


def _moved(drift: DriftHistory) -> list[str]:
    """The columns of the latest report furthest past (or nearest to) their threshold."""
    from mloop.monitoring.history import column_score

    assert drift.latest is not None
    ranked = []
    for name, col in drift.latest.columns.items():
        score, limit, what = column_score(col)
        if score is None or not limit:
            continue
        ratio = limit / max(score, 1e-300) if what.endswith("p-value") else score / limit
        ranked.append((-ratio, name))
    return [name for _, name in sorted(ranked)[:CHARTED]]


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _verdict(report: DriftReport | None) -> list[tuple[str, Any]] | None:
    if report is None:
        return None
    verdict = {True: "drift", False: "no drift", None: "not decided (no column testable)"}
    return [("Dataset", verdict[report.dataset_drift]),
            ("Drifted columns", f"{len(report.drifted_columns)} of {len(report.tested)} "
                                f"tested ({report.share_drifted:.0%}; drift from "
                                f"{report.drift_share:.0%})"),
            ("Reference", f"{report.reference.get('name')} "
                          f"({report.reference.get('rows', 0):,} rows)"),
            ("Current", f"{report.current.get('name')} ({report.current.get('rows', 0):,} "
                        "rows)"),
            ("Method", f"{report.method}, alpha {report.alpha:g}")]


def _columns_table(ctx: Context, drift: DriftHistory) -> Table:
    from mloop.monitoring.history import column_score

    assert drift.latest is not None
    rows = []
    for name, col in drift.latest.columns.items():
        score, limit, what = column_score(col)
        drifted = sum(1 for w in drift.windows if (c := w.report.columns.get(name))
                      is not None and c.drifted)
        rows.append({"column": name, "column_href": ctx.here(column=name),
                     "kind": col.kind, "test": col.method, "statistic": col.statistic,
                     "p": col.p_value, "score_name": what, "score": score,
                     "threshold": limit, "status": str(col.status),
                     "windows": f"{drifted} of {len(drift.windows)}",
                     "note": col.reason or "; ".join(col.warnings)})
    return Table("columns", [
        Column("column", "Column", "link"), Column("kind", "Kind"), Column("test", "Test"),
        Column("statistic", "Statistic", "num"), Column("p", "p-value", "num"),
        Column("score_name", "Score"), Column("score", "Value", "num"),
        Column("threshold", "Threshold", "num"), Column("status", "Status"),
        Column("windows", "Windows drifted"), Column("note", "Note")], rows,
        caption="The latest report: every logged row of the window")


def _histograms(report: DriftReport | None) -> list[tuple[str, Any]]:
    """(column, SVG) of the drifted columns: reference and current overlaid."""
    from mloop.server.ui.svg import Bars, histogram

    if report is None:
        return []
    out: list[tuple[str, Any]] = []
    for col in report.columns.values():
        plot = col.plot
        if not col.drifted or not plot or len(out) >= HISTOGRAMS:
            continue
        edges = plot.get("edges") or plot.get("labels") or []
        out.append((col.name, histogram(
            edges, [Bars("reference", plot.get("reference") or []),
                    Bars("current", plot.get("current") or [])],
            title=f"{col.name}: reference and current")))
    return out


def _criteria_table(live: LiveHistory) -> Table:
    assert live.overall is not None
    perf = live.overall
    rows = []
    for metric, value in sorted(perf.metrics.items()):
        crit = perf.criteria.get(metric, {})
        rows.append({"metric": metric, "live": value, "evaluated": crit.get("evaluated"),
                     "low": crit.get("low"), "high": crit.get("high"),
                     "status": crit.get("status", ""), "why": crit.get("why", "")})
    return Table("performance", [
        Column("metric", "Metric"), Column("live", "Live", "num"),
        Column("evaluated", "Evaluated", "num"), Column("low", "Evaluated low", "num"),
        Column("high", "Evaluated high", "num"), Column("status", "Status"),
        Column("why", "Why")], rows,
        caption=f"{perf.labelled:,} labelled of {perf.predictions:,} logged predictions")


def _live_chart(live: LiveHistory | None) -> Chart | None:
    """The first watched metric per window of labelled rows, and its evaluated value."""
    if live is None or live.overall is None or not live.windows:
        return None
    perf = live.overall
    metric = next((m for m in perf.criteria if m in perf.metrics),
                  next(iter(perf.metrics), None))
    if metric is None:
        return None
    times = [end for end, _, _ in live.windows]
    chart = Chart("live-chart", f"Live {metric} vs evaluated", x="time", kind="points")
    chart.add(f"live {metric}", times, [_nan(m.get(metric)) for _, _, m in live.windows])
    evaluated = perf.criteria.get(metric, {}).get("evaluated")
    if evaluated is not None:
        chart.add("evaluated", times, [float(evaluated)] * len(times))
    return chart


@router.get("/monitoring/report")
def report(ctx: Context = View, model: str = "", version: int = 0) -> Response:
    """The latest drift report of a version as its own page (inline styles, no script;
    every text from the data escaped by :func:`mloop.monitoring.report.render_html`)."""
    from mloop.core.clock import now_ms
    from mloop.errors import NotFoundError
    from mloop.monitoring.history import drift_history
    from mloop.monitoring.rules import load_config
    from mloop.registry.models import get_version

    project = project_of(ctx.request)
    config = load_config(project.root)
    name = get_version(project, model).name
    _, window_ms = _window(ctx, config)
    until = now_ms() + 1
    drift = drift_history(project, name, version, since_ms=until - window_ms,
                          until_ms=until, windows=1, config=config)
    if drift.latest is None:
        raise NotFoundError(f"No drift report for models:/{name}/{version} in this window"
                            + (f": {drift.note}" if drift.note else "."))
    return HTMLResponse(drift.latest.to_html(), headers={"cache-control": "no-store"})


@router.post("/monitoring/alerts/{alert_id}/resolve")
async def resolve(alert_id: str, request: Request) -> Response:
    from mloop.monitoring.alerting import resolve as resolve_alert

    identity, fields = await change(request, ROLE)
    project = project_of(request)
    done = await as_caller(identity, lambda: resolve_alert(project, alert_id))
    audit(request, identity, "alerts.resolve", alert_id)
    return back(request, fields, f"{PREFIX}/monitoring",
                f"Resolved alert {done.rule} on {done.subject}.")
