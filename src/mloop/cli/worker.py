"""``mloop worker`` (model-on-demand) and ``mloop jobs dead`` (the dead-letter list)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from mloop.cli.render import echo, emit_json, json_option, table
from mloop.core.humanize import plural

_broker = click.option("--broker", default=None,
                       help="sqlite (the project's queue), sqlite:///path/queue.db or "
                            "redis://host:6379/0. Default: MLOOP_BROKER, else [serving] "
                            "broker in config.toml, else sqlite.")


@click.command()
@click.argument("model", required=False)
@click.option("--deployment", default=None, metavar="NAME",
              help="Answer the jobs of deployment NAME (submitted to deployments:/NAME), "
                   "routed by its current revision as `mloop serve --deployment` routes "
                   "requests. Instead of MODEL.")
@_broker
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads claiming and predicting.")
@click.option("--visibility", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds before a claimed job whose worker went silent is taken over.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="Failures before a job goes to the dead-letter list.")
@click.option("--follow", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between checks whether the model's alias moved (or the "
                   "deployment's revision changed).")
@click.option("--no-log", is_flag=True, help="Do not log predictions for monitoring.")
@click.option("--allow-pickle", is_flag=True, help="Load a model saved as a pickle (joblib), "
              "which runs code when loaded: only models you trust. Without it it is refused "
              "(exit 7).")
def worker(model: str | None, deployment: str | None, broker: str | None, concurrency: int,
           visibility: float, max_attempts: int, follow: float, no_log: bool,
           allow_pickle: bool) -> None:
    """Answer jobs submitted for MODEL, or for --deployment NAME (mloop.submit), until
    Ctrl-C or SIGTERM.

    At-least-once: a job whose worker dies is claimed again after --visibility seconds;
    the first result written wins. Failures are retried with exponential backoff, then
    kept with their error in the dead-letter list (mloop jobs dead). When MODEL is an
    alias (models:/churn@champion) and it moves, the new version is loaded without
    dropping jobs. Answered jobs are logged for monitoring like served predictions (the
    job id is the request id for feedback), unless --no-log.

    With --deployment NAME, each job of deployments:/NAME gets an arm of the deployment's
    current revision (sticky by the policy's field in the job's first row, else by the
    weights), the fallback answers when the arm fails, a shadow gets copies, and every
    job is indexed as deployment traffic; a new revision is followed every --follow.
    """
    target = _target(model, deployment)
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
    options: dict[str, Any] = {"concurrency": concurrency, "follow": follow,
                               "log_predictions": not no_log,
                               "allow_pickle": allow_pickle or None}
    if deployment is not None:
        from mloop.deploy.worker import DeploymentWorker

        runner: Worker = DeploymentWorker(project, deployment, queue, **options)
    else:
        runner = Worker(project, target, queue, **options)
    try:
        runner.load()  # refuse a missing deployment or an unsafe model before announcing
    except BaseException:
        queue.close()
        raise
    echo(f"Worker for {target} on {redact(url)} ({concurrency} threads; Ctrl-C to stop)",
         err=True)
    try:
        runner.run(stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        queue.close()
    echo(f"Answered {plural(runner.processed, 'job')} "
         f"({plural(runner.failed, 'failure')}).", err=True)


def _target(model: str | None, deployment: str | None) -> str:
    """What the worker answers: MODEL, or the deployment's queue; exactly one of them."""
    if model is not None and deployment is not None:
        raise click.UsageError("Give MODEL or --deployment NAME, not both: a worker answers "
                               "one queue.")
    if deployment is not None:
        return f"deployments:/{deployment}"
    if model is None:
        raise click.UsageError("Give the MODEL whose jobs to answer (models:/churn@champion) "
                               "or --deployment NAME.")
    if model.startswith("deployments:/"):
        raise click.UsageError(f"{model} is a deployment: run `mloop worker --deployment "
                               f"{model[len('deployments:/'):]}`.")
    return model


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
