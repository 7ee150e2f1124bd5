"""Deployments: every deployment, and one deployment's revision, arms, traffic over time,
canary steps and analyses, A/B decision, bandit posteriors, shadow agreement, history;
promote, roll back, pause and resume for approvers (the role the API asks for them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mloop import deploy
from mloop.server.ui.app import View, as_caller, audit, back, change, project_of
from mloop.server.ui.charts import Chart
from mloop.server.ui.render import Column, Context, Table, page

if TYPE_CHECKING:
    from mloop.deploy.measure import ArmMeasure
    from mloop.deploy.timeline import ArmTimeline
    from mloop.repositories.deployments import DeployEvent, Revision

router = APIRouter()
ROLE = "approver"  # deployments.add_revision / update in mloop.server.methods
BUCKETS = 30  # stretches of time the traffic charts cut a revision's traffic into


def model_link(ctx: Context, uri: str | None) -> str:
    """The models page of ``models:/NAME/V`` (or of the model, for an alias); '' if none."""
    from mloop.core.uris import ModelURI, parse_uri
    from mloop.errors import MloopError

    if not uri:
        return ""
    try:
        parsed = parse_uri(uri)
    except MloopError:
        return ""
    if not isinstance(parsed, ModelURI):
        return ""
    if parsed.version is None:
        return ctx.url("models", parsed.name)
    return ctx.url("models", parsed.name, parsed.version)


def _weights(revision: Revision) -> str:
    weights = revision.weights
    return " · ".join(f"{a.name} {weights.get(a.name, 0.0):g}%" for a in revision.arms)


@router.get("/deployments")
def deployments(ctx: Context = View) -> Response:
    from mloop import repositories

    store = repositories.backend(project_of(ctx.request)).deployments
    rows = []
    for found in store.all():  # one revision read per deployment: a handful of them
        revision = (store.revision(found.name, found.current_revision)
                    if found.current_revision is not None else None)
        rows.append({
            "name": found.name, "name_href": ctx.url("deployments", found.name),
            "revision": found.current_revision,
            "strategy": str(revision.strategy) if revision else "",
            "status": str(revision.status) if revision else "no revision",
            "weights": _weights(revision) if revision else "",
            "models": ", ".join(dict.fromkeys(a.model for a in revision.arms))
            if revision else "",
            "updated": found.updated_at})
    table = Table("deployments", [
        Column("name", "Deployment", "link"), Column("revision", "Revision", "num"),
        Column("strategy", "Strategy"), Column("status", "Status"),
        Column("weights", "Traffic"), Column("models", "Models"),
        Column("updated", "Updated", "time")], rows,
        empty="No deployments yet. Create one with `mloop deploy create NAME MODEL`.")
    return page(ctx, "deployments.html", title="Deployments", tables=[table])


@router.get("/deployments/{name}")
def deployment(name: str, ctx: Context = View, revision: int | None = None) -> Response:
    from mloop import repositories
    from mloop.deploy.measure import measure
    from mloop.deploy.timeline import arm_timelines
    from mloop.errors import NotFoundError

    project = project_of(ctx.request)
    history = deploy.history(name, project=project)  # NotFoundError: the 404 page
    store = repositories.backend(project).deployments
    found = store.get(name)
    number = revision if revision is not None else found.current_revision
    shown = next((r for r in history.revisions if r.number == number), None)
    if shown is None:
        if revision is None:
            return page(ctx, "deploy_empty.html", title=name, name=name)
        raise NotFoundError(f"Deployment {name!r} has no revision {revision}; its revisions "
                            f"are {', '.join(str(r.number) for r in history.revisions)}.")
    measured = measure(project, shown)
    lines = arm_timelines(project, shown, buckets=BUCKETS)
    current = shown.number == found.current_revision
    tables = [_arms_table(ctx, shown, measured), _revisions_table(ctx, history.revisions),
              _events_table(history.events)]
    analyses = _analyses_table([e for e in history.events if e.revision == shown.number])
    if analyses.rows:
        tables.append(analyses)
    last = _last_analysis(shown, history.events)
    if last is not None:
        tables.append(_measures_table(last))
    posterior = _posterior_table(shown)
    if posterior is not None:
        tables.append(posterior)
    return page(ctx, "deploy_detail.html", title=f"Deployment {name}", tables=tables,
                scripts=("chart",), name=name, revision=shown, current=current,
                deployment=found, controller=store.lease_holder(name),
                facts=_facts(shown), canary=_canary(shown), ab=_ab(shown),
                bandit_chart=_bandit_chart(shown, history.events),
                charts=_charts(lines), last=last,
                actions=_actions(shown) if current else {},
                fallback=_fallback(shown))


def _facts(rev: Revision) -> list[tuple[str, Any]]:
    return [("URI", rev.uri), ("Strategy", str(rev.strategy)), ("Status", str(rev.status)),
            ("Traffic", _weights(rev)), ("Created by", rev.created_by),
            ("Reason", rev.reason), ("Rollback of", rev.rollback_of),
            ("Rolls back to", (rev.rollback_target or {}).get("model"))]


def _fallback(rev: Revision) -> str | None:
    from mloop.deploy.model import Fallback

    fb = Fallback.from_dict(rev.fallback)
    if fb.empty:
        return None
    parts = []
    if fb.model:
        parts.append(f"model {fb.model}")
    if fb.has_value:
        parts.append(f"value {fb.value!r}")
    if fb.timeout_ms is not None:
        parts.append(f"after {fb.timeout_ms:g} ms")
    return ", ".join(parts)


def _arms_table(ctx: Context, rev: Revision, measured: dict[str, ArmMeasure]) -> Table:
    from mloop.deploy.analysis import live_metric_name

    weights = rev.weights
    metric = live_metric_name(rev.policy.get("metric") or "auto",
                              *(m for m in measured.values() if m.labelled))
    rows = []
    for arm in rev.arms:
        m = measured.get(arm.name)
        rows.append({
            "arm": arm.name, "role": arm.role, "model": arm.model,
            "model_href": model_link(ctx, arm.model), "source": arm.source,
            "weight": weights.get(arm.name, 0.0),
            "requests": m.requests if m else 0, "errors": m.failures if m else 0,
            "error_rate": m.error_rate if m else None,
            "p50": m.latency_p50 if m else None, "p99": m.latency_p99 if m else None,
            "labelled": m.labelled if m else 0,
            "live": m.metrics.get(metric) if m else None,
            "agreement": m.agreement if m else None})
    columns = [Column("arm", "Arm"), Column("role", "Role"),
               Column("model", "Model", "link"), Column("source", "Given as"),
               Column("weight", "Weight %", "num"), Column("requests", "Rows", "num"),
               Column("errors", "Errors", "num"), Column("error_rate", "Error rate", "num"),
               Column("p50", "p50 ms", "num"), Column("p99", "p99 ms", "num"),
               Column("labelled", "Labelled", "num"), Column("live", f"Live {metric}", "num")]
    if any(r["agreement"] is not None for r in rows):
        columns.append(Column("agreement", "Agrees with primary", "num"))
    return Table("arms", columns, rows, caption=f"All traffic of revision {rev.number}")


def _revisions_table(ctx: Context, revisions: list[Revision]) -> Table:
    rows = [{"revision": r.number, "revision_href": ctx.here(revision=r.number),
             "strategy": str(r.strategy), "status": str(r.status),
             "arms": ", ".join(f"{a.name}={a.model}" for a in r.arms),
             "created_by": r.created_by, "created": r.created_at,
             "rollback_of": r.rollback_of, "reason": r.reason}
            for r in reversed(revisions)]
    return Table("revisions", [
        Column("revision", "Revision", "link"), Column("strategy", "Strategy"),
        Column("status", "Status"), Column("arms", "Arms"),
        Column("created_by", "By"), Column("created", "Created", "time"),
        Column("rollback_of", "Rollback of", "num"), Column("reason", "Reason")], rows)


def _events_table(events: list[DeployEvent]) -> Table:
    rows = [{"at": e.created_at, "revision": e.revision, "kind": e.kind,
             "by": e.initiated_by, "reason": e.reason} for e in reversed(events)]
    return Table("events", [Column("at", "When", "time"), Column("revision", "Revision", "num"),
                            Column("kind", "Event"), Column("by", "By"),
                            Column("reason", "Reason")], rows, empty="No events.")


def _analyses_table(events: list[DeployEvent]) -> Table:
    rows = [{"at": e.created_at, "kind": e.kind, "step": (e.analysis or {}).get("step"),
             "verdict": (e.analysis or {}).get("verdict"),
             "summary": (e.analysis or {}).get("summary") or e.reason}
            for e in reversed(events) if (e.analysis or {}).get("verdict")]
    return Table("analyses", [Column("at", "When", "time"), Column("kind", "Outcome"),
                              Column("step", "Step", "num"), Column("verdict", "Verdict"),
                              Column("summary", "Summary")], rows)


def _last_analysis(rev: Revision, events: list[DeployEvent]) -> dict[str, Any] | None:
    for event in reversed(events):
        if event.revision == rev.number and (event.analysis or {}).get("metrics"):
            return {**(event.analysis or {}), "at": event.created_at, "kind": event.kind}
    return None


def _measures_table(analysis: dict[str, Any]) -> Table:
    rows = [{"name": m.get("name"), "kind": m.get("kind"), "status": m.get("status"),
             "value": m.get("value"), "threshold": m.get("threshold"),
             "samples": ", ".join(f"{k} {v}" for k, v in (m.get("samples") or {}).items()),
             "required": "yes" if m.get("required") else "no", "reason": m.get("reason")}
            for m in analysis.get("metrics") or [] if isinstance(m, dict)]
    return Table("measures", [
        Column("name", "Measure"), Column("kind", "Kind"), Column("status", "Status"),
        Column("value", "Value", "num"), Column("threshold", "Threshold", "num"),
        Column("samples", "Samples"), Column("required", "Required"),
        Column("reason", "Why")], rows)


def _canary(rev: Revision) -> list[tuple[str, Any]] | None:
    """Where the canary stands, as (label, value) pairs."""
    from mloop.repositories.deployments import Strategy
    from mloop.server.ui.render import duration, iso_time, number

    if rev.strategy is not Strategy.CANARY:
        return None
    steps = [float(s) for s in rev.policy.get("steps", [])]
    step = int(rev.state.get("step", 0))
    weight = steps[step] if 0 <= step < len(steps) else None
    decision = rev.state.get("decision") or {}
    interval = rev.policy.get("interval_ms")
    return [("Steps", " → ".join(f"{number(s)}%" for s in steps)),
            ("Current step", f"{step + 1} of {len(steps)}" + (
                f" ({number(weight)}% to the canary)" if weight is not None else "")),
            ("Step started", iso_time(rev.state.get("step_started_at"))),
            ("Interval", duration(interval / 1000) if interval else None),
            ("Inconclusive in a row", rev.state.get("inconclusive", 0)),
            ("Last verdict", f"{decision.get('verdict')}: {decision.get('summary')}"
             if decision else "no analysis yet")]


def _ab(rev: Revision) -> list[tuple[str, Any]] | None:
    """The A/B test's policy and its last decision, as (label, value) pairs."""
    from mloop.repositories.deployments import Strategy
    from mloop.server.ui.render import number

    if rev.strategy is not Strategy.AB:
        return None
    d = rev.state.get("decision") or {}
    ci = d.get("ci") or []
    return [("Metric", d.get("metric") or rev.policy.get("metric") or "auto"),
            ("Control", d.get("control") or (rev.arms[0].name if rev.arms else None)),
            ("Winner", d.get("winner") or "not decided yet"),
            ("Effect", number(d.get("effect"))),
            ("Interval", " to ".join(number(v) for v in ci) if ci else None),
            ("Always-valid p", number(d.get("p"))), ("Alpha", rev.policy.get("alpha")),
            ("Labelled rows", ", ".join(f"{k} {v}" for k, v in (d.get("n") or {}).items())
             or None),
            ("Labels needed per arm", rev.policy.get("min_samples"))]


