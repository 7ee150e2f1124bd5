"""``mloop remote …``: where `mloop data push/pull` send and fetch data."""

from __future__ import annotations

import click

from mloop.cli.render import echo, emit_json, json_option, table


@click.group()
def remote() -> None:
    """Remotes: object stores (any fsspec URL) to share data versions through."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
def add(name: str, url: str) -> None:
    """Register remote NAME at URL (s3://bucket/prefix, file:///path, …); re-points it if known."""
    from mloop.data.remotes import add_remote
    from mloop.project import current_project

    r = add_remote(current_project(), name, url)
    echo(f"Remote {r.name} → {r.to_dict()['url']}")


@remote.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Known remotes (passwords in URLs are hidden)."""
    from mloop.data.remotes import list_remotes
    from mloop.project import current_project

    remotes = [r.to_dict() for r in list_remotes(current_project())]
    if as_json:
        emit_json(remotes)
        return
    table(["name", "url"], [(r["name"], r["url"]) for r in remotes],
          empty="No remotes. Add one with `mloop remote add origin URL`.")


@remote.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Forget remote NAME (its data stays where it is)."""
    from mloop.data.remotes import remove_remote
    from mloop.project import current_project

    remove_remote(current_project(), name)
    echo(f"Removed remote {name}.")
