"""The ``mloop`` command line. Thin: parse, call one domain function, render.

Every command group lives in its own module (``cli/runs.py`` ↔ ``mloop runs …``).
Errors that mloop raises on purpose are printed without a traceback and end the process
with the error's exit code.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from mloop._version import __version__
from mloop.core.progress import QUIET_ENV
from mloop.errors import MloopError

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
    "lineage": "mloop.cli.lineage:lineage",
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
        return command


@click.group(cls=_LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mloop")
@click.option("-q", "--quiet", is_flag=True, help="Draw no progress bars (also MLOOP_QUIET=1).")
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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mloop`` script."""
    try:
        cli.main(args=argv, prog_name="mloop", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MloopError as exc:
        click.secho(f"Error: {exc.message}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(0)
