"""``mloop serve``: registered models as a REST service (Open Inference Protocol)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mloop.cli.render import echo

if TYPE_CHECKING:
    from mloop.serving.security import Security


@click.command()
@click.argument("models", nargs=-1)
@click.option("--deployment", "deployments", multiple=True, metavar="NAME",
              help="Also serve deployment NAME (repeatable): /v2/models/NAME/infer, "
              "/predict?model=NAME and /invocations?model=NAME routed by its current "
              "revision (see `mloop deploy`).")
@click.option("--poll-interval", default="2s", show_default=True,
              help="How often to check served aliases and deployments for changes (a "
              "moved alias or a new revision is followed without a restart); 0 turns it "
              "off.")
@click.option("--no-controller", is_flag=True, help="Do not run the deployments' "
              "controller (canary steps, analyses, bandit updates) in this server; run "
              "`mloop deploy run` instead.")
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
              help="How models predict: auto (the verified ONNX twin when there is one), "
              "native (the model's own library) or onnx. Default: the [serving] engine "
              "setting, auto.")
@click.option("--no-log", is_flag=True, help="Do not log predictions for monitoring.")
@click.option("--allow-pickle", is_flag=True, help="Load models saved as pickles (joblib), "
              "which run code when loaded: only models you trust. Without it they are "
              "refused (exit 7).")
@click.option("--monitor-every", default="60s", show_default=True,
              help="How often to check the served models for drift, live metrics and alert "
              "rules (exported on /metrics); 0 turns it off.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="HOST",
              help="Also answer requests whose Host header names HOST (repeatable; "
              "*.example.com for subdomains, * for any). Always: 127.0.0.1, localhost, ::1 "
              "and --host. Also the setting [serving] allowed_hosts.")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="Bearer tokens (made by `mloop token create`) that writes need; also "
              "MLOOP_SERVE_TOKENS. Without one, anyone who reaches the port may write.")
@click.option("--protect", type=click.Choice(["writes", "inference", "all"]),
              default="writes", show_default=True,
              help="With --token-file, what needs a token: writes (feedback), inference "
              "too, or all but the health checks.")
def serve(models: tuple[str, ...], host: str, port: int, workers: int, max_batch_size: int,
          max_batch_delay_ms: float, max_queue: int, max_body_mb: float, engine: str | None,
          no_log: bool, allow_pickle: bool, monitor_every: str,
          allowed_hosts: tuple[str, ...], token_file: str | None, protect: str,
          deployments: tuple[str, ...], poll_interval: str, no_controller: bool) -> None:
    """Serve MODELS (models:/churn@champion …) and deployments over HTTP until Ctrl-C or
    SIGTERM.

    Open Inference Protocol (KServe V2) at /v2/…, plus POST /predict ({"records": […]})
    and POST /invocations (MLflow's scoring form); GET /metrics for Prometheus. Ready
    (GET /v2/health/ready) once every model is loaded and warmed. Every prediction is
    logged for monitoring under .mloop/predictions (unless --no-log); labels for them
    arrive at POST /api/v1/feedback, and every --monitor-every the served models are
    checked against the rules of .mloop/monitoring.yaml (see `mloop monitor run`).
    A served alias (models:/churn@champion) is followed when it moves, and each
    --deployment follows its revisions, every --poll-interval.

    Every POST must be JSON, and requests must name this server in their Host header
    (421 otherwise); with --token-file, writes need `Authorization: Bearer <token>`.
    """
    from mloop.core.clock import parse_duration
    from mloop.project import current_project
    from mloop.serving.server import ServeConfig
    from mloop.serving.server import serve as run

    if not models and not deployments:
        raise click.UsageError("Give at least one model to serve (models:/churn@champion) "
                               "or --deployment NAME.")
    project = current_project()
    every = 0.0 if monitor_every.strip() in ("0", "0s") else parse_duration(monitor_every) / 1000
    poll = 0.0 if poll_interval.strip() in ("0", "0s") else parse_duration(poll_interval) / 1000
    _preflight(project, models, engine, host, port)
    extensions = ["mloop.deploy.serving:extension"] if deployments else []
    config = ServeConfig(list(models), project=str(project.root), max_batch_size=max_batch_size,
                         max_batch_delay_ms=max_batch_delay_ms, max_queue=max_queue,
                         max_body_bytes=int(max_body_mb * (1 << 20)), engine=engine,
                         log_predictions=not no_log, monitor_every=every,
                         allow_pickle=allow_pickle or None,
                         security=_security(host, allowed_hosts, token_file, protect),
                         deployments=list(deployments), extensions=extensions,
                         poll_interval=poll, controller=not no_controller)
    from mloop.registry.loading import check_model

    needed = list(models)
    if deployments:
        from mloop.deploy.serving import check_deployments

        needed += check_deployments(project, list(deployments), list(models))
    for ref in needed:  # refuse a missing or unsafe model before announcing anything
        check_model(project, ref, engine=engine or project.settings.serve_engine,
                    allow_pickle=config.allow_pickle)
    served = [*models, *(f"deployment {d}" for d in deployments)]
    echo(f"Serving {', '.join(served)} on http://{host}:{port} (Ctrl-C to stop)", err=True)
    run(config, host=host, port=port, workers=workers)


def _security(host: str, allowed_hosts: tuple[str, ...], token_file: str | None,
              protect: str) -> Security:
    """The server's checks from the flags and the user's settings; a token file that is
    missing or broken stops the start here, with the reason."""
    from pathlib import Path

    from mloop.core.settings import user_setting
    from mloop.core.tokens import read_token_file
    from mloop.serving.security import LOOPBACK, Security

    path = user_setting("serve_tokens", token_file)
    hosts = [*user_setting("serve_allowed_hosts"), *allowed_hosts]
    if path:
        path = str(Path(path).expanduser().resolve())
        read_token_file(Path(path))
    elif protect != "writes":
        from mloop.errors import InvalidInputError

        raise InvalidInputError(f"--protect {protect} needs tokens to check: give "
                                "--token-file (or set MLOOP_SERVE_TOKENS).")
    elif host not in LOOPBACK:
        echo(f"Warning: listening on {host} without --token-file: anyone who can reach "
             "the port can send feedback. Create tokens with `mloop token create`.",
             err=True)
    return Security(host=host, allowed_hosts=hosts, token_file=path, protect=protect)


def _preflight(project: Any, models: tuple[str, ...], engine: str | None, host: str,
               port: int) -> None:
    """What would otherwise fail after "Serving … on http://…" is announced, as one clear
    error first: a model that does not exist (exit 3), an ONNX engine without its twin or
    without onnxruntime (exit 2), a port in use (exit 69) or a host not of this machine.
    (Deployments are checked after: see ``check_deployments``.)"""
    import importlib.util
    import json

    from mloop.errors import InvalidInputError
    from mloop.repositories.model_sources import source

    chosen = engine or project.settings.serve_engine
    for ref in models:
        version = source(project, ref)  # NotFoundError (exit 3) names what is missing
        if chosen != "onnx":  # auto serves natively where the twin cannot run
            continue
        has_twin = bool(json.loads(project.objects.get_bytes(version.manifest)).get("onnx"))
        if chosen == "onnx" and not has_twin:
            raise InvalidInputError(f"{version.uri} has no ONNX form, so --engine onnx cannot "
                                    "serve it; use --engine native or auto.")
        if has_twin and importlib.util.find_spec("onnxruntime") is None:
            raise InvalidInputError(f"The ONNX engine ({chosen}) needs onnxruntime, which is "
                                    "not installed: pip install 'mloop[onnx]' (or use "
                                    "--engine native).")
    _check_port(host, port)


def _check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once (as the server will) and let go: a port in use or not ours
    is an error before anything is announced."""
    import errno
    import socket

    from mloop.errors import InvalidInputError, ServiceUnavailableError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInputError(f"--host {host!r} is not an address or a name that resolves "
                                f"({exc.strerror}).") from exc
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidInputError(f"--host {host} is not an address of this machine; "
                                        "use 127.0.0.1, 0.0.0.0 or one of its own.") from exc
            if exc.errno == errno.EACCES:
                raise ServiceUnavailableError(f"Port {port} needs privileges to listen on; "
                                              "choose a --port of 1024 or more.") from exc
            if exc.errno == errno.EADDRINUSE:
                raise ServiceUnavailableError(f"Port {port} on {host} is already in use by "
                                              "another process: choose another --port or "
                                              "stop that process.") from exc
            raise ServiceUnavailableError(f"Cannot listen on {host}:{port}: {exc.strerror}."
                                          ) from exc
