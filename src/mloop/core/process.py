"""Facts about this process that records keep: who ran it and with which command."""

from __future__ import annotations

import getpass
import os
import re
import shlex
import sys

_SECRET = re.compile(r"(pass(word)?|token|secret|api[-_]?key|credential)", re.IGNORECASE)


def command_line() -> str:
    """The command that started this process, with values of secret-looking flags hidden."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        if _SECRET.search(name) and name.startswith("-") and not eq:
            out.append(arg)
            hide_next = True
        elif eq and _SECRET.search(name):
            out.append(f"{name}=***")
        else:
            out.append(arg)
    return shlex.join(out)


def current_user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return os.environ.get("USER")
