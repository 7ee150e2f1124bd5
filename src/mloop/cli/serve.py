"""``mloop serve``: registered models as a REST service (Open Inference Protocol)."""

from __future__ import annotations

import click

from mloop.cli.render import echo


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes (metrics are then per process).")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Most rows one model call takes when requests are merged.")
@click.option("--max-batch-delay-ms", type=click.FloatRange(min=0), default=0.0,
              show_default=True, help="How long a batch may wait to fill (0: never waits; "
              "requests that arrive while the model is busy are merged anyway).")
@click.option("--max-queue", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Requests waiting per model before new ones get 503 + Retry-After.")
@click.option("--max-body-mb", type=click.FloatRange(min=0.001), default=16.0,
              show_default=True, help="Largest request body accepted (413 above).")
@click.option("--engine", type=click.Choice(["native", "onnx", "auto"]),
              help="How models predict (default: the project's models.engine setting).")
@click.option("--no-log", is_flag=True, help="Do not log predictions for monitoring.")
@click.option("--monitor-every", default="60s", show_default=True,
              help="How often to check the served models for drift, live metrics and alert "
              "rules (exported on /metrics); 0 turns it off.")
def serve(models: tuple[str, ...], host: str, port: int, workers: int, max_batch_size: int,
          max_batch_delay_ms: float, max_queue: int, max_body_mb: float, engine: str | None,
          no_log: bool, monitor_every: str) -> None:
    """Serve MODELS (models:/churn@champion …) over HTTP until Ctrl-C or SIGTERM.

    Open Inference Protocol (KServe V2) at /v2/…, plus POST /predict ({"records": […]})
    and POST /invocations (MLflow's scoring form); GET /metrics for Prometheus. Ready
    (GET /v2/health/ready) once every model is loaded and warmed. Every prediction is
    logged for monitoring under .mloop/predictions (unless --no-log); labels for them
    arrive at POST /api/v1/feedback, and every --monitor-every the served models are
    checked against the rules of .mloop/monitoring.yaml (see `mloop monitor run`).
    """
    from mloop.core.clock import parse_duration
    from mloop.project import current_project
    from mloop.serving.server import ServeConfig
    from mloop.serving.server import serve as run

    project = current_project()
    every = 0.0 if monitor_every.strip() in ("0", "0s") else parse_duration(monitor_every) / 1000
    config = ServeConfig(list(models), project=str(project.root), max_batch_size=max_batch_size,
                         max_batch_delay_ms=max_batch_delay_ms, max_queue=max_queue,
                         max_body_bytes=int(max_body_mb * (1 << 20)), engine=engine,
                         log_predictions=not no_log, monitor_every=every)
    echo(f"Serving {', '.join(models)} on http://{host}:{port} (Ctrl-C to stop)",
               err=True)
    run(config, host=host, port=port, workers=workers)
