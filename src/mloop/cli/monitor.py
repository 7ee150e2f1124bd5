"""``mloop monitor …``: data drift, live performance, feedback, alerts, scheduled checks."""

from __future__ import annotations

import time
from typing import Any

import click

from mloop.cli.render import echo, emit_json, json_option, table
from mloop.core.clock import format_ms
from mloop.core.humanize import plural


@click.group()
def monitor() -> None:
    """Watch served models: input drift, live metrics once labels arrive, alerts.

    Rules and settings live in .mloop/monitoring.yaml (see `mloop monitor run --help`).
    """



@monitor.command("drift")
@click.option("-r", "--reference", required=True,
              help="Dataset version (train@3, data:/train@3: its stored profile is used), "
              "CSV/Parquet file, or serving:MODEL[/VERSION].")
@click.option("-c", "--current", required=True,
              help="serving:MODEL[/VERSION] (the logged inputs), a file or a dataset version.")
@click.option("--since", default="24h", show_default=True,
              help="For serving: sides, how far back (e.g. 1h, 7d).")
@click.option("--method", default="auto", show_default=True,
              help="auto, evidently, or one test for every column: ks, chisquare, "
              "chisquare_gof, z, psi, wasserstein, jensenshannon.")
@click.option("--column", "columns", multiple=True, help="Test only these columns "
              "(repeatable; default: all).")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Significance level of the p-value tests.")
@click.option("--drift-share", type=float, default=0.5, show_default=True,
              help="Share of drifted columns that makes the dataset drift.")
@click.option("-o", "--output", help="Write the report: .html (with charts) or .json.")
@click.option("--fail-on-drift", is_flag=True, help="Exit with status 1 when the dataset "
              "drifts (for CI and schedulers).")
@json_option
def drift_cmd(reference: str, current: str, since: str, method: str, columns: tuple[str, ...],
              alpha: float, drift_share: float, output: str | None, fail_on_drift: bool,
              as_json: bool) -> None:
    """Test every column of CURRENT against REFERENCE and say which drifted.

    Each column gets a test chosen by its type and the sample sizes, and a status (drift,
    ok, or not_tested with the reason: missing on one side, types that disagree, all
    values missing, too few rows). The dataset drifts when the share of drifted columns
    reaches --drift-share.
    """
    from mloop.core.clock import now_ms, parse_duration
    from mloop.monitoring import sources
    from mloop.monitoring.datadrift import drift
    from mloop.project import current_project

    project = current_project()
    since_ms = now_ms() - parse_duration(since)
    ref = sources.load(project, reference, reference=True, since_ms=since_ms)
    cur = sources.load(project, current, reference=False, since_ms=since_ms)
    chosen = list(columns) or None
    if chosen is None and current.startswith(sources.SERVING) and len(cur.columns):
        chosen = list(cur.columns)  # the model's inputs: a training set's target is no drift
    report = drift(ref, cur, columns=chosen, method=method, alpha=alpha,
                   drift_share=drift_share)
    report.reference["name"] = reference
    report.current["name"] = current + (f" (since {since})" if current.startswith(
        sources.SERVING) else "")
    if output:
        report.save(output)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_drift(report, output)
    if fail_on_drift and report.dataset_drift:
        raise SystemExit(1)


def _print_drift(report: Any, output: str | None) -> None:
    rows = []
    from mloop.monitoring.datadrift import DriftStatus

    order = {DriftStatus.DRIFT: 0, DriftStatus.NOT_TESTED: 1, DriftStatus.OK: 2}
    for c in sorted(report.columns.values(), key=lambda c: order[c.status]):
        effect = (f"{c.effect['method']} {c.effect['value']:.3g}" if c.effect else "")
        p = "" if c.p_value is None else f"{c.p_value:.3g}"
        stat = "" if c.statistic is None else f"{c.statistic:.4g}"
        note = c.reason or "; ".join(c.warnings)
        rows.append((c.name, c.kind or "?", c.method or "-", stat, p, effect, c.status, note))
    table(("column", "kind", "test", "statistic", "p-value", "effect", "status", "note"), rows,
          title=f"{report.reference.get('name')} → {report.current.get('name')} "
                f"({report.reference['rows']:,} vs {report.current['rows']:,} rows)")
    verdict = {True: "DRIFT", False: "no drift", None: "not decided (no column testable)"}
    echo(f"Dataset: {verdict[report.dataset_drift]} — {len(report.drifted_columns)} of "
         f"{len(report.tested)} tested columns drifted ({report.share_drifted:.0%}; "
         f"threshold {report.drift_share:.0%}); {report.seconds:.2f} s")
    if output:
        echo(f"Report written to {output}")


