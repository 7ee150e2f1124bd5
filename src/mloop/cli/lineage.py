"""``mloop lineage URI``: what a thing came from and what used it."""

from __future__ import annotations

from dataclasses import asdict

import click

from mloop.cli.render import echo, emit_json, json_option


@click.command(short_help="The lineage graph around a dataset version, run or model.")
@click.argument("uri")
@click.option("-d", "--depth", type=click.IntRange(1, 20), default=3, show_default=True,
              help="How many steps to follow in each direction.")
@json_option
def lineage(uri: str, depth: int, as_json: bool) -> None:
    """The lineage graph around URI: data:/train@2, runs:/<run id>, models:/churn/1,
    models:/churn@champion or deployments:/churn/2.

    Upstream (← what it came from: data → run → model) and downstream (→ what used it),
    indented by the number of steps; each line says how it relates ("produced by runs:/…").
    Ids show their last 12 characters, as tables do (--json has them whole). Then the
    live traffic it reached: the deployment revisions that served a model version
    downstream, and how many rows each answered.
    """
    from mloop import lineage as graph
    from mloop.project import current_project

    project = current_project()
    uri = graph.resolve(project, uri)
    upstream, downstream = graph.trace(project, uri, depth)
    traffic = graph.live_traffic(project, uri, depth)
    if as_json:
        emit_json({"uri": uri,
                   "from": [dict(asdict(e), hop=hop) for hop, e in upstream],
                   "to": [dict(asdict(e), hop=hop) for hop, e in downstream],
                   "traffic": [t.to_dict() for t in traffic]})
        return
    echo(graph.short_uri(uri))
    for hop, e in upstream:
        echo(f"{'  ' * hop}← {graph.describe(e, upstream=True)}")
    for hop, e in downstream:
        echo(f"{'  ' * hop}→ {graph.describe(e, upstream=False)}")
    if not upstream and not downstream:
        echo("  (no lineage recorded yet)")
    if traffic:
        from mloop.core.humanize import plural

        echo("Live traffic reached:")
        for t in traffic:
            echo(f"  deployments:/{t.deployment}/{t.revision}  {t.model}  "
                 f"{plural(t.rows, 'row')}")
