"""``mloop init``: create a project in a folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mloop.cli.render import echo

if TYPE_CHECKING:
    from mloop.project import Project


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
    if project.remote:
        echo(f"  store: the mloop server at {redact(project.settings.store_uri)} "
             f"({_whoami(project)})")
        if project.settings.source("objects_uri") != "default":
            echo(f"  object store:   {redact(project.settings.objects_uri)}")
    else:
        echo(f"  metadata store: {redact(project.settings.store_uri)}")
        echo(f"  object store:   {redact(project.settings.objects_uri)}")
    echo("Next: log a run from Python with `mloop.start_run()`, "
         "then `mloop runs list`.")


def _whoami(project: Project) -> str:
    """Who the server says this client is, or why it could not tell."""
    from mloop.errors import MloopError
    from mloop.repositories import backend
    from mloop.server.client import HttpBackend

    remote = backend(project)
    assert isinstance(remote, HttpBackend)
    try:
        who = remote.connection.request("GET", "/api/v1/whoami").json()
    except MloopError as exc:
        return f"not checked: {exc.message}"
    return f"signed in as {who.get('name')}, role {who.get('role')}"
