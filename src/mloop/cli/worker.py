"""``mloop worker`` (model-on-demand) and ``mloop jobs dead`` (the dead-letter list)."""

from __future__ import annotations

import signal
import threading

import click

from mloop.cli.render import echo, emit_json, json_option, table
from mloop.core.humanize import plural

_broker = click.option("--broker", default=None,
                       help="sqlite (the project's queue), sqlite:///path/queue.db or "
                            "redis://host:6379/0. Default: MLOOP_BROKER, else [serving] "
                            "broker in config.toml, else sqlite.")


@click.command()
@click.argument("model")
@_broker
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads claiming and predicting.")
@click.option("--visibility", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds before a claimed job whose worker went silent is taken over.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="Failures before a job goes to the dead-letter list.")
@click.option("--follow", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between checks whether the model's alias moved.")
@click.option("--no-log", is_flag=True, help="Do not log predictions for monitoring.")
@click.option("--allow-pickle", is_flag=True, help="Load a model saved as a pickle (joblib), "
              "which runs code when loaded: only models you trust. Without it it is refused "
              "(exit 7).")
def worker(model: str, broker: str | None, concurrency: int, visibility: float, max_attempts: int,
           follow: float, no_log: bool, allow_pickle: bool) -> None:
    """Answer jobs submitted for MODEL (mloop.submit) until Ctrl-C or SIGTERM.

    At-least-once: a job whose worker dies is claimed again after --visibility seconds;
    the first result written wins. Failures are retried with exponential backoff, then
    kept with their error in the dead-letter list (mloop jobs dead). When MODEL is an
    alias (models:/churn@champion) and it moves, the new version is loaded without
    dropping jobs. Answered jobs are logged for monitoring like served predictions (the
    job id is the request id for feedback), unless --no-log.
    """
    from mloop.core.redact import redact
    from mloop.project import current_project
    from mloop.serving import resolve_broker
    from mloop.serving.broker import open_broker
    from mloop.serving.worker import Worker

    project = current_project()
    url, _ = resolve_broker(broker, project)
    queue = open_broker(url, visibility=visibility, max_attempts=max_attempts)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner = Worker(project, model, queue, concurrency=concurrency, follow=follow,
                    log_predictions=not no_log, allow_pickle=allow_pickle or None)
    try:
        runner.model()  # refuse a missing or unsafe model before announcing anything
    except BaseException:
        queue.close()
        raise
    echo(f"Worker for {model} on {redact(url)} ({concurrency} threads; Ctrl-C to stop)",
         err=True)
    try:
        runner.run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        queue.close()
    echo(f"Answered {plural(runner.processed, 'job')} "
         f"({plural(runner.failed, 'failure')}).", err=True)


@click.group()
def jobs() -> None:
    """Model-on-demand jobs (see `mloop worker`)."""


@jobs.command("dead")
@_broker
@json_option
def dead(broker: str | None, as_json: bool) -> None:
    """Jobs that failed every attempt, with their last error."""
    from mloop.serving import resolve_broker
    from mloop.serving.broker import open_broker

    queue = open_broker(resolve_broker(broker)[0])
    try:
        letters = queue.dead_letters()
    finally:
        queue.close()
    if as_json:
        emit_json(letters)
        return
    table(["job", "model", "attempts", "error"],
          [(d["id"], d["model"], d["attempts"], d["error"]) for d in letters],
          empty="No dead letters.")