def _posterior_table(rev: Revision) -> Table | None:
    posterior = rev.state.get("posterior")
    if not isinstance(posterior, dict):
        return None
    rows = [{"arm": arm, "pulls": p.get("pulls"), "mean": p.get("mean"),
             "posterior": p.get("posterior_mean"), "low": p.get("ci_low"),
             "high": p.get("ci_high"), "weight": rev.weights.get(arm)}
            for arm, p in posterior.items() if isinstance(p, dict)]
    return Table("posterior", [
        Column("arm", "Arm"), Column("pulls", "Labelled rows", "num"),
        Column("mean", "Mean reward", "num"), Column("posterior", "Posterior mean", "num"),
        Column("low", "95% low", "num"), Column("high", "95% high", "num"),
        Column("weight", "Weight %", "num")], rows,
        caption=f"Estimated regret: {rev.state.get('regret', '—')}")


def _bandit_chart(rev: Revision, events: list[DeployEvent]) -> Chart | None:
    """The posterior mean of each arm at every weight update."""
    updates = [e for e in events if e.revision == rev.number and e.kind == "weights"
               and isinstance((e.analysis or {}).get("posterior"), dict)]
    if not updates:
        return None
    chart = Chart("posterior-chart", "Posterior mean reward by arm", x="time")
    for arm in rev.arms:
        xs = [e.created_at for e in updates if arm.name in (e.analysis or {})["posterior"]]
        ys = [(e.analysis or {})["posterior"][arm.name].get("posterior_mean")
              for e in updates if arm.name in (e.analysis or {})["posterior"]]
        chart.add(arm.name, xs, [float("nan") if y is None else y for y in ys])
    return chart


