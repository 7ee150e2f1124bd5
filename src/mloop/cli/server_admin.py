"""``mloop server token …`` and ``mloop server audit``: the team server's tokens and audit
log, managed with direct access to its store (the lead's ``mloop server`` group adds the
click objects :data:`token` and :data:`audit`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mloop.cli.render import echo, emit_json, json_option, table
from mloop.core.identity import ROLES

if TYPE_CHECKING:
    from mloop.project import Project

ROLE_HELP = ("reader: read everything; predictor: also inference; writer: also log runs, "
             "data, register models; approver: also approve versions, move protected "
             "aliases, deploy; admin: also tokens and settings.")
_STORE_HELP = ("The server's metadata store (SQLAlchemy URL; default: this project's store, "
               "or MLOOP_STORE_URI). Prefer the variable for a URL with a password.")
store_option = click.option("--store", "store", metavar="URI", help=_STORE_HELP)


def open_project(store: str | None) -> Project:
    """The project whose store the server uses: the current one (its store replaced by
    ``store`` when given), or, outside a project, just the store at ``store``."""
    from pathlib import Path

    from mloop.errors import ProjectNotFoundError
    from mloop.project import Project

    overrides = {"store_uri": store} if store else {}
    try:
        return Project.open(**overrides)
    except ProjectNotFoundError:
        if not store:
            raise ProjectNotFoundError(
                "No mloop project here: run this in the server's project folder or give "
                "the server's store with --store URI (or MLOOP_STORE_URI).") from None
        return Project(Path.cwd(), **overrides)


@click.group(short_help="The team server's API tokens: create, list, revoke.")
def token() -> None:
    """The team server's API tokens, kept in its store (id, role, SHA-256 of the secret;
    never the secret). Run on the server's machine, with access to its store:

    \b
        mloop server token create --role admin            # the first one, printed once
        mloop server token create --name alice --role writer --expires 90d
        mloop server token list
        mloop server token revoke alice
    """


@token.command("create")
@click.option("--name", help="Who or what uses it (letters, digits, _ . @ + -); shown in "
              "listings and the audit log. Default: your user name.")
@click.option("--role", type=click.Choice(ROLES), required=True, help=ROLE_HELP)
@click.option("--expires", default="90d", show_default=True,
              help="Lifetime (30d, 12h, 2w …) or 'never'.")
@click.option("--rotate", is_flag=True, help="Revoke the active token of the same name "
              "(otherwise a second active token with one name is refused).")
@store_option
def create(name: str | None, role: str, expires: str, rotate: bool, store: str | None) -> None:
    """Create a token and print it, once, on stdout.

    Example: `mloop server token create --name alice --role writer --expires 90d`.
    The store keeps only its id and the SHA-256 of its secret: hand it to its user now
    (they run `mloop login URL` and paste it). A running server accepts it at once.
    """
    from mloop.core.clock import format_ms, now_ms, parse_duration
    from mloop.core.process import current_user
    from mloop.server import tokens

    until = None if expires.strip().lower() == "never" else now_ms() + parse_duration(expires)
    project = open_project(store)
    try:
        secret, row, rotated = tokens.create(project, name or current_user() or "admin",
                                             role, expires_ms=until, rotate=rotate)
    finally:
        project.close()
    echo(secret)
    for old in rotated:
        echo(f"Revoked the previous token {old.id} of {old.name}.", err=True)
    echo(f"Token {row.id} for {row.name} ({row.role}, expires "
         f"{format_ms(until) if until else 'never'}). It is shown only this once: keep it "
         "somewhere safe (a password manager); it cannot be recovered, only replaced.",
         err=True, fg="yellow")


@token.command("list")
@store_option
@json_option
def list_(store: str | None, as_json: bool) -> None:
    """Every token: id, name, role, status (active, expired, revoked), dates; never a secret.

    Example: `mloop server token list --json`.
    """
    from mloop.core.clock import format_ms
    from mloop.server import tokens

    project = open_project(store)
    try:
        rows = tokens.list_tokens(project)
    finally:
        project.close()
    if as_json:
        emit_json([r.to_dict() for r in rows])
        return
    table(["id", "name", "role", "status", "created", "expires", "revoked", "created by"],
          [(r.id, r.name, r.role, str(r.status()), format_ms(r.created_ms),
            format_ms(r.expires_ms) if r.expires_ms else "never",
            format_ms(r.revoked_ms) if r.revoked_ms else "", r.created_by) for r in rows],
          empty="No tokens. Create the first with `mloop server token create --role admin`.")


@token.command("revoke")
@click.argument("name_or_id")
@store_option
def revoke(name_or_id: str, store: str | None) -> None:
    """Revoke the token with this id, or the active token with this name.

    Example: `mloop server token revoke alice`. Servers refuse it within a second or two
    (they cache token rows that long), and end the browser sessions made with it.
    """
    from mloop.server import tokens

    project = open_project(store)
    try:
        rows = tokens.revoke(project, name_or_id)
    finally:
        project.close()
    for row in rows:
        echo(f"Revoked token {row.id} ({row.name}, {row.role}).")


@click.command("audit")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="How many entries, newest first.")
@click.option("--actor", help="Only this token name's entries.")
@click.option("--since", help="Only entries this recent (1h, 7d …).")
@store_option
@json_option
def audit(limit: int, actor: str | None, since: str | None, store: str | None,
          as_json: bool) -> None:
    """Who wrote what through the server, newest first.

    Each entry: time, actor (the token's name), token id, role, action, target and the
    HTTP status.

    Example: `mloop server audit --actor alice --limit 20`.
    """
    from mloop import repositories
    from mloop.core.clock import format_ms, now_ms, parse_duration

    since_ms = now_ms() - parse_duration(since) if since else None
    project = open_project(store)
    try:
        entries = repositories.backend(project).audit.list(limit=limit, actor=actor,
                                                           since_ms=since_ms)
    finally:
        project.close()
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    table(["time", "actor", "token", "role", "action", "target", "status"],
          [(format_ms(e.at_ms), e.actor, e.token_id or "", e.role, e.action, e.target or "",
            e.status) for e in entries],
          empty="No audit entries yet: the server records every write.")
