"""Home: the loop, model by model — dataset version → pipeline/run → model version (gate
decision) → deployment (arms and weights) → monitoring (open alerts) — and what changed
recently across the project.

Each chain is read from the lineage graph and the stores, never guessed: the version
shown is the one a deployment serves, else the ``champion`` alias, else the latest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from mloop.core.ids import short_id
from mloop.errors import ModelNotFoundError, RunNotFoundError
from mloop.lineage import neighbours, short_uri
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.backends import Backend
from mloop.repositories.deployments import Revision
from mloop.repositories.models import ModelVersion
from mloop.server.ui.app import View, project_of
from mloop.server.ui.render import Column, Context, Table, page

router = APIRouter()
RECENT = 25


@dataclass
class Loop:
    """One model's way around the loop, each part a link (or missing)."""

    model: ModelVersion
    datasets: list[str] = field(default_factory=list)
    run_id: str | None = None
    run_name: str | None = None
    pipeline: str | None = None  # pipelines:/NAME/ID
    gate: dict[str, Any] | None = None
    deployments: list[Revision] = field(default_factory=list)
    open_alerts: int = 0
    worst: str | None = None


def _serving(revisions: list[Revision], name: str) -> tuple[list[Revision], int | None]:
    """The live revisions serving a version of model ``name``, and the newest such version."""
    found, version = [], None
    for rev in revisions:
        versions = [int(a.model.rsplit("/", 1)[1]) for a in rev.arms
                    if a.model.startswith(f"models:/{name}/")]
        if versions:
            found.append(rev)
            version = max([version or 0, *versions])
    return found, version


def _loop(project: Project, store: Backend, latest: ModelVersion,
          revisions: list[Revision]) -> Loop:
    deployed, version = _serving(revisions, latest.name)
    if version is not None:
        model = store.models.get(f"models:/{latest.name}/{version}")
    elif "champion" in latest.aliases:
        model = latest
    else:
        try:
            model = store.models.get(f"models:/{latest.name}@champion")
        except ModelNotFoundError:  # no champion: the latest version stands
            model = latest
    loop = Loop(model, deployments=deployed)
    if model.run_id:
        loop.run_id = model.run_id
        run_uri = f"runs:/{model.run_id}"
        into, _ = neighbours(project, run_uri)
        loop.datasets = [e.src for e in into if e.src.startswith("data:/")]
        loop.pipeline = next((e.src for e in into if e.src.startswith("pipelines:/")), None)
        try:
            loop.run_name = store.runs.get(model.run_id).name
        except RunNotFoundError:  # a deleted run: its id still links
            loop.run_name = None
    evaluation = store.evaluations.latest(model.uri)
    if evaluation is not None:
        loop.gate = {"passed": evaluation.passed, "suite": evaluation.suite,
                     "data": evaluation.data, "when": evaluation.created_at}
    alerts = store.alerts.list(open_only=True, subject=f"models:/{model.name}/", limit=100)
    loop.open_alerts = len(alerts)
    order = {"critical": 3, "warning": 2, "info": 1}
    loop.worst = max((a.severity for a in alerts), key=lambda s: order.get(s, 0),
                     default=None)
    return loop


def _recent(ctx: Context, project: Project, store: Backend,
            names: list[str], revisions: list[Revision]) -> Table:
    """What changed lately: registry events, deployment events, dataset versions, runs,
    alerts — newest first."""
    from mloop.data.catalog import list_datasets

    rows: list[dict[str, Any]] = []
    for name in names:
        for event in store.models.events(name)[-RECENT:]:
            what = f"{name} v{event.version}" if event.version else name
            rows.append({"when": event.created_at, "kind": "model", "what": what,
                         "what_href": ctx.url("models", name, event.version or ""),
                         "change": event.action, "who": event.user or "",
                         "note": event.message or ""})
    for dep in {r.deployment for r in revisions}:
        for e in store.deployments.events(dep, limit=RECENT):
            rows.append({"when": e.created_at, "kind": "deployment",
                         "what": f"{dep} r{e.revision}",
                         "what_href": ctx.url("deployments", dep), "change": e.kind,
                         "who": e.initiated_by, "note": e.reason or ""})
    for version in list_datasets(project):
        rows.append({"when": version.created_at, "kind": "dataset", "what": version.ref,
                     "what_href": ctx.url("data", version.name, version.version),
                     "change": "new version", "who": version.user or "",
                     "note": version.message or ""})
    for alert in store.alerts.list(limit=RECENT):
        rows.append({"when": alert.last_seen_at, "kind": "alert",
                     "what": short_uri(alert.subject),
                     "what_href": _monitoring_of(ctx, alert.subject),
                     "change": f"{alert.severity} {alert.status}", "who": alert.rule,
                     "note": alert.message})
    rows.extend(_recent_runs(ctx, project))
    rows.sort(key=lambda r: r["when"] or 0, reverse=True)
    return Table("recent", [
        Column("when", "When", "time"), Column("kind", "Kind"),
        Column("what", "What", "link"), Column("change", "Change"), Column("who", "Who"),
        Column("note", "Note")], rows[:RECENT], empty="Nothing recorded yet.")


def _monitoring_of(ctx: Context, subject: str) -> str:
    """The monitoring page of an alert's subject (``models:/NAME/VERSION``)."""
    name, _, version = subject.removeprefix("models:/").partition("/")
    return ctx.url("monitoring", model=name, version=version if version.isdigit() else None)


def _recent_runs(ctx: Context, project: Project) -> list[dict[str, Any]]:
    from mloop.tracking.search import search_runs

    frame = search_runs(project, order_by=["attributes.start_time DESC"],
                        max_results=RECENT)
    if frame.empty:
        return []
    import pandas as pd

    epoch = pd.Timestamp(0, tz="UTC")
    starts = ((frame["start_time"] - epoch) // pd.Timedelta(milliseconds=1)).tolist()
    return [{"when": start, "kind": "run", "what": name or short_id(run_id),
             "what_href": ctx.url("runs", run_id), "change": str(status),
             "who": user or "", "note": experiment}
            for run_id, name, status, user, experiment, start in zip(
                frame["run_id"], frame["name"], frame["status"], frame["user"],
                frame["experiment"], starts, strict=True)]


@router.get("/")
def home(ctx: Context = View) -> Response:
    project = project_of(ctx.request)
    store = backend(project)
    revisions = []
    for dep in store.deployments.all():
        if dep.current_revision is not None:
            revisions.append(store.deployments.revision(dep.name, dep.current_revision))
    latest = sorted(store.models.latest(), key=lambda v: v.name)
    loops = [_loop(project, store, v, revisions) for v in latest]
    recent = _recent(ctx, project, store, [v.name for v in latest], revisions)
    counts = store.alerts.open_counts()
    return page(ctx, "home.html", title="The loop", tables=[recent], loops=loops,
                open_alerts=counts, short=short_id, short_uri=short_uri)
