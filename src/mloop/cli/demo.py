"""``mloop demo``: a ready-made project to explore."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--fresh", is_flag=True, help="When DIRECTORY already holds the demo, delete "
              "its .mloop folder and make the demo again (without it, that is refused).")
def demo(directory: Path | None, fresh: bool) -> None:
    """Make a demo project in DIRECTORY (default: ./mloop-demo) and track a few models.

    Versions scikit-learn's bundled breast-cancer table as a dataset with a training and a
    held-out split, trains logistic regressions and a random forest on the training
    split, registers the best from its run, logs params, metrics, learning curves and
    artifacts as nested runs (with the dataset as the run's input), and prints the
    commands to explore them (with the path of this mloop when a new shell would not
    find it). A folder that already holds the demo is refused: see --fresh.
    """
    from mloop.cli.render import echo
    from mloop.demo import run_demo

    run_demo(directory, echo=echo, fresh=fresh)