def _charts(lines: dict[str, ArmTimeline]) -> list[Chart]:
    if not any(line.time_ms for line in lines.values()):
        return []
    specs = (("requests-chart", "Rows served", "requests"),
             ("errors-chart", "Error rate (errors and fallbacks)", "error_rate"),
             ("latency-chart", "Latency p99 (ms)", "latency_p99"),
             ("accuracy-chart", "Live accuracy (labelled rows)", "accuracy"))
    charts = []
    for chart_id, title, attribute in specs:
        chart = Chart(chart_id, title, x="time", kind="points" if attribute == "accuracy"
                      else "line")
        for arm, line in lines.items():
            values = getattr(line, attribute)
            chart.add(arm, line.time_ms, [float("nan") if v is None else v for v in values])
        charts.append(chart)
    return charts


def _actions(rev: Revision) -> dict[str, Any]:
    """Which changes the current revision allows (the domain refuses the others anyway)."""
    from mloop.repositories.deployments import RevisionStatus, Strategy

    live = rev.status.live and rev.strategy is not Strategy.REPLACE
    pickable = rev.strategy in (Strategy.AB, Strategy.BANDIT)
    return {"promote": live and rev.status is not RevisionStatus.AWAITING_APPROVAL,
            "arms": [a.name for a in rev.arms] if pickable else [],
            "rollback": rev.rollback_target is not None,
            "pause": rev.status is RevisionStatus.ACTIVE and live,
            "resume": rev.status is RevisionStatus.PAUSED}


