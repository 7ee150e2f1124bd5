"""``mloop experiments …``: list the project's experiments."""

from __future__ import annotations

import click

from mloop.cli.render import emit_json, json_option, table


@click.group()
def experiments() -> None:
    """Experiments: named groups of runs."""


@experiments.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List experiments with their number of runs."""
    from mloop.core.clock import format_ms
    from mloop.project import current_project
    from mloop.tracking.experiments import list_experiments

    exps = list_experiments(current_project())
    if as_json:
        emit_json([e.to_dict() for e in exps])
        return
    table(["name", "runs", "created", "id"],
          [(e.name, e.run_count, format_ms(e.created_at), e.id) for e in exps],
          empty="No experiments yet. Start a run with mloop.start_run(experiment='name').")
