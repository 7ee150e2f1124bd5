"""The lineage explorer: start from any node (a data version, run, model version,
pipeline run, deployment, alert) and expand up- and downstream.

The graph is :func:`mloop.lineage.trace` to ``depth`` steps each way; a click on a node
centres the explorer on it (its own page is one link away).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from mloop import lineage as graph
from mloop.repositories.lineage import Edge
from mloop.server.ui.app import View, project_of
from mloop.server.ui.charts import script_json
from mloop.server.ui.links import page_of
from mloop.server.ui.render import Column, Context, Table, page

router = APIRouter()
MAX_DEPTH = 10
KINDS = {"data": "data", "runs": "run", "models": "model", "deployments": "deployment",
         "alerts": "alert", "pipelines": "pipeline"}


def _node(ctx: Context, uri: str, focus: bool = False) -> dict[str, Any]:
    kind = KINDS.get(uri.partition(":/")[0], "other")
    return {"id": uri, "label": graph.short_uri(uri), "kind": kind + (" focus" if focus else ""),
            "href": ctx.url("lineage", uri=uri, depth=ctx.request.query_params.get("depth"))}


@router.get("/lineage")
def lineage(uri: str = "", depth: int = 2, ctx: Context = View) -> Response:
    depth = max(1, min(depth, MAX_DEPTH))
    if not uri:
        return page(ctx, "lineage.html", title="Lineage", uri="", depth=depth, graph=None,
                    resolved="", href=None)
    project = project_of(ctx.request)
    resolved = graph.resolve(project, uri.strip())
    upstream, downstream = graph.trace(project, resolved, depth)
    edges: dict[tuple[str, str, str], tuple[Edge, str, int]] = {}
    for direction, found in (("upstream", upstream), ("downstream", downstream)):
        for hop, e in found:
            edges.setdefault((e.src, e.dst, e.relation), (e, direction, hop))
    nodes = {resolved: _node(ctx, resolved, focus=True)}
    for src, dst, _ in edges:
        for uri_ in (src, dst):
            nodes.setdefault(uri_, _node(ctx, uri_))
    rows = [_row(ctx, e, direction, hop) for e, direction, hop in edges.values()]
    rows.sort(key=lambda r: (r["direction"] != "upstream", r["hop"]))
    table = Table("edges", [
        Column("direction", "Direction"), Column("hop", "Steps away", "num"),
        Column("src", "From", "link"), Column("relation", "Relation"),
        Column("dst", "To", "link")], rows, empty="No lineage recorded around it yet.")
    traffic = graph.live_traffic(project, resolved, depth + 3)
    served = Table("traffic", [
        Column("deployment", "Deployment", "link"), Column("revision", "Revision", "num"),
        Column("model", "Model version", "link"), Column("rows", "Rows answered", "num")],
        [{"deployment": t.deployment, "deployment_href": ctx.url("deployments", t.deployment),
          "revision": t.revision, "model": t.model, "model_href": page_of(t.model),
          "rows": t.rows} for t in traffic],
        empty="No live traffic reached it.")
    data = {"nodes": list(nodes.values()),
            "edges": [{"source": s, "target": d, "label": r} for s, d, r in edges],
            "roots": [n for n in nodes if all(d != n for _, d, _ in edges)]}
    return page(ctx, "lineage.html", title=f"Lineage of {graph.short_uri(resolved)}",
                tables=[table, served], scripts=("graph",), uri=uri, resolved=resolved,
                depth=depth, graph=script_json(data), href=page_of(resolved),
                max_depth=MAX_DEPTH)


def _row(ctx: Context, e: Edge, direction: str, hop: int) -> dict[str, Any]:
    return {"direction": direction, "hop": hop, "src": graph.short_uri(e.src),
            "src_href": ctx.url("lineage", uri=e.src), "relation": e.relation,
            "dst": graph.short_uri(e.dst), "dst_href": ctx.url("lineage", uri=e.dst)}
