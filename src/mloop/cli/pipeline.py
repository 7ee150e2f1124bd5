"""``mloop pipeline …``: run pipelines (cached), see their runs, draw their graphs."""

from __future__ import annotations

from typing import Any

import click

from mloop.cli.render import echo, emit_json, json_option, table
from mloop.core.clock import format_ms
from mloop.core.humanize import plural


@click.group()
def pipeline() -> None:
    """Pipelines: steps from pipelines.py (or mloop.yaml stages), cached by content.

    A step runs again only when its code (with the project helpers it calls), its
    params, its inputs' content or the environment changed; otherwise its outputs are
    restored from the object store.
    """


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    from mloop.errors import InvalidInputError

    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--{what} takes NAME=VALUE, not {item!r}.")
        out[key.strip()] = value
    return out


@pipeline.command("run")
@click.argument("name", required=False)
@click.option("-p", "--param", "params", multiple=True,
              help="NAME=VALUE for the steps' params (repeatable), e.g. --param C=0.5.")
@click.option("-i", "--input", "inputs", multiple=True,
              help="NAME=VALUE for the pipeline's inputs, e.g. --input raw=train@latest.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="local processes, or a Dask cluster.")
@click.option("--scheduler", help="The Dask scheduler address (tcp://host:8786); without "
              "it --executor dask starts a local cluster.")
@click.option("--force", is_flag=True, help="Run every step, cached or not.")
@click.option("--from", "from_step", help="Run this step and everything downstream of it "
              "again, cached or not.")
@json_option
def run_cmd(name: str | None, params: tuple[str, ...], inputs: tuple[str, ...],
            executor: str, scheduler: str | None, force: bool, from_step: str | None,
            as_json: bool) -> None:
    """Run pipeline NAME (without NAME: the stages of mloop.yaml).

    Steps whose inputs are ready run side by side; unchanged steps are restored from the
    cache. A failing step (its traceback kept) stops what depends on it and fails the
    run; running again resumes from it.
    """
    from mloop import quick
    from mloop.pipelines.engine import run_pipeline
    from mloop.pipelines.registry import find_pipeline
    from mloop.project import current_project
    from mloop.repositories.pipelines import PipelineStatus, describe_counts

    project = current_project()
    pipe = find_pipeline(project, name)
    before = quick.watched_stats(project.root, pipe) if name is None else None
    if not as_json:
        echo(f"pipeline {pipe.name}: {plural(len(pipe.steps), 'step')}", err=True)
    result = run_pipeline(project, pipe, inputs=_pairs(inputs, "input"),
                          params=_pairs(params, "param"), executor=executor,
                          scheduler=scheduler, force=force, from_step=from_step,
                          quiet=as_json)
    plain = not (params or inputs or force or from_step or executor != "local")
    succeeded = result.status == PipelineStatus.SUCCEEDED
    if before is not None and plain and succeeded:
        quick.record(project.root, pipe, result, before)  # the next unchanged run: at once
    else:
        quick.forget(project.root)
    if as_json:
        emit_json(result.to_dict())
    else:
        seconds = ((result.finished_at or result.started_at) - result.started_at) / 1000
        summary = describe_counts(result.step_counts())
        echo(f"{result.uri}: {result.status} ({summary}) in {seconds:.1f} s")
        if result.error:
            echo(f"  {result.error}\n  details: mloop pipeline show {result.id[-12:]}")
    if not succeeded:
        raise SystemExit(1)



@pipeline.command("status")
@click.argument("name", required=False)
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="At most this many runs.")
@json_option
def status_cmd(name: str | None, limit: int, as_json: bool) -> None:
    """Recent pipeline runs (of NAME, or all), newest first."""
    from mloop.pipelines.history import list_runs
    from mloop.project import current_project
    from mloop.repositories.pipelines import describe_counts

    runs = list_runs(current_project(), name, limit=limit)
    if as_json:
        emit_json(runs)
        return
    if not runs:
        echo("No pipeline runs yet: mloop pipeline run NAME")
        return
    table(("run", "pipeline", "status", "steps", "started", "seconds", "trigger"),
          [(r["id"][-12:], r["pipeline"], r["status"],
            describe_counts(r["steps"]),
            format_ms(r["started_at"]),
            f"{(r['finished_at'] - r['started_at']) / 1000:.1f}" if r["finished_at"] else "-",
            r["trigger"] or "") for r in runs])


@pipeline.command("show")
@click.argument("run_id")
@click.option("--log", "log_step", help="Print this step's log.")
@json_option
def show_cmd(run_id: str, log_step: str | None, as_json: bool) -> None:
    """One pipeline run: each step's status, attempts, time, outputs and error."""
    from mloop.errors import NotFoundError
    from mloop.pipelines.history import get_run
    from mloop.project import current_project
    from mloop.repositories.pipelines import StepStatus

    project = current_project()
    run = get_run(project, run_id)
    if log_step:
        step = next((s for s in run["steps"] if s["step"] == log_step), None)
        if step is None:
            raise NotFoundError(f"Run {run_id} has no step {log_step!r}; its steps: "
                                f"{', '.join(s['step'] for s in run['steps']) or 'none'}.")
        text = (project.objects.get_bytes(step["log"]).decode(errors="replace")
                if step["log"] else "")
        if text:
            echo(text, nl=False)
        elif step["status"] in (StepStatus.RAN, StepStatus.FAILED):
            echo(f"(step {log_step} printed nothing)")
        else:
            echo(f"(step {log_step} did not run in this run: {step['status']})")
        return
    if as_json:
        emit_json(run)
        return
    echo(f"{run['uri']}: {run['status']}  (tracking run {run['run_id'] or '-'}; "
         f"executor {run['executor']}; params {run['params'] or '{}'})")
    table(("step", "status", "attempts", "seconds", "outputs", "run"),
          [(s["step"], s["status"], s["attempts"],
            "-" if s["seconds"] is None else f"{s['seconds']:.2f}",
            "; ".join(f"{k}: {_summary(v)}" for k, v in s["outputs"].items()),
            (s["run_id"] or "")[-12:]) for s in run["steps"]])
    for s in run["steps"]:
        if s["error"] and s["status"] == StepStatus.FAILED:
            echo(f"\n{s['step']} failed:\n{s['error']}")
            if s["log"]:
                echo(f"(its log: mloop pipeline show {run['id'][-12:]} --log {s['step']})")


def _summary(ref: dict[str, Any]) -> str:
    text = ref.get("uri") or ref.get("summary") or ref.get("kind", "")
    return str(text)


@pipeline.command("dag")
@click.argument("name", required=False)
def dag_cmd(name: str | None) -> None:
    """Draw pipeline NAME's graph as text (without NAME: mloop.yaml's stages)."""
    from mloop.pipelines.registry import find_pipeline
    from mloop.project import current_project

    echo(find_pipeline(current_project(), name).draw())


@pipeline.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """The pipelines this project defines, with their steps, inputs and params."""
    from mloop.pipelines.registry import list_pipelines
    from mloop.project import current_project

    found = list_pipelines(current_project())
    rows = [(name, ", ".join(p.steps), ", ".join(sorted(p.external_inputs())),
             ", ".join(sorted(p.params()))) for name, p in sorted(found.items())]
    if as_json:
        emit_json([{"name": r[0], "steps": r[1].split(", "), "inputs": r[2], "params": r[3]}
                   for r in rows])
        return
    if not rows:
        echo("No pipelines: define them in pipelines.py at the project root.")
        return
    table(("pipeline", "steps", "inputs", "params"), rows)
