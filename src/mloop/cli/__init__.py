"""The ``mloop`` command line. Thin: parse, call one domain function, render.

Every command group lives in its own module (``cli/runs.py`` ↔ ``mloop runs …``).
Errors that mloop raises on purpose are printed without a traceback and end the process
with the error's exit code.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import click

from mloop._version import __version__
from mloop.core.progress import QUIET_ENV
from mloop.errors import MloopError

_QUIET_HELP = "Draw no progress bars (also MLOOP_QUIET=1)."
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# Each command's module is imported only when that command runs (or for --help), so a
# command pays for its own imports and no one else's.
COMMANDS = {
    "init": "mloop.cli.init:init",
    "demo": "mloop.cli.demo:demo",
    "experiments": "mloop.cli.experiments:experiments",
    "runs": "mloop.cli.runs:runs",
    "data": "mloop.cli.data:data",
    "remote": "mloop.cli.remote:remote",
    "models": "mloop.cli.models:models",
    "test": "mloop.cli.evaluate:test",
    "evaluate": "mloop.cli.evaluate:evaluate_cmd",
    "serve": "mloop.cli.serve:serve",
    "batch": "mloop.cli.batch:batch",
    "worker": "mloop.cli.worker:worker",
    "jobs": "mloop.cli.worker:jobs",
    "monitor": "mloop.cli.monitor:monitor",
    "pipeline": "mloop.cli.pipeline:pipeline",
    "automate": "mloop.cli.automate:automate",
    "deploy": "mloop.cli.deploy:deploy",
    "lineage": "mloop.cli.lineage:lineage",
    "token": "mloop.cli.token:token",
    "ui": "mloop.cli.ui:ui",
    "server": "mloop.cli.server:server",
    "login": "mloop.cli.login:login",
    "logout": "mloop.cli.login:logout",
    "fsck": "mloop.cli.fsck:fsck",
    "fl": "mloop.cli.fl:fl",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        _share_options(command)
        return command


# words that end with a full stop without ending a sentence
_ABBREVIATIONS = frozenset({"e.g.", "i.e.", "etc.", "vs.", "al.", "cf."})


def first_sentence(text: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line: it ends at a full
    stop (not one of "e.g.", "i.e.", "et al.") outside parentheses, else with the paragraph."""
    words = text.strip().split("\n\n")[0].split()
    if words and words[0] == "\b":
        words = words[1:]
    depth = 0
    for i, word in enumerate(words):
        depth += word.count("(") + word.count("[") - word.count(")") - word.count("]")
        if (depth <= 0 and word.endswith((".", "!", "?"))
                and word.lower().lstrip("(") not in _ABBREVIATIONS):
            return " ".join(words[:i + 1])
    return " ".join(words)


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        os.environ[QUIET_ENV] = "1"


def _share_options(command: click.Command) -> None:
    """What every command has, given once here for all of them:

    - a whole first sentence as its summary in ``--help`` listings (click would cut it to
      the column left beside the name: "Name version REF with TAG (e.g."); a command
      that sets ``short_help`` keeps its own;
    - ``-q/--quiet`` anywhere on the line (``mloop data add big.csv -q``), not only
      before the subcommand.
    """
    if command.short_help is None and command.help:
        command.short_help = first_sentence(command.help)
    if not any(p.name == "quiet" for p in command.params):
        command.params.append(click.Option(["-q", "--quiet"], is_flag=True,
                                           expose_value=False, callback=_quiet,
                                           help=_QUIET_HELP))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _share_options(sub)


@click.group(cls=_LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mloop")
@click.option("-q", "--quiet", is_flag=True, help=_QUIET_HELP)
def cli(quiet: bool) -> None:
    """mloop: one tool around the whole ML loop. This release: projects, experiment
    tracking (runs, params, metrics, artifacts, search, reproducibility), data versions
    (chunk-level dedup, diffs, remotes, validation), the model registry (versions,
    aliases, approvals, model cards, ONNX and package exports), evaluation and testing
    (metrics, fairness, robustness, data and behaviour checks, gates), serving (REST,
    precompute, asynchronous workers), monitoring (drift, live performance, alerts),
    cached pipelines, continuous training (triggers, promotion) and lineage.

    Commands work in the current folder's project (found upwards, as git does).
    Start with `mloop init`, or try everything at once with `mloop demo`.
    """
    if quiet:
        os.environ[QUIET_ENV] = "1"


DEBUG_ENV = "MLOOP_DEBUG"


def _fail(message: str, code: int) -> NoReturn:
    """One red line on stderr (secrets hidden, control characters escaped), then exit
    with ``code``."""
    from mloop.core.printable import printable
    from mloop.core.redact import redact

    click.secho(f"Error: {printable(redact(message))}", fg="red", err=True)
    sys.exit(code)


def _unexpected(exc: BaseException) -> NoReturn:
    """An exception mloop did not raise on purpose: one line, exit 70 (69 for a full disk
    or a port in use). MLOOP_DEBUG=1 prints the traceback as well."""
    import errno

    from mloop.errors import DiskFullError, InternalError, ServiceUnavailableError

    if os.environ.get(DEBUG_ENV) == "1":
        import traceback

        from mloop.core.redact import redact

        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(f"No space left on the device{where}. Free some space (`mloop data gc` "
              "removes unreferenced objects) and run the command again.",
              DiskFullError.exit_code)
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        _fail(f"{exc.strerror}: another process listens on that address; choose another "
              "--port or stop it.", ServiceUnavailableError.exit_code)
    if isinstance(exc, OSError) and exc.filename is not None and exc.errno in (
            errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
            errno.ENAMETOOLONG, errno.ELOOP, errno.EROFS):
        # a path that cannot be read or written (often one the user gave): not a bug
        where = exc.filename if exc.filename2 is None else f"{exc.filename} → {exc.filename2}"
        _fail(f"{exc.strerror}: {where}. Check the path and its permissions.",
              ServiceUnavailableError.exit_code if exc.errno == errno.EROFS else 2)
    if isinstance(exc, RecursionError):
        _fail("The input is nested too deeply to process; simplify it.", 2)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    _fail(f"Internal error: {type(exc).__name__}{': ' + detail if detail else ''}. This is "
          f"a bug in mloop or a library it uses; run again with {DEBUG_ENV}=1 to see the "
          "traceback, and please report it.", InternalError.exit_code)


def _log_to_stderr() -> None:
    """mloop's warnings (an alert opened, a batch dropped) on stderr as they would print
    anyway, but with secrets hidden and control characters from user text escaped."""
    import logging

    from mloop.core.printable import printable
    from mloop.core.redact import get_logger, redact

    class _Safe(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:  # the stderr of the moment (tests swap it), never one kept from before
                sys.stderr.write(printable(redact(self.format(record))) + "\n")
            except Exception:
                self.handleError(record)

    logger = get_logger("mloop")
    if not any(type(h).__name__ == "_Safe" for h in logger.handlers):
        logger.addHandler(_Safe(logging.WARNING))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mloop`` script. Exit codes: see :data:`mloop.errors.EXIT_CODES`."""
    _log_to_stderr()
    try:
        # without standalone mode, a ctx.exit(code) comes back as the return value
        code = cli.main(args=argv, prog_name="mloop", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        from mloop.core.printable import printable

        exc.message = printable(exc.message)  # type: ignore[misc]  # it quotes user input
        exc.show()
        sys.exit(exc.exit_code)
    except MloopError as exc:
        _fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:
        _unexpected(exc)
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)
