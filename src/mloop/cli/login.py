"""``mloop login URL`` / ``mloop logout URL``: keep your token for a server.

The token is read from the terminal without echo (or one line of stdin when it is piped),
never from the command line, where other users (``ps``) and the shell's history would
see it; it is written to the credentials file (:mod:`mloop.core.credentials`, mode 0600).
"""

from __future__ import annotations

import sys

import click

from mloop.cli.render import echo


def read_token(prompt: str) -> str:
    """The token typed at the terminal (no echo) or the first line of piped stdin."""
    import getpass

    if sys.stdin.isatty():
        return getpass.getpass(prompt, stream=sys.stderr)
    return sys.stdin.readline()


@click.command(short_help="Keep your token for an mloop server (read from stdin, never "
               "argv).", context_settings={"allow_extra_args": True})
@click.argument("url")
@click.option("--no-check", is_flag=True,
              help="Do not ask the server whether it accepts the token.")
@click.pass_context
def login(ctx: click.Context, url: str, no_check: bool) -> None:
    """Keep your token for the server at URL in your credentials file (mode 0600).

    Example: `mloop login https://mloop.example.com` (then paste the token), or
    `mloop login http://10.0.0.5:5000 < token.txt`. The token is read without echo from
    the terminal, or from stdin when it is piped: never from the command line. Unless
    --no-check, the server is asked who the token is (GET /api/v1/whoami); a token it
    refuses is not saved, and an unreachable server is reported and the token saved.
    MLOOP_TOKEN, when set, wins over the saved token.
    """
    from mloop.core.client import ServerClient, normalize_url
    from mloop.core.credentials import set_credentials
    from mloop.core.tokens import parse_token
    from mloop.errors import InvalidInputError, NotFoundError, ServiceUnavailableError

    if ctx.args:  # click would echo the extra argument, which is likely the token
        raise InvalidInputError(
            "mloop login reads the token from stdin (paste it at the prompt, or pipe it), "
            "never from the command line, where `ps` and your shell history keep it. If "
            "you typed a token there, ask an admin to revoke it and make a new one.")
    key = normalize_url(url)
    text = read_token(f"Token for {key}: ").strip()
    parse_token(text)  # a typo is caught now, not at the first refused request
    if not no_check:
        try:
            who = ServerClient(key, token=text, timeout=10).get("/api/v1/whoami")
        except (ServiceUnavailableError, NotFoundError) as exc:
            echo(f"Could not check the token with the server ({exc.message}); saving it "
                 "anyway.", err=True, fg="yellow")
        else:
            if isinstance(who, dict) and who.get("name"):
                echo(f"The server knows this token as {who['name']} ({who.get('role')}).",
                     err=True)
    saved = set_credentials("servers", key, {"token": text})
    echo(f"Saved the token for {key} in {saved}.")


@click.command(short_help="Forget the token kept for an mloop server.")
@click.argument("url")
def logout(url: str) -> None:
    """Forget the token kept for the server at URL.

    Example: `mloop logout https://mloop.example.com`. It stays valid on the server: ask
    an admin to revoke it (`mloop server token revoke NAME`) if it may have leaked.
    """
    from mloop.core.client import normalize_url
    from mloop.core.credentials import get_credentials, set_credentials

    key = normalize_url(url)
    if not get_credentials("servers", key):
        echo(f"No token was kept for {key}.")
        return
    set_credentials("servers", key, None)
    echo(f"Forgot the token for {key}.")
