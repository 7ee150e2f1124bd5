"""``mloop ui``: the web UI over this project, on this machine."""

from __future__ import annotations

import click

from mloop.cli.render import echo


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="Port on 127.0.0.1 to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              type=click.Choice(["127.0.0.1", "localhost", "::1"]),
              help="Loopback address to bind; for a team, `mloop server` serves the same "
              "UI behind tokens.")
@click.option("--open/--no-open", "open_browser", default=False,
              help="Open the UI in the default browser once it listens.")
def ui(port: int, host: str, open_browser: bool) -> None:
    """Browse this project's runs, data, models, deployments and monitoring in a browser.

    The UI listens on loopback only: you have every role, and every change (approve,
    move an alias, roll back, resolve an alert, label) still checks a CSRF token and the
    Host header. Pages have stable URLs (filters in the query string) and every table
    downloads as CSV. Ctrl-C stops it.

    \b
    Examples:
      mloop ui                      # http://127.0.0.1:5000/ui/
      mloop ui --port 8080 --open
    A team serves the same pages with `mloop server` (at /ui, after /login).
    """
    from mloop.project import Project
    from mloop.server.ui.serve import serve

    project = Project.open()
    serve(project, host=host, port=port, open_browser=open_browser, echo=echo)
