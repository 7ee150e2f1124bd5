"""Where a lineage node lives in the UI: its own page, or the lineage explorer around it.

A node is an mloop URI (``data:/train@2``, ``runs:/<id>``, ``models:/churn/3``,
``deployments:/churn``); the pages that show lineage link each one with :func:`href`.
"""

from __future__ import annotations

from mloop.core.uris import DataURI, ModelURI, PipelineURI, RunURI, parse_uri
from mloop.errors import MloopError
from mloop.lineage import AGAINST_FLOW, PHRASES, Edge, short_uri
from mloop.server.ui.render import ui_url


def explore(uri: str) -> str:
    """The lineage explorer centred on ``uri``."""
    return ui_url("lineage", uri=uri)


def page_of(uri: str) -> str | None:
    """The UI page of what ``uri`` names (a dataset or one of its versions, a run, a model
    or one of its versions, a deployment, a pipeline run); ``None`` when it has none (an
    alert, a malformed URI)."""
    scheme, _, rest = uri.partition(":/")
    if scheme == "deployments":  # lineage names revisions: deployments:/NAME/REVISION
        return ui_url("deployments", rest.partition("/")[0]) if rest else None
    try:
        node = parse_uri(uri)
    except MloopError:
        return None
    if isinstance(node, DataURI):
        return ui_url("data", node.name, node.ref or "")
    if isinstance(node, ModelURI):
        ref = node.version if node.version is not None else \
            (f"@{node.alias}" if node.alias else "")
        return ui_url("models", node.name, ref)
    if isinstance(node, RunURI):
        return ui_url("runs", node.run_id)
    if isinstance(node, PipelineURI):
        return ui_url("pipelines", node.name, node.run_id)
    return None


def href(uri: str) -> str:
    """The page of the node ``uri``; the lineage explorer for kinds without one."""
    return page_of(uri) or explore(uri)


def edge_rows(into: list[Edge], out_of: list[Edge]) -> list[dict[str, object]]:
    """One table row per lineage edge of a node (``into`` it and ``out_of`` it, as
    :func:`mloop.lineage.neighbours` gives them): the other node (linked), what it is to
    this one ("produced", "reads", "serves" …) and which way data flows."""
    rows: list[dict[str, object]] = []
    for edges, incoming in ((into, True), (out_of, False)):
        for e in edges:
            far = e.src if incoming else e.dst
            as_src, as_dst = PHRASES.get(e.relation, (e.relation, f"{e.relation} of"))
            upstream = incoming != (e.relation in AGAINST_FLOW)
            rows.append({"direction": "upstream" if upstream else "downstream",
                         "node": short_uri(far), "node_href": href(far),
                         "relation": f"{as_src if incoming else as_dst} this",
                         "created_at": e.created_at})
    return rows
