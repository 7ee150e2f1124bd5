"""Pipelines: their runs, each run's DAG with step status and logs, and the automation's
decisions with their reasons.

A run's DAG is drawn from what was recorded, not by importing the project's pipeline
code: its steps (status, seconds, the tracking run each one made or reused) and the
lineage edges between those runs (``runs:/a --feeds--> runs:/b``), with the dataset
versions it read and the models it logged. The server can draw any team member's runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mloop.core.ids import short_id
from mloop.errors import NotFoundError
from mloop.lineage import neighbours
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.automation import Decision
from mloop.repositories.pipelines import PipelineRunRecord, describe_counts
from mloop.server.ui.app import View, project_of
from mloop.server.ui.charts import script_json
from mloop.server.ui.links import page_of
from mloop.server.ui.render import Column, Context, Table, page

router = APIRouter()
MAX_LOG = 256 * 1024  # bytes of a step's log shown in the page (its end)
HISTORY = 200


def _seconds(run: PipelineRunRecord) -> float | None:
    if run.finished_at is None:
        return None
    return (run.finished_at - run.started_at) / 1000


def _runs_table(ctx: Context, runs: list[PipelineRunRecord], *, with_pipeline: bool) -> Table:
    rows = [{"id": short_id(r.id), "id_href": ctx.url("pipelines", r.pipeline, r.id),
             "pipeline": r.pipeline, "pipeline_href": ctx.url("pipelines", r.pipeline),
             "status": str(r.status), "steps": describe_counts(r.step_counts),
             "trigger": r.trigger or "", "started": r.started_at,
             "seconds": _seconds(r), "error": (r.error or "")[:200]} for r in runs]
    columns = [Column("id", "Run", "link")]
    if with_pipeline:
        columns.append(Column("pipeline", "Pipeline", "link"))
    columns += [Column("status", "Status"), Column("steps", "Steps"),
                Column("trigger", "Trigger"), Column("started", "Started", "time"),
                Column("seconds", "Seconds", "num"), Column("error", "Error")]
    return Table("runs", columns, rows, empty="No pipeline has run yet: `mloop pipeline run`.")


def _decisions_table(ctx: Context, decisions: list[Decision]) -> Table:
    rows = []
    for d in decisions:
        rows.append({
            "fired": d.fired_at, "pipeline": d.pipeline,
            "pipeline_href": ctx.url("pipelines", d.pipeline), "trigger": d.trigger,
            "decision": str(d.decision), "reasons": "; ".join(d.reasons),
            "run": short_id(d.pipeline_run_id) if d.pipeline_run_id else "",
            "run_href": ctx.url("pipelines", d.pipeline, d.pipeline_run_id)
            if d.pipeline_run_id else None,
            "registered": d.registered or "",
            "registered_href": page_of(d.registered) if d.registered else None})
    return Table("decisions", [
        Column("fired", "When", "time"), Column("pipeline", "Pipeline", "link"),
        Column("trigger", "Trigger"), Column("decision", "Decision"),
        Column("reasons", "Reasons"), Column("run", "Pipeline run", "link"),
        Column("registered", "Registered", "link")], rows,
        empty="No automation decision recorded (`mloop automate`).")


def _history(project: Project, pipeline: str | None = None, limit: int = 50
             ) -> list[Decision]:
    from mloop.automation.state import history

    return history(project, pipeline=pipeline, limit=limit)


@router.get("/pipelines")
def pipelines(ctx: Context = View) -> Response:
    project = project_of(ctx.request)
    from mloop.pipelines.history import reap_runs

    reap_runs(project)
    recent = backend(project).pipeline_runs.recent(None, limit=HISTORY)
    latest: dict[str, PipelineRunRecord] = {}
    counts: dict[str, int] = {}
    for run in recent:  # newest first
        latest.setdefault(run.pipeline, run)
        counts[run.pipeline] = counts.get(run.pipeline, 0) + 1
    rows = [{"name": name, "name_href": ctx.url("pipelines", name),
             "status": str(run.status), "steps": describe_counts(run.step_counts),
             "last": run.started_at, "runs": counts[name]}
            for name, run in sorted(latest.items())]
    table = Table("pipelines", [
        Column("name", "Pipeline", "link"), Column("status", "Last status"),
        Column("steps", "Last run's steps"), Column("last", "Last run", "time"),
        Column("runs", "Recent runs", "num")], rows,
        empty="No pipeline has run yet: define one (`mloop pipeline --help`) and run it.")
    tables = [table, _runs_table(ctx, recent[:50], with_pipeline=True),
              _decisions_table(ctx, _history(project))]
    return page(ctx, "pipelines.html", title="Pipelines", tables=tables)


@router.get("/pipelines/{name}")
def pipeline(name: str, ctx: Context = View) -> Response:
    project = project_of(ctx.request)
    runs = backend(project).pipeline_runs.recent(name, limit=HISTORY)
    if not runs:
        raise NotFoundError(f"No run of a pipeline named {name!r} is recorded; the "
                            "pipelines page lists those that ran.")
    last = backend(project).pipeline_runs.get(runs[0].id)
    graph = step_graph(ctx, project, last)
    durations = [{"id": short_id(r.id), "seconds": _seconds(r)} for r in reversed(runs)]
    tables = [_runs_table(ctx, runs, with_pipeline=False),
              _decisions_table(ctx, _history(project, name))]
    return page(ctx, "pipeline.html", title=f"Pipeline {name}", tables=tables,
                scripts=("graph",), name=name, last=last, graph=script_json(graph),
                durations=durations)


@router.get("/pipelines/{name}/{run_id}")
def pipeline_run(name: str, run_id: str, request: Request, step: str = "",
                 ctx: Context = View) -> Response:
    project = project_of(request)
    from mloop.pipelines.history import reap_runs

    reap_runs(project)
    run = backend(project).pipeline_runs.get(run_id)
    if run.pipeline != name:
        raise NotFoundError(f"Pipeline run {run_id} belongs to {run.pipeline!r}, not "
                            f"{name!r}.")
    rows = []
    for s in run.steps:
        rows.append({"step": s.step, "step_href": ctx.here(step=s.step) + "#log",
                     "status": str(s.status), "seconds": s.seconds, "attempts": s.attempts,
                     "run": short_id(s.run_id) if s.run_id else "",
                     "run_href": ctx.url("runs", s.run_id) if s.run_id else None,
                     "outputs": ", ".join(sorted(s.outputs)), "error": s.error or ""})
    steps = Table("steps", [
        Column("step", "Step", "link"), Column("status", "Status"),
        Column("seconds", "Seconds", "num"), Column("attempts", "Attempts", "num"),
        Column("run", "Tracking run", "link"), Column("outputs", "Outputs"),
        Column("error", "Error")], rows)
    params = Table("params", [Column("key", "Param"), Column("value", "Value")],
                   [{"key": k, "value": v} for k, v in sorted(run.params.items())],
                   empty="No params.")
    log = _log(project, run, step) if step else None
    decision = next((d for d in _history(project, name, 200)
                     if d.pipeline_run_id == run.id), None)
    return page(ctx, "pipeline_run.html", title=f"Pipeline run {short_id(run.id)}",
                tables=[steps, params], scripts=("graph",), run=run, step=step, log=log,
                graph=script_json(step_graph(ctx, project, run)), decision=decision,
                seconds=_seconds(run), short=short_id)


def _log(project: Project, run: PipelineRunRecord, step: str) -> dict[str, Any]:
    record = next((s for s in run.steps if s.step == step), None)
    if record is None:
        raise NotFoundError(f"Pipeline run {short_id(run.id)} has no step {step!r}; its "
                            f"steps: {', '.join(s.step for s in run.steps)}.")
    if not record.log:
        return {"step": step, "text": "", "cut": 0,
                "note": "It printed nothing." if str(record.status) == "ran"
                else f"It did not run in this run ({record.status})."}
    body = project.objects.get_bytes(record.log)
    cut = max(0, len(body) - MAX_LOG)
    return {"step": step, "text": body[cut:].decode("utf-8", "replace"), "cut": cut,
            "note": ""}


def step_graph(ctx: Context, project: Project, run: PipelineRunRecord) -> dict[str, Any]:
    """The DAG of one pipeline run from its records: steps, the ``feeds`` edges between
    their tracking runs, the dataset versions read and the models logged."""
    by_run = {s.run_id: s for s in run.steps if s.run_id}
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str, str]] = set()
    for s in run.steps:
        label = f"{s.step}\n{s.status}" + (f" · {s.seconds:.1f}s" if s.seconds else "")
        nodes[f"step:{s.step}"] = {
            "id": f"step:{s.step}", "label": label, "kind": "step", "status": str(s.status),
            "href": ctx.url("pipelines", run.pipeline, run.id, step=s.step)}
    for s in run.steps:
        if not s.run_id:
            continue
        into, out_of = neighbours(project, f"runs:/{s.run_id}")
        for e in into:
            source_run = e.src[len("runs:/"):] if e.src.startswith("runs:/") else None
            if e.relation == "feeds" and source_run in by_run:
                edges.add((f"step:{by_run[source_run].step}", f"step:{s.step}", ""))
            elif e.relation == "input" and e.src.startswith("data:/"):
                nodes.setdefault(e.src, {"id": e.src, "label": e.src[len("data:/"):],
                                         "kind": "data", "href": page_of(e.src)})
                edges.add((e.src, f"step:{s.step}", "input"))
        for e in out_of:
            if e.relation in ("output", "produced") and e.dst.startswith("models:/"):
                nodes.setdefault(e.dst, {"id": e.dst, "label": e.dst[len("models:/"):],
                                         "kind": "model", "href": page_of(e.dst)})
                edges.add((f"step:{s.step}", e.dst, e.relation))
    targets = {dst for _, dst, _ in edges}
    return {"nodes": list(nodes.values()),
            "edges": [{"source": a, "target": b, "label": label}
                      for a, b, label in sorted(edges)],
            "roots": [n for n in nodes if n not in targets]}