# ── changes ────────────────────────────────────────────────────────────────────────────

async def _act(request: Request, name: str, verb: str,
               do: Callable[[dict[str, str]], Revision],
               say: Callable[[Revision], str]) -> Response:
    """One change of a deployment: checked (Host, CSRF, the approver role), done as the
    caller, audited, then back to the deployment's page with what happened."""
    from mloop.server.ui.render import PREFIX, quote

    identity, fields = await change(request, ROLE)
    done = await as_caller(identity, lambda: do(fields))
    audit(request, identity, f"deployments.{verb}", name)
    # the page without ?revision=: a change makes (or moves) the current revision
    return back(request, {}, f"{PREFIX}/deployments/{quote(name)}", say(done))


@router.post("/deployments/{name}/promote")
async def promote(name: str, request: Request) -> Response:
    project = project_of(request)
    return await _act(request, name, "promote",
                      lambda f: deploy.promote(name, arm=f.get("arm") or None,
                                               project=project),
                      lambda r: f"Promoted: revision {r.number} — {_weights(r)}.")


@router.post("/deployments/{name}/rollback")
async def rollback(name: str, request: Request) -> Response:
    project = project_of(request)
    return await _act(request, name, "rollback",
                      lambda f: deploy.rollback(
                          name, reason=(f.get("reason") or "").strip()[:500] or None,
                          project=project),
                      lambda r: f"Rolled back: revision {r.number} sends all traffic to "
                                f"{r.arms[0].model}.")


@router.post("/deployments/{name}/pause")
async def pause(name: str, request: Request) -> Response:
    project = project_of(request)
    return await _act(request, name, "pause", lambda f: deploy.pause(name, project=project),
                      lambda r: f"Paused revision {r.number}.")


@router.post("/deployments/{name}/resume")
async def resume(name: str, request: Request) -> Response:
    project = project_of(request)
    return await _act(request, name, "resume", lambda f: deploy.resume(name, project=project),
                      lambda r: f"Resumed revision {r.number}.")
