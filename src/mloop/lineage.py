"""The lineage graph: edges between mloop URIs, written by the operation that makes them.

``data:/train@2 --input--> runs:/<id>`` is written when a run reads a dataset version;
later stages add model versions, deployments and alerts. :func:`neighbours` walks one
step both ways; ``mloop lineage`` prints the graph around a URI, each edge as a phrase
(:func:`describe`: "produced by runs:/…", "feeds runs:/…") with ids cut to the 12
characters tables show (:func:`short_uri`).

Data modules must not import tracking (dependencies point one way), yet reading a
dataset inside a run must record the edge: tracking registers a provider of the active
run id here when it is imported, and data asks :func:`active_run_id`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mloop.core.ids import short_id
from mloop.errors import InvalidURIError, NotFoundError
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.lineage import Edge
from mloop.repositories.traffic import Served

__all__ = ["PHRASES", "Edge", "active_run_id", "add_edge", "describe", "live_traffic",
           "neighbours", "resolve", "set_active_run_provider", "short_uri", "trace"]


def _no_run() -> str | None:
    return None


_run_provider: Callable[[], str | None] = _no_run


def set_active_run_provider(provider: Callable[[], str | None]) -> None:
    """Called by tracking: how to learn the id of the active run."""
    global _run_provider
    _run_provider = provider


def active_run_id() -> str | None:
    """The id of this process's active run, if tracking has one."""
    return _run_provider()


def add_edge(project: Project, src: str, dst: str, relation: str) -> None:
    """Record ``src --relation--> dst`` (idempotent)."""
    backend(project).lineage.add(src, dst, relation)


def neighbours(project: Project, uri: str) -> tuple[list[Edge], list[Edge]]:
    """(edges into ``uri``, edges out of it), oldest first."""
    edges = backend(project).lineage.touching(uri)
    return [e for e in edges if e.dst == uri], [e for e in edges if e.src == uri]


def trace(project: Project, uri: str, depth: int = 3) -> tuple[list[tuple[int, Edge]],
                                                                list[tuple[int, Edge]]]:
    """Edges up to ``depth`` steps upstream and downstream of ``uri``, as (hop, edge).

    ``models:/churn/1`` upstream: the run that produced it (hop 1), the dataset versions
    that run read (hop 2), the runs that wrote those (hop 3) …
    """
    def walk(upstream: bool) -> list[tuple[int, Edge]]:
        out: list[tuple[int, Edge]] = []
        seen = {uri}
        frontier = [uri]
        for hop in range(1, depth + 1):
            nxt = []
            for node in frontier:
                for e, other in _steps(project, node, upstream):
                    out.append((hop, e))
                    if other not in seen:
                        seen.add(other)
                        nxt.append(other)
            if not nxt:
                break
            frontier = nxt
        return out

    return walk(True), walk(False)


def resolve(project: Project, uri: str) -> str:
    """The exact URI lineage records for what ``uri`` names: a dataset ref (``train@2``,
    a tag) by its version, a run by its full id, a model by version (not alias), a
    pipeline run by its full id, a deployment by its current revision.
    :class:`NotFoundError` when it names nothing, :class:`InvalidURIError` when lineage
    records nothing of its kind."""
    if uri.startswith("data:/") or ":/" not in uri:  # a dataset ref: name it exactly
        from mloop.data.catalog import get

        return get(project, uri).uri
    if uri.startswith("runs:/"):
        from mloop.tracking.records import resolve_run_id

        run = uri[len('runs:/'):].partition('/')[0]
        return f"runs:/{resolve_run_id(project, run)}"
    if uri.startswith("models:/"):
        from mloop.registry.models import get_version

        return get_version(project, uri).uri
    if uri.startswith("pipelines:/") and uri.count("/") == 2:  # a short run id is fine
        from mloop.pipelines.history import get_run

        name, run_id = uri[len("pipelines:/"):].split("/")
        found = get_run(project, run_id)
        if found["pipeline"] != name:
            raise NotFoundError(f"Pipeline run {run_id!r} is a run of {found['pipeline']!r}, "
                                f"not of {name!r}; see `mloop pipeline status`.")
        return str(found["uri"])
    if uri.startswith("deployments:/"):  # a deployment: its current revision
        name, _, revision = uri[len("deployments:/"):].partition("/")
        deployment = backend(project).deployments.get(name)  # NotFoundError when unknown
        if not revision and deployment.current_revision is not None:
            return f"{deployment.uri}/{deployment.current_revision}"
        return uri
    if uri.split(":/", 1)[0] not in ("alerts", "pipelines", "clients"):
        raise InvalidURIError(f"{uri!r} is not something lineage records: give "
                              "data:/NAME@V, runs:/ID, models:/NAME/V, alerts:/ID, "
                              "deployments:/NAME, pipelines:/NAME/ID or "
                              "clients:/FEDERATION/CLIENT.")
    return uri


