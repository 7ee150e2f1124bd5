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
    safe: it keeps your config and upgrades the store's schema if needed. In a clone of
    a repository that holds .mloop/config.toml, it makes only the local state.
    """
    from mloop.core.redact import redact
    from mloop.core.settings import CONFIG_FILE, PROJECT_DIR
    from mloop.project import Project

    had_config = (path / PROJECT_DIR / CONFIG_FILE).is_file()
    project = Project.init(path, force=force)
    echo(f"Initialised mloop project in {project.root}")
    if had_config and not force:
        echo(f"  kept the existing {PROJECT_DIR}/{CONFIG_FILE} (remotes and settings "
             "shared through git); made the local state only")
    echo(f"  metadata store: {redact(project.settings.store_uri)}")
    echo(f"  object store:   {redact(project.settings.objects_uri)}")
    echo("Next: log a run from Python with `mloop.start_run()`, "
         "then `mloop runs list`.")