@monitor.command("performance")
@click.argument("model")
@click.option("--window", default="1h", show_default=True, help="How far back (e.g. 1h, 7d).")
@click.option("--max-drop", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="How much worse than evaluated a metric may get (absolute for scores, "
              "relative for errors).")
@click.option("--min-labels", type=click.IntRange(min=1), default=30, show_default=True,
              help="Labelled rows needed before a drop counts.")
@json_option
def performance_cmd(model: str, window: str, max_drop: float, min_labels: int,
                    as_json: bool) -> None:
    """Live metrics of MODEL's versions on labelled predictions, vs their evaluation.

    Labels arrive through `mloop monitor feedback`, mloop.log_feedback or
    POST /api/v1/feedback, joined to the logged predictions by request id.
    """
    from mloop.monitoring.live import performance
    from mloop.project import current_project

    report = performance(current_project(), model, window=window, max_drop=max_drop,
                         min_labels=min_labels)
    if as_json:
        emit_json(report.to_dict())
        return
    if not report.versions:
        echo(f"No predictions of {report.model} were logged in the last {window}.")
        return
    for v in report.versions:
        echo(f"{v.uri}: {plural(v.predictions, 'prediction')}, {v.labelled:,} labelled "
             f"({v.task or 'task unknown'})")
        if v.note:
            echo(f"  {v.note}")
        rows = []
        for metric, value in sorted(v.metrics.items()):
            crit = v.criteria.get(metric, {})
            evaluated = crit.get("evaluated")
            rows.append((metric, f"{value:.4g}", "-" if evaluated is None else f"{evaluated:.4g}",
                         crit.get("status", ""), crit.get("why", "")))
        if rows:
            table(("metric", "live", "evaluated", "status", "why"), rows)


@monitor.command("feedback", short_help="Record the true outcome of served predictions, "
                 "or show how many are matched.")
@click.argument("request_id", required=False)
@click.argument("label", required=False)
@click.option("--row", type=int, help="The row of a multi-row request (default 0).")
@click.option("-f", "--file", "path", help="CSV or Parquet with columns request_id, label "
              "[, row]: many labels at once.")
@click.option("--server", metavar="URL", help="Send the labels to the mloop serve at URL "
              "instead of this project (token: MLOOP_TOKEN or `mloop token login URL`).")
@json_option
def feedback_cmd(request_id: str | None, label: str | None, row: int | None,
                 path: str | None, server: str | None, as_json: bool) -> None:
    """Record the true outcome of a served prediction (REQUEST_ID LABEL, or --file);
    without arguments, how many stored labels are matched to logged predictions.

    LABEL is read as JSON when it parses (1, 0.5, true, "yes"), else as text. A label
    whose request id (and row) is not in the prediction log yet is stored and reported
    as not yet matched — the server writes its log about a second late — and is joined
    when the prediction is logged. That is not an error: the exit code is 0.
    """
    from mloop.errors import InvalidInputError
    from mloop.monitoring import feedback

    if request_id is None and label is None and path is None:
        if server or row is not None:
            raise InvalidInputError("Give REQUEST_ID LABEL or --file PATH to send labels.")
        _feedback_status(as_json)
        return
    if path and (request_id or label):
        raise InvalidInputError("Give REQUEST_ID LABEL or --file, not both.")
    if not path and (request_id is None or label is None):
        raise InvalidInputError("Give REQUEST_ID and LABEL (or --file PATH).")
    items = _feedback_file(path) if path else feedback.entries(
        request_id or "", _label_value(label or ""), row)
    if server:
        result = feedback.send(server, items)
    else:
        from mloop.project import current_project

        result = feedback.save(current_project(), items)
    if as_json:
        emit_json(result.to_dict())
    else:
        echo(result.message())


