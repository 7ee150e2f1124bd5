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
@click.option("--credential", "options", multiple=True, metavar="OPTION[=VALUE]",
              help="A storage option for the driver (key, secret, token, endpoint_url, …), "
              "saved in your credentials file, never in the project; without =VALUE it is "
              "asked for without echo. Repeat for several.")
@click.option("--default", "default", is_flag=True,
              help="Push and pull use this remote when none is named.")
def add(name: str, url: str, options: tuple[str, ...], default: bool) -> None:
    """Register remote NAME at URL (s3://bucket/prefix, file:///path, …); re-points it if known.

    The remote is written to .mloop/config.toml as [remotes.NAME]: commit that file and
    every clone knows it. Credentials never go there: a password in URL
    (s3://KEY:SECRET@bucket/prefix) and --credential values are saved in
    ~/.config/mloop/credentials.toml (mode 0600). They can also come from
    MLOOP_REMOTE_<NAME>_<OPTION> variables or the driver's own (AWS_ACCESS_KEY_ID, …).
    """
    from mloop.core.credentials import credentials_path
    from mloop.data.remotes import add_remote, option_value, split_credentials
    from mloop.errors import InvalidInputError
    from mloop.project import current_project

    given: dict[str, object] = {}
    for item in options:
        key, eq, value = item.partition("=")
        if not key.strip():
            raise InvalidInputError(f"--credential wants OPTION=VALUE (or OPTION alone to be "
                                    f"asked), not {item.partition('=')[0]!r}=….")
        given[key.strip()] = option_value(value) if eq else click.prompt(
            f"{key.strip()} for remote {name}", hide_input=True)
    saved = sorted({*split_credentials(url)[1], *given})
    r = add_remote(current_project(), name, url, given, default=default)
    echo(f"Remote {r.name} → {r.to_dict()['url']}" + (" (default)" if r.default else ""))
    if saved:
        echo(f"Credentials ({', '.join(saved)}) saved in {credentials_path()}, not in "
             "the project.")


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
    table(["name", "url", "default", "credentials"],
          [(r["name"], r["url"], "yes" if r["default"] else "-",
            ", ".join(r["credentials"]) or "-") for r in remotes],
          empty="No remotes. Add one with `mloop remote add origin URL`.")


@remote.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Forget remote NAME (its data stays where it is)."""
    from mloop.data.remotes import remove_remote
    from mloop.project import current_project

    remove_remote(current_project(), name)
    echo(f"Removed remote {name}.")
