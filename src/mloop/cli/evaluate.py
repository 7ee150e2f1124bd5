"""``mloop test`` (the deployment gate) and ``mloop evaluate`` (metrics, cross-validation)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mloop.cli.render import echo, emit_json, fmt, json_option, table
from mloop.core.humanize import plural

_common = [
    click.argument("model"),
    click.option("-d", "--data", required=True,
                 help="Labelled rows: a dataset ref (test@1), or a CSV or Parquet file."),
    click.option("-t", "--target", required=True, help="The column holding the true values."),
    click.option("-s", "--sensitive", multiple=True,
                 help="A sensitive feature column for fairness and slices (repeatable)."),
    click.option("--slice", "slices", multiple=True,
                 help="Another column to report metrics per value of (repeatable)."),
    click.option("-b", "--baseline", help="A model to compare with, e.g. "
                 "models:/churn@champion."),
    click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                 help="Also write the report: .html for a page, anything else for JSON."),
    click.option("--resamples", type=click.IntRange(0, 100_000), default=200,
                 show_default=True, help="Bootstrap resamples for the metric intervals "
                 "(0: none)."),
    click.option("--no-record", is_flag=True,
                 help="Do not store the report with the model version."),
    json_option,
]


def _options(fn: Any) -> Any:
    for decorator in reversed(_common):
        fn = decorator(fn)
    return fn


def _notes(report: Any) -> None:
    """Each note once, on stderr (stdout stays the report or its JSON)."""
    for note in report.notes:
        echo(f"Note: {note}", err=True)


def _write(report: Any, output: Path | None) -> None:
    if output is None:
        return
    if output.suffix.lower() in (".html", ".htm"):
        report.to_html(str(output))
    else:
        report.to_json(str(output))
    echo(f"Wrote {output}", err=True)


def _metrics_table(report: Any) -> None:
    base = report.baseline_metrics or {}
    table(["metric", "value", "95% interval", "baseline"],
          [(k, v["value"], f"{fmt(v.get('low'))} to {fmt(v.get('high'))}"
            if "low" in v else "-", base.get(k)) for k, v in report.metrics.items()],
          title=f"{report.model} on {report.data} ({report.rows:,} rows)")


@click.command("test")
@_options
@click.option("--suite", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML suite of checks and thresholds (default: the built-in suite).")
def test(model: str, data: str, target: str, sensitive: tuple[str, ...],
         slices: tuple[str, ...], baseline: str | None, output: Path | None, resamples: int,
         no_record: bool, as_json: bool, suite: Path | None) -> None:
    """Test MODEL against a suite of checks: the deployment gate.

    Prints each check (pass / warn / fail, measured value, threshold, why) and exits 0
    when every blocking check passes, 1 when one fails. The report is stored with the
    model version: `mloop models show` then says whether it passed, against which suite,
    when.
    """
    from mloop.evaluation.core import evaluate_request
    from mloop.evaluation.request import EvaluationRequest
    from mloop.project import current_project

    project = current_project()
    report = evaluate_request(project, EvaluationRequest.of(
        model, data, target, sensitive_features=sensitive, baseline=baseline, suite=suite,
        slices=slices, resamples=resamples, record=not no_record))
    _notes(report)
    _write(report, output)
    if as_json:
        emit_json(report.to_dict())
    else:
        table(["status", "check", "value", "threshold", "why"],
              [(c.status.upper(), c.name, c.value, c.threshold, c.explanation)
               for c in report.checks], title=f"{report.model}: suite {report.suite}")
        counts = report.counts
        echo(f"{'PASSED' if report.passed else 'FAILED'}: {counts['pass']} passed, "
             f"{plural(counts['warn'], 'warning')}, {counts['fail']} failed")
    sys.exit(0 if report.passed else 1)


@click.command("evaluate", short_help="Measure MODEL on labelled data: metrics, slices, "
               "fairness, cross-validation.")
@_options
@click.option("--cv", type=click.IntRange(min=2), help="Also cross-validate with this many "
              "folds (refits the model).")
@click.option("--seeds", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Repeat the cross-validation over this many shuffles (mean and std).")
@click.option("--split", type=click.Choice(["auto", "stratified", "kfold", "group",
                                           "timeseries"]),
              default="auto", show_default=True, help="How cross-validation folds are cut.")
@click.option("--groups", "cv_groups", help="Column whose values must not straddle folds "
              "(with --split group), e.g. customer_id.")
def evaluate_cmd(model: str, data: str, target: str, sensitive: tuple[str, ...],
                 slices: tuple[str, ...], baseline: str | None, output: Path | None,
                 resamples: int, no_record: bool, as_json: bool, cv: int | None, seeds: int,
                 split: str, cv_groups: str | None) -> None:
    """Measure MODEL on labelled data: metrics with intervals, slices, fairness, and
    optionally cross-validation over several seeds. Runs the default checks too, but
    never fails the command on them (use `mloop test` as a gate)."""
    from mloop.evaluation.core import evaluate_request
    from mloop.evaluation.request import EvaluationRequest
    from mloop.project import current_project

    project = current_project()
    report = evaluate_request(project, EvaluationRequest.of(
        model, data, target, sensitive_features=sensitive, baseline=baseline, slices=slices,
        cv=cv, seeds=seeds, cv_strategy=split, cv_groups=cv_groups, resamples=resamples,
        record=not no_record))
    _notes(report)
    _write(report, output)
    if as_json:
        emit_json(report.to_dict())
        return
    _metrics_table(report)
    if report.cv:
        table(["metric", "mean", "std", "folds"],
              [(k, v["mean"], v["std"], v["folds"]) for k, v in report.cv.items()],
              title=f"Cross-validation ({plural(cv or 0, 'fold')} x {plural(seeds, 'seed')})")
    for column, groups in report.slices.items():
        names = sorted({m for g in groups.values() for m in g if m != "rows"})
        table(["group", "rows", *names],
              [(g, int(v["rows"]), *(v.get(n) for n in names)) for g, v in groups.items()],
              title=f"By {column}")
    counts = report.counts
    echo(f"Checks: {counts['pass']} passed, {plural(counts['warn'], 'warning')}, "
         f"{counts['fail']} "
         "failed (see `mloop test` for the gate)")