def _label_value(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _feedback_file(path: str) -> list[Any]:
    from pathlib import Path

    from mloop.data.stats import read_frame, table_format
    from mloop.errors import InvalidInputError
    from mloop.monitoring import feedback

    fmt = table_format(path)
    if fmt is None or not Path(path).is_file():
        raise InvalidInputError(f"{path}: need an existing .csv or .parquet file.")
    return feedback.frame_entries(read_frame(Path(path), fmt))


def _feedback_status(as_json: bool) -> None:
    from mloop.monitoring import feedback
    from mloop.project import current_project

    found = feedback.status(current_project())
    if as_json:
        emit_json(found.to_dict())
        return
    if not found.labels:
        echo("No labels stored. Send them with `mloop monitor feedback REQUEST_ID "
             "LABEL`, mloop.log_feedback or POST /api/v1/feedback.")
        return
    table(("model", "labels matched"), sorted(found.matched.items()),
          empty="No label is matched to a logged prediction yet.")
    echo(f"{plural(found.labels, 'label')} stored, {found.unmatched:,} not yet matched.")
    if found.unmatched:
        echo(f"The oldest waits since {format_ms(found.oldest_unmatched_ms)}; request "
             f"ids such as {', '.join(found.examples)} have no logged prediction. They "
             "are joined when one is logged, or pruned with the log (mloop monitor "
             "prune).")


@monitor.command("alerts")
@click.option("--open", "open_only", is_flag=True, help="Only alerts still open.")
@click.option("--model", help="Only this model (a name or models:/name/version).")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="At most this many alerts.")
@json_option
def alerts_cmd(open_only: bool, model: str | None, limit: int, as_json: bool) -> None:
    """Alerts raised by the monitoring rules, newest first."""
    from mloop.monitoring import alerts
    from mloop.project import current_project

    found = alerts(open_only=open_only, model=model, limit=limit, project=current_project())
    if as_json:
        emit_json([a.to_dict() for a in found])
        return
    if not found:
        echo("No open alerts." if open_only else "No alerts.")
        return
    table(("id", "severity", "status", "rule", "model", "count", "last seen", "message"),
          [(a.id, a.severity, a.status, a.rule, a.subject.removeprefix("models:/"), a.count,
            format_ms(a.last_seen_at), _short(a.message)) for a in found])
    echo("Full messages: --json; the lineage of one: mloop lineage alerts:/ID")


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


@monitor.command("resolve")
@click.argument("alert_id")
def resolve_cmd(alert_id: str) -> None:
    """Mark alert ALERT_ID resolved (it opens again if its rule keeps firing)."""
    from mloop.monitoring import resolve_alert
    from mloop.project import current_project

    alert = resolve_alert(alert_id, project=current_project())
    echo(f"{alert.id}: {alert.status}")


@monitor.command("run")
@click.option("--every", help="Check this often (e.g. 10m); default: 'every' in "
              ".mloop/monitoring.yaml, else 10m.")
@click.option("--once", is_flag=True, help="Check once and exit (for cron).")
@json_option
def run_cmd(every: str | None, once: bool, as_json: bool) -> None:
    """Check every monitored model on a schedule: drift, live metrics, alert rules.

    Settings and rules come from .mloop/monitoring.yaml (models, reference per model,
    window, rules with signal/op/threshold/window/severity/cooldown, webhook, retention);
    without it, dataset drift and a drop below the evaluated metrics raise alerts.
    Stops cleanly on Ctrl-C or SIGTERM. With --once, a check that fails ends with
    status 1 (alerts that fire are results, not failures: status 0).
    """
    import signal
    import threading

    from mloop.core.clock import parse_duration
    from mloop.monitoring.runner import run
    from mloop.project import current_project

    project = current_project()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def report(results: list[Any]) -> None:
        if as_json:
            emit_json([r.to_dict() for r in results])
            return
        stamp = time.strftime("%H:%M:%S")
        if not results:
            echo(f"{stamp} no predictions logged in the window")
        for r in results:
            share = r.signals.get("drift.share")
            drift = "-" if share is None else f"{share:.0%} drifted"
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in sorted(
                (r.performance.metrics if r.performance else {}).items())
                if k in ("accuracy", "f1", "rmse", "mae"))
            fired = ", ".join(f"{a.rule}[{a.severity}]" for a in r.fired)
            echo(f"{stamp} {r.subject}: {plural(r.predictions, 'prediction')}; drift {drift}; "
                 f"{metrics or 'no labels'}" + (f"; ALERTS {fired}" if fired else "")
                 + "".join(f"\n  note: {n}" for n in r.notes))

    try:
        run(project, every_ms=parse_duration(every) if every else None, stop=stop,
            on_check=report, iterations=1 if once else None, strict=once)
    except KeyboardInterrupt:
        stop.set()


@monitor.command("prune")
@click.option("--older-than", default=None, help="Age to delete (e.g. 30d); default: "
              "'retention' in .mloop/monitoring.yaml, else 30d.")
@json_option
def prune_cmd(older_than: str | None, as_json: bool) -> None:
    """Delete logged predictions and feedback older than the retention."""
    from dataclasses import asdict

    from mloop.core.clock import parse_duration
    from mloop.monitoring.rules import load_config
    from mloop.monitoring.runner import prune
    from mloop.project import current_project

    project = current_project()
    age = parse_duration(older_than) if older_than else load_config(project.root).retention_ms
    result = prune(project, age)
    if as_json:
        emit_json(asdict(result))
    else:
        echo(f"Deleted {result.segments:,} prediction segments "
             f"({result.bytes / 1e6:.1f} MB), {result.feedback:,} feedback rows and "
             f"{result.traffic:,} deployment traffic rows.")