def live_traffic(project: Project, uri: str, depth: int = 6) -> list[Served]:
    """The live traffic ``uri`` reached: every model version downstream of it (``uri``
    itself when it is one) with the deployment revisions that served it and how many
    rows each answered ("which live traffic did data:/train@3 reach?")."""
    downstream = [e for _, e in trace(project, uri, depth)[1]]
    models = {n for e in downstream for n in (e.src, e.dst) if n.startswith("models:/")}
    if uri.startswith("models:/"):
        models.add(uri)
    return backend(project).traffic.served(models)


# Relations written against the flow of data: ``deployments:/churn/2 --serves-->
# models:/churn/4`` is read downstream from the model (data → run → model → deployment).
AGAINST_FLOW = frozenset({"serves"})


def _steps(project: Project, node: str, upstream: bool) -> list[tuple[Edge, str]]:
    """The edges one step up- or downstream of ``node`` in the flow of data, each with
    its far end."""
    into, out_of = neighbours(project, node)
    steps = [(e, e.src) for e in into if (e.relation in AGAINST_FLOW) != upstream]
    steps += [(e, e.dst) for e in out_of if (e.relation in AGAINST_FLOW) == upstream]
    return steps


# How each relation reads, for ``src --relation--> dst``: (src's role, dst's role), so an
# upstream line reads "← src (ROLE dst)" and a downstream line "→ dst (ROLE src)".
PHRASES: dict[str, tuple[str, str]] = {
    "input": ("input to", "reads"),
    "output": ("logged", "logged by"),
    "produced": ("produced", "produced by"),
    "feeds": ("feeds", "fed by"),
    "step": ("ran step", "step of"),
    "cached": ("reused", "reused by"),
    "triggered": ("triggered", "triggered by"),
    "alert": ("subject of", "alert on"),
    "serves": ("serves", "served by"),
}

_HEX_ID = re.compile(r"[0-9a-f]{32}")


def short_uri(uri: str) -> str:
    """``uri`` with its run, pipeline-run or alert id cut to the 12 characters tables
    show (``runs:/<id>/model`` → ``runs:/1a2b3c4d5e6f/model``); names are left whole."""
    scheme, sep, rest = uri.partition(":/")
    if not sep or scheme not in ("runs", "pipelines", "alerts"):
        return uri
    parts = rest.split("/")
    at = len(parts) - 1 if scheme == "pipelines" else 0
    if at < len(parts) and _HEX_ID.fullmatch(parts[at]):
        parts[at] = short_id(parts[at])
    return f"{scheme}:/{'/'.join(parts)}"


def describe(edge: Edge, upstream: bool) -> str:
    """One edge as a line's text: the far node and how it relates to the near one.

    Upstream, the far node is ``src``: "runs:/… (produced models:/churn/1)"; downstream
    it is ``dst``: "models:/churn/1 (produced by runs:/…)". Ids are short (see
    :func:`short_uri`); an unknown relation reads as its name.
    """
    as_src, as_dst = PHRASES.get(edge.relation, (edge.relation, f"{edge.relation} of"))
    if edge.relation in AGAINST_FLOW:  # the far node is at the other end
        if upstream:
            return f"{short_uri(edge.dst)}  ({as_dst} {short_uri(edge.src)})"
        return f"{short_uri(edge.src)}  ({as_src} {short_uri(edge.dst)})"
    if upstream:
        return f"{short_uri(edge.src)}  ({as_src} {short_uri(edge.dst)})"
    return f"{short_uri(edge.dst)}  ({as_dst} {short_uri(edge.src)})"
