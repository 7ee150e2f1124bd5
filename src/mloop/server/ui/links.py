"""Where a lineage node lives in the UI: its own page, or the lineage explorer around it.

A node is an mloop URI (``data:/train@2``, ``runs:/<id>``, ``models:/churn/3``,
``deployments:/churn``); the pages that show lineage link each one with :func:`href`.
"""

from __future__ import annotations

import urllib.parse

from mloop.lineage import AGAINST_FLOW, PHRASES, Edge, short_uri
from mloop.server.ui.render import PREFIX, quote


def explore(uri: str) -> str:
    """The lineage explorer centred on ``uri``."""
    return f"{PREFIX}/lineage?{urllib.parse.urlencode({'uri': uri})}"


def href(uri: str) -> str:
    """The page of the node ``uri``; the lineage explorer for kinds without one."""
    scheme, sep, rest = uri.partition(":/")
    parts = rest.split("/")
    if not sep or not rest:
        return explore(uri)
    if scheme == "runs":
        return f"{PREFIX}/runs/{quote(parts[0])}"
    if scheme == "data" and "@" in rest:
        name, _, ref = rest.partition("@")
        return f"{PREFIX}/data/{quote(name)}/{quote(ref)}"
    if scheme == "models":
        if len(parts) == 2:
            return f"{PREFIX}/models/{quote(parts[0])}/{quote(parts[1])}"
        if "@" in rest:
            name, _, alias = rest.partition("@")
            return f"{PREFIX}/models/{quote(name)}/{quote('@' + alias)}"
    if scheme == "deployments":
        return f"{PREFIX}/deployments/{quote(parts[0])}"
    return explore(uri)


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
