"""Facts about this process that records keep: who ran it and with which command."""

from __future__ import annotations

import getpass
import os
import shlex
import sys

from mloop.core.redact import redact_argv


def command_line() -> str:
    """The command that started this process, safe to record: values of secret flags and
    the secrets of URLs and pairs are hidden (:func:`mloop.core.redact.redact_argv`)."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    return shlex.join(redact_argv(argv))


def current_user() -> str | None:
    """Who is acting: the caller a team server is serving, else the operating-system user."""
    from mloop.core.identity import acting

    identity = acting()
    if identity is not None:
        return identity.name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return os.environ.get("USER")
