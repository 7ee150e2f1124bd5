"""``mloop automate …``: continuous training from ``.mloop/automation.yaml``."""

from __future__ import annotations

import sys
from typing import Any

import click

from mloop.cli.render import echo, emit_json, json_option, table
from mloop.repositories.automation_states import DecisionOutcome


@click.group()
def automate() -> None:
    """Retrain without anyone at the keyboard: triggers start pipelines, a policy promotes.

    Triggers (cron schedule, new dataset version, monitoring alert), cooldowns, the data
    validation gate and the promotion policy live in .mloop/automation.yaml; see
    docs/automation.md. Every decision is recorded: `mloop automate history`.
    """


@automate.command("check")
@click.option("--dry-run", is_flag=True, help="Only say what would run; change nothing.")
@click.option("-p", "--pipeline", "pipelines", multiple=True,
              help="Only this pipeline (repeatable; default: every automated pipeline).")
@json_option
def check_cmd(dry_run: bool, pipelines: tuple[str, ...], as_json: bool) -> None:
    """Evaluate every trigger once and act on what fired, then exit (for cron).

    A fired pipeline is validated, run, its model evaluated and promoted (registered,
    aliased) or rejected (not registered) by the policy. A round that crashes leaves its
    events pending: the next check tries again.

    Exit status: 0 when every pipeline got a decision (promoted, rejected, succeeded,
    failed — a pipeline run that failed is a decision —, blocked, skipped_cooldown) or
    had nothing to do. When the automation itself erred for a pipeline, the errors go
    to stderr, the other pipelines are still checked, and the exit status is the first
    error's: 3 for a configured pipeline that cannot be found, 69 for a service that
    cannot be reached, 70 for an unexpected exception. 2 for a broken automation.yaml;
    3 for a --pipeline it does not have.
    """
    from mloop.automation import check
    from mloop.core.redact import redact
    from mloop.errors import MloopError
    from mloop.project import current_project

    outcomes = check(current_project(), dry_run=dry_run, pipelines=list(pipelines) or None)
    if as_json:
        emit_json([o.to_dict() for o in outcomes])
    elif not outcomes:
        echo("No pipelines are automated: describe them in .mloop/automation.yaml "
             "(see docs/automation.md).")
    for o in outcomes:
        if not as_json:
            _print_outcome(o, show_error=False)
    errors = [o for o in outcomes if o.error is not None]
    for o in errors:
        echo(f"Error: {o.pipeline}: {redact(o.error or '')}", fg="red", err=True)
    if errors:
        raise SystemExit(errors[0].error_code or MloopError.exit_code)


def _print_outcome(o: Any, *, show_error: bool = True) -> None:
    """One outcome for people; its error too unless ``show_error`` is off (``check``
    writes errors on stderr)."""
    head = f"{o.pipeline}: {o.status.replace('_', ' ')}"
    if o.events:
        head += f" ({o.trigger})"
    echo(head)
    if o.decision is not None:
        if o.decision.pipeline_uri:
            echo(f"  run: {o.decision.pipeline_uri}")
        for reason in o.decision.reasons:
            echo(f"  - {reason}")
    for note in o.notes:
        if note != o.error:
            echo(f"  note: {note}")
    if show_error and o.error is not None and o.decision is None:  # else among the reasons
        echo(f"  error: {o.error}")


@automate.command("run")
@click.option("--poll", default="60s", show_default=True,
              help="How often to look for new dataset versions and alerts (e.g. 30s, 5m).")
@json_option
def run_cmd(poll: str, as_json: bool) -> None:
    """Stay up: run each schedule trigger on time and poll the event triggers.

    Cron expressions are read in UTC. Edits to .mloop/automation.yaml apply at the next
    poll. Ctrl-C or SIGTERM stops cleanly: a pipeline already running finishes first
    (a second Ctrl-C abandons it).
    """
    import os
    import signal
    import threading
    import time

    from mloop.automation import run
    from mloop.automation.runner import RoundStatus
    from mloop.project import current_project

    project = current_project()
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():  # asked twice: leave now; the next check takes the lease over
            echo("Abandoning the running pipeline.", err=True)
            os._exit(130)
        echo("Stopping (a running pipeline finishes first; again to abandon it)…",
             err=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def report(outcomes: list[Any]) -> None:
        for o in outcomes:
            if o.status == RoundStatus.IDLE and not o.notes:
                continue
            if as_json:
                echo(_json_line(o.to_dict()))
            else:
                echo(f"{time.strftime('%H:%M:%S')} ", nl=False)
                _print_outcome(o)
            sys.stdout.flush()

    if not as_json:
        echo(f"Automating {project.root} (poll every {poll}; Ctrl-C stops)")
    run(poll=poll, stop=stop, on_outcomes=report, project=project)
    if not as_json:
        echo("Stopped.")


def _json_line(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)


@automate.command("history")
@click.option("-p", "--pipeline", help="Only this pipeline's decisions.")
@click.option("--decision", type=click.Choice([str(o) for o in DecisionOutcome]),
              help="Only decisions of this kind.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="At most this many decisions.")
@json_option
def history_cmd(pipeline: str | None, decision: str | None, limit: int, as_json: bool) -> None:
    """What the automation decided, newest first: trigger, run, model, why."""
    from mloop.automation import history
    from mloop.core.clock import format_ms
    from mloop.project import current_project

    found = history(pipeline=pipeline, decision=decision, limit=limit,
                    project=current_project())
    if as_json:
        emit_json([d.to_dict() for d in found])
        return
    table(("when (UTC)", "pipeline", "decision", "trigger", "run", "model", "why"),
          [(format_ms(d.fired_at), d.pipeline or "-", d.decision, d.trigger,
            d.pipeline_run_id or "-", d.registered or "-",
            _short(d.reasons[0] if d.reasons else ""))
           for d in found], empty="No decisions yet.")
    if found:
        echo("Every reason: --json")


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
