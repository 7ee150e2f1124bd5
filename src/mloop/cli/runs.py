"""``mloop runs …``: list, show, compare, delete, restore and download runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from mloop.cli.render import echo, emit_json, fmt, json_option, kv_section, table
from mloop.core.humanize import human_size, plural
from mloop.core.ids import short_id


@click.group()
def runs() -> None:
    """Runs: one execution of training code with its params, metrics and artifacts."""


def _frame_records(df: Any) -> list[dict[str, Any]]:
    out = []
    for rec in df.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for key, value in rec.items():
            if key.startswith(("params.", "tags.")) and not isinstance(value, str):
                continue  # the run has no such key
            if hasattr(value, "isoformat"):
                value = None if str(value) == "NaT" else value.isoformat()
            elif isinstance(value, float) and math.isnan(value) and not key.startswith("metrics."):
                value = None  # a missing value, not a NaN measurement
            clean[key] = value
        out.append(clean)
    return out


@runs.command("list")
@click.option("-e", "--experiment", multiple=True, help="Only runs of this experiment "
              "(repeat for several).")
@click.option("-f", "--filter", "filter_", metavar="EXPR",
              help="e.g. \"metrics.acc > 0.9 and params.model = 'logreg'\".")
@click.option("-o", "--order-by", multiple=True, metavar="FIELD [ASC|DESC]",
              help="e.g. 'metrics.acc DESC' (repeatable). Default: newest first.")
@click.option("-n", "--max-results", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most this many runs.")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted runs.")
@json_option
def list_(experiment: tuple[str, ...], filter_: str | None, order_by: tuple[str, ...],
          max_results: int, include_deleted: bool, as_json: bool) -> None:
    """List runs, newest first, optionally filtered and ordered.

    The filter language compares metrics.<name>, params.<name>, tags.<name> and
    attributes.<status|name|start_time|end_time|run_id|user|experiment> with
    = != < <= > >= LIKE IN, joined by AND / OR, with parentheses.
    """
    from mloop.project import current_project
    from mloop.tracking.search import search_runs

    df = search_runs(current_project(), experiment=list(experiment) or None, filter=filter_,
                     order_by=list(order_by) or None, max_results=max_results,
                     include_deleted=include_deleted)
    if as_json:
        emit_json(_frame_records(df))
        return
    metric_cols = [c for c in df.columns if c.startswith("metrics.")][:5]
    rows = []
    for rec in df.to_dict(orient="records"):
        duration = "-"
        if str(rec["end_time"]) != "NaT":
            from mloop.core.clock import format_duration

            duration = format_duration(int((rec["end_time"] - rec["start_time"])
                                           .total_seconds() * 1000))
        rows.append([short_id(rec["run_id"]), rec["name"], rec["experiment"], rec["status"],
                     rec["start_time"].strftime("%Y-%m-%d %H:%M:%S"), duration,
                     *(rec[c] for c in metric_cols)])
    table(["run", "name", "experiment", "status", "started (UTC)", "duration",
           *(c.removeprefix("metrics.") for c in metric_cols)], rows,
          empty="No runs match. Log one from Python with mloop.start_run().")
    if df.attrs.get("next_page_token"):
        echo(f"(first {max_results} shown; raise --max-results for more)")


@runs.command("show")
@click.argument("run_id")
@click.option("--metric", "metric_key", metavar="KEY",
              help="Only metric KEY's history: a chart over its steps with min, max and "
                   "last (with --json: every point).")
@json_option
def show(run_id: str, metric_key: str | None, as_json: bool) -> None:
    """Everything about one run: state, reproducibility record, params, metrics, artifacts.

    RUN_ID may be a unique prefix of at least 6 characters.
    """
    from mloop.core.clock import format_duration, format_ms
    from mloop.project import current_project
    from mloop.tracking.records import get_run

    run = get_run(current_project(), run_id)
    if metric_key is not None:
        _metric_chart(run, metric_key, as_json)
        return
    env = run.environment
    if as_json:
        data = run.to_dict()
        data["environment"] = env.to_dict() if env else None
        emit_json(data)
        return
    git = "-" if run.git_commit is None else (
        f"{run.git_commit[:12]} ({run.git_branch})" + (" + uncommitted changes"
                                                       if run.git_dirty else ""))
    kv_section(f"Run {run.id}", {
        "name": run.name, "experiment": run.experiment, "status": str(run.status),
        "started (UTC)": format_ms(run.start_time), "duration": format_duration(run.duration_ms),
        "parent": run.parent_id or "-", "user": run.user or "-", "git": git,
        "command": run.command or "-", "seed": "-" if run.seed is None else run.seed,
        "python": env.python if env else "-", "platform": env.platform if env else "-",
        "packages": f"{len(env.packages)} recorded" if env else "-",
        "deleted": "yes" if run.deleted else "no",
    }, sort=False)
    kv_section("Params", run.params)
    kv_section("Metrics (latest)", {k: fmt(v) for k, v in run.metrics.items()})
    kv_section("Tags", run.tags)
    table(["artifact", "size", "digest"],
          [(a.path, human_size(a.size), a.digest[:12]) for a in run.artifacts], title="Artifacts",
          empty="Artifacts: none")


def _metric_chart(run: Any, key: str, as_json: bool) -> None:
    """Metric ``key`` of ``run`` over its steps: a chart and a summary line."""
    import shutil

    from mloop.cli.chart import draw
    from mloop.errors import NotFoundError

    history = run.metric_history(key)
    if history.empty:
        known = ", ".join(sorted(run.metrics)) or "none"
        raise NotFoundError(f"Run {short_id(run.id)} has no metric {key!r}; its metrics: "
                            f"{known}.")
    if as_json:
        emit_json([{"step": int(r.step), "timestamp": r.timestamp.isoformat(),
                    "value": float(r.value)} for r in history.itertuples()])
        return
    steps, values = history["step"].tolist(), history["value"].astype(float).tolist()
    finite = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
    skipped = len(values) - len(finite)
    note = f"; {plural(skipped, 'point')} NaN or infinite, not drawn" if skipped else ""
    echo(f"{key} of run {short_id(run.id)}: {plural(len(values), 'point')}, steps "
         f"{steps[0]}–{steps[-1]}{note}")
    if not finite:
        return
    width = max(10, min(100, shutil.get_terminal_size().columns - 16))
    for line in draw(steps, values, width=width):
        echo(line)
    low = min(finite, key=lambda p: p[1])
    high = max(finite, key=lambda p: p[1])
    echo(f"min {low[1]:.6g} (step {low[0]}), max {high[1]:.6g} (step {high[0]}), "
         f"last {values[-1]:.6g} (step {steps[-1]})")


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--diff-only", is_flag=True, help="Only rows whose values differ.")
@json_option
def compare(run_ids: tuple[str, ...], diff_only: bool, as_json: bool) -> None:
    """Params and latest metrics of several runs side by side; differing rows are marked."""
    from mloop.project import current_project
    from mloop.tracking.compare import compare_runs

    result = compare_runs(current_project(), list(run_ids))
    rows = [r for r in result.rows if r.differs or not diff_only]
    if as_json:
        emit_json({"runs": result.run_ids, "rows": [
            {"field": r.field, "values": r.values, "differs": r.differs} for r in rows]})
        return
    table(["field", *(f"{n} ({short_id(i)})" for n, i in zip(result.names, result.run_ids,
                                                         strict=True)), "differs"],
          [(r.field, *r.values, "*" if r.differs else "") for r in rows],
          empty="Nothing to compare.")


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
def delete(run_ids: tuple[str, ...]) -> None:
    """Hide runs from listings (soft delete; `mloop runs restore` undoes it)."""
    from mloop.project import current_project
    from mloop.tracking.records import set_deleted

    ids = set_deleted(current_project(), run_ids, True)
    echo(f"Deleted {plural(len(ids), 'run')}. Undo with: mloop runs restore "
         + " ".join(short_id(i) for i in ids))


@runs.command("restore")
@click.argument("run_ids", nargs=-1, required=True)
def restore(run_ids: tuple[str, ...]) -> None:
    """Bring back deleted runs."""
    from mloop.project import current_project
    from mloop.tracking.records import set_deleted

    ids = set_deleted(current_project(), run_ids, False)
    echo(f"Restored {plural(len(ids), 'run')}.")


@runs.command("download")
@click.argument("run_id")
@click.argument("path", default="")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("."),
              show_default=True, help="Folder (or file name) to write to.")
def download(run_id: str, path: str, output: Path) -> None:
    """Copy a run's artifact PATH (a file or folder; all of them if omitted) to --output.

    Every byte is checked against its content hash before it is written.
    """
    from mloop.project import current_project
    from mloop.tracking import artifacts
    from mloop.tracking.records import resolve_run_id

    project = current_project()
    target = artifacts.download(project, resolve_run_id(project, run_id), path, output)
    echo(f"Downloaded to {target}")
