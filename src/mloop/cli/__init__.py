"""The ``mloop`` command line. Thin: parse, call one domain function, render.

Every command group lives in its own module (``cli/runs.py`` ↔ ``mloop runs …``).
Errors that mloop raises on purpose are printed without a traceback and end the process
with the error's exit code.
"""

from __future__ import annotations

import os
import sys

import click

from mloop._version import __version__
from mloop.cli.data import data
from mloop.cli.demo import demo
from mloop.cli.experiments import experiments
from mloop.cli.init import init
from mloop.cli.lineage import lineage
from mloop.cli.remote import remote
from mloop.cli.runs import runs
from mloop.core.progress import QUIET_ENV
from mloop.errors import MloopError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mloop")
@click.option("-q", "--quiet", is_flag=True, help="Draw no progress bars (also MLOOP_QUIET=1).")
def cli(quiet: bool) -> None:
    """mloop: one tool around the whole ML loop. This release: projects and experiment
    tracking (runs, params, metrics, artifacts, search, reproducibility).

    Commands work in the current folder's project (found upwards, as git does).
    Start with `mloop init`, or try everything at once with `mloop demo`.
    """
    if quiet:
        os.environ[QUIET_ENV] = "1"


cli.add_command(init)
cli.add_command(experiments)
cli.add_command(runs)
cli.add_command(demo)
cli.add_command(data)
cli.add_command(remote)
cli.add_command(lineage)


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
