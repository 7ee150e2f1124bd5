"""``mloop server``: the team server (the whole API over HTTP, tokens, the mlflow client)."""

from __future__ import annotations

import click

from mloop.cli.render import echo


@click.group(invoke_without_command=True)
@click.option("--store", "store_uri", metavar="URI",
              help="The metadata store: postgresql+psycopg://user@host/db for a team, or "
              "sqlite:///path/mloop.db on one box. Default: the project's store setting.")
@click.option("--objects", "objects_uri", metavar="URI",
              help="Where blobs live: s3://bucket/prefix or a folder. Default: the "
              "project's objects setting.")
@click.option("--root", type=click.Path(file_okay=False), default=".", show_default=True,
              help="The server's project folder (created when missing): its settings, "
              "session secret and the parts of unfinished uploads.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True,
              help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: "
              "serve HTTPS (with --tls-key).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of "
              "--tls-cert.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="HOST",
              help="Host names browsers may use for this server (repeatable); loopback "
              "names and --host always are.")
@click.option("--insecure-no-auth", is_flag=True, help="Let anyone who reaches the port "
              "do anything, without a token (a warning is printed off loopback).")
@click.pass_context
def server(ctx: click.Context, store_uri: str | None, objects_uri: str | None, root: str,
           host: str, port: int, workers: int, tls_cert: str | None, tls_key: str | None,
           allowed_hosts: tuple[str, ...], insecure_no_auth: bool) -> None:
    """Run the team server (the whole API over HTTP, behind tokens) until Ctrl-C.

    Every run, dataset, model, evaluation and deployment of one store, for a team, with
    roles, an audit log and the mlflow client working unchanged.

    \b
    Examples:
      mloop server --store postgresql+psycopg://mloop@db/mloop \\
                   --objects s3://bucket/mloop --host 0.0.0.0 --workers 4
      mloop server --store sqlite:///srv/mloop.db --objects /srv/objects
      mloop server token create --name admin --role admin   # the first token, once
    Clients: MLOOP_STORE_URI=http://host:5000 (or MLOOP_TRACKING_URI) and `mloop login
    http://host:5000`; the mlflow client: mlflow.set_tracking_uri("http://host:5000").
    The API is described at /openapi.json (browse it at /api/docs); the web UI is at /ui
    (log in with a token at /login).
    """
    ctx.ensure_object(dict)
    ctx.obj.update(store_uri=store_uri, root=root)
    if ctx.invoked_subcommand is not None:
        return
    from mloop.server.main import ServerConfig, run

    config = ServerConfig(root=root, store_uri=store_uri, objects_uri=objects_uri,
                          host=host, port=port, workers=workers,
                          insecure_no_auth=insecure_no_auth, allowed_hosts=allowed_hosts,
                          tls_cert=tls_cert, tls_key=tls_key)
    scheme = config.scheme
    shown = f"[{host}]" if ":" in host else host
    echo(f"mloop server on {scheme}://{shown}:{port} (API at /api/v1, mlflow at "
         "/api/2.0/mlflow, web UI at /ui); Ctrl-C stops it")
    run(config)


def _admin_commands() -> None:
    from mloop.cli.server_admin import audit, token

    server.add_command(token)
    server.add_command(audit)


_admin_commands()
