"""``mloop lineage URI``: what a thing came from and what used it."""

from __future__ import annotations

from dataclasses import asdict

import click

from mloop.cli.render import emit_json, json_option


@click.command()
@click.argument("uri")
@json_option
def lineage(uri: str, as_json: bool) -> None:
    """The lineage graph one step around URI, e.g. data:/train@2 or runs:/<run id>.

    Shows the edges into it (what it came from) and out of it (what used it).
    """
    from mloop import lineage as graph
    from mloop.data.catalog import get
    from mloop.project import current_project
    from mloop.tracking.records import resolve_run_id

    project = current_project()
    if uri.startswith("data:/") or ":/" not in uri:  # a dataset ref: name it exactly
        uri = get(project, uri).uri
    elif uri.startswith("runs:/"):
        uri = f"runs:/{resolve_run_id(project, uri[len('runs:/'):].split('/')[0])}"
    upstream, downstream = graph.neighbours(project, uri)
    if as_json:
        emit_json({"uri": uri, "from": [asdict(e) for e in upstream],
                   "to": [asdict(e) for e in downstream]})
        return
    click.echo(uri)
    for e in upstream:
        click.echo(f"  ← {e.src}  ({e.relation})")
    for e in downstream:
        click.echo(f"  → {e.dst}  ({e.relation})")
    if not upstream and not downstream:
        click.echo("  (no lineage recorded yet)")
