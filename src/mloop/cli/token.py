"""``mloop token …``: bearer tokens for mloop servers, and the user's own copies of them."""

from __future__ import annotations

from pathlib import Path

import click

from mloop.cli.login import login as login_command
from mloop.cli.login import logout as logout_command
from mloop.cli.render import echo, emit_json, json_option, table

ROLE_HELP = ("reader: metadata and reads; predictor: also inference; writer: also feedback "
             "and other writes; admin: everything.")
_FILE_HELP = "The server's token file (default: the setting serve_tokens / MLOOP_SERVE_TOKENS)."


def _token_file(path: str | None) -> Path:
    from mloop.core.settings import user_setting
    from mloop.errors import InvalidInputError

    found = user_setting("serve_tokens", path)
    if not found:
        raise InvalidInputError("Which token file? Give --file PATH (the one `mloop serve "
                                "--token-file` reads) or set MLOOP_SERVE_TOKENS.")
    return Path(found).expanduser()


@click.group(short_help="Bearer tokens: manage a server's token file, keep your "
             "own copy.")
def token() -> None:
    """Bearer tokens: `create`/`list`/`revoke` manage a server's token file (which keeps
    only digests), `login`/`logout` keep your copy of a token for a server URL."""


@token.command("create")
@click.option("--role", type=click.Choice(["reader", "predictor", "writer", "admin"]),
              required=True, help=ROLE_HELP)
@click.option("--expires", default="90d", show_default=True,
              help="Lifetime (30d, 12h, 2w …) or 'never'.")
@click.option("--name", help="A note saying who or what uses it (shown by `list`).")
@click.option("--file", "path", type=click.Path(dir_okay=False), help=_FILE_HELP)
def create(role: str, expires: str, name: str | None, path: str | None) -> None:
    """Add a token to the token file and print it, once, on stdout.

    Only its id and the SHA-256 of its secret are kept: copy the token now into the
    client's MLOOP_TOKEN or `mloop token login URL`. A running server accepts it at once.
    """
    from mloop.core.clock import format_ms, now_ms, parse_duration
    from mloop.core.tokens import create_token

    file = _token_file(path)
    until = None if expires.strip().lower() == "never" else now_ms() + parse_duration(expires)
    secret, record = create_token(file, role, expires_ms=until, name=name)
    echo(secret)
    echo(f"Token {record.id} ({record.role}, expires "
         f"{format_ms(until) if until else 'never'}) added to {file}. It is shown only "
         "this once.", err=True)


@token.command("list")
@click.option("--file", "path", type=click.Path(dir_okay=False), help=_FILE_HELP)
@json_option
def list_(path: str | None, as_json: bool) -> None:
    """The tokens of a token file: id, role, name, created, expires (never a secret)."""
    from mloop.core.clock import format_ms
    from mloop.core.tokens import read_token_file

    records = list(read_token_file(_token_file(path)).values())
    if as_json:
        emit_json([r.to_dict() | {"expired": r.expired()} for r in records])
        return
    table(["id", "role", "name", "created", "expires", "status"],
          [(r.id, r.role, r.name or "", format_ms(r.created_ms),
            format_ms(r.expires_ms) if r.expires_ms else "never",
            "expired" if r.expired() else "active") for r in records],
          empty="No tokens. Create one with `mloop token create --role writer`.")


@token.command("revoke", short_help="Remove a token from the token file; servers refuse "
               "it from then on.")
@click.argument("token_id")
@click.option("--file", "path", type=click.Path(dir_okay=False), help=_FILE_HELP)
def revoke(token_id: str, path: str | None) -> None:
    """Remove token TOKEN_ID (its 12-digit id) from the token file; servers refuse it from
    their next request."""
    from mloop.core.tokens import revoke_token

    record = revoke_token(_token_file(path), token_id)
    echo(f"Revoked token {record.id} ({record.role}).")


# `mloop token login|logout` are the same commands as `mloop login|logout`
token.add_command(login_command, "login")
token.add_command(logout_command, "logout")
