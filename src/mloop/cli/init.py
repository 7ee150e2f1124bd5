"""``mloop init``: create a project in a folder."""

from __future__ import annotations

from pathlib import Path

import click

from mloop.cli.render import echo


@click.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Rewrite .mloop/config.toml with the defaults.")
def init(path: Path, force: bool) -> None:
    """Create an mloop project in PATH (default: the current folder).

    Makes .mloop/ with config.toml and the local metadata store. Running it again is
    safe: it keeps your config and upgrades the store's schema if needed.
    """
    from mloop.core.redact import redact
    from mloop.project import Project

    project = Project.init(path, force=force)
    echo(f"Initialised mloop project in {project.root}")
    echo(f"  metadata store: {redact(project.settings.store_uri)}")
    echo(f"  object store:   {redact(project.settings.objects_uri)}")
    echo("Next: log a run from Python with `mloop.start_run()`, "
         "then `mloop runs list`.")
