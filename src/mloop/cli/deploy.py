"""``mloop deploy …``: deployments that carry traffic from one model version to another.

Thin: each command parses its options, calls one function of :mod:`mloop.deploy` (which
is imported only when a command runs, so ``mloop --help`` stays fast) and renders the
revision, status or history it returns. See docs/deployment.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mloop.cli.render import echo, emit_json, fmt, json_option, kv_section, table

if TYPE_CHECKING:
    from mloop.repositories.deployments import Revision

_ARM_HELP = ("An arm as [NAME=]REF[:WEIGHT], e.g. b=models:/churn/4:50; repeat it. Weights "
             "default to an even split and must sum to 100 when given.")


def _api() -> Any:
    import mloop.deploy

    return mloop.deploy


def _when(ms: int | None) -> str:
    from mloop.core.clock import format_ms

    return format_ms(ms)


def _weights(revision: Revision) -> str:
    """``stable=95% canary=5%``, in the order of the revision's arms."""
    weights = revision.weights
    return " ".join(f"{a.name}={weights.get(a.name, 0.0):g}%" for a in revision.arms) or "-"


def _done(revision: Revision, as_json: bool, what: str) -> None:
    """The revision a command made or moved: JSON, or one line saying where traffic goes."""
    if as_json:
        emit_json(revision.to_dict())
        return
    echo(f"{revision.uri} ({revision.strategy}, {revision.status}): {what}")
    echo(f"  traffic: {_weights(revision)}")
    if revision.reason:
        echo(f"  reason: {revision.reason}")


@click.group()
def deploy() -> None:
    """Deployments: named endpoints that move traffic between model versions gradually.

    Each strategy command (replace, canary, ab, bandit, shadow, bluegreen) makes a new
    revision; switch, promote, pause, resume and rollback act on the current one. `mloop
    serve --deployment NAME` routes requests by it, and a controller (that server, or
    `mloop deploy run`) steps canaries, analyses them and updates bandits.

    \b
    mloop deploy create churn-live models:/churn@champion --fallback-value 0
    mloop deploy canary churn-live models:/churn/4 --steps 5,25,50,100 --interval 10m
    mloop deploy status churn-live
    """


@deploy.command("create")
@click.argument("name")
@click.argument("model")
@click.option("--fallback", metavar="REF", help="A model version answering when MODEL fails "
              "or is too slow, e.g. models:/churn/3.")
@click.option("--fallback-value", metavar="JSON", help="A constant answer (JSON, e.g. 0 or "
              "'\"unknown\"') when MODEL fails or is too slow.")
@click.option("--timeout-ms", type=click.FloatRange(min=0, min_open=True),
              help="Answer from the fallback when MODEL takes longer than this.")
@json_option
def create(name: str, model: str, fallback: str | None, fallback_value: str | None,
           timeout_ms: float | None, as_json: bool) -> None:
    """Create deployment NAME sending all traffic to MODEL (its first revision).

    NAME must differ from every registered model's name (both answer at
    /v2/models/NAME). MODEL is pinned to its version now; the alias it was given by is
    kept, so promoting a later canary moves that alias.

    \b
    mloop deploy create churn-live models:/churn@champion --fallback models:/churn/3
    mloop deploy create churn-live churn/4 --fallback-value 0 --timeout-ms 200
    """
    extra: dict[str, Any] = {}
    if fallback_value is not None:
        try:
            extra["fallback_value"] = json.loads(fallback_value)  # null is a value too
        except ValueError:
            raise click.BadParameter(f"{fallback_value!r} is not JSON; quote a string as "
                                     "'\"text\"'.", param_hint="--fallback-value") from None
    rev = _api().create(name, model, fallback=fallback, timeout_ms=timeout_ms, **extra)
    _done(rev, as_json, f"created on {rev.arms[0].model}")


@deploy.command("replace")
@click.argument("name")
@click.argument("model")
@json_option
def replace(name: str, model: str, as_json: bool) -> None:
    """Send all of NAME's traffic to MODEL at once (no rollout).

    \b
    mloop deploy replace churn-live models:/churn/5
    """
    rev = _api().replace(name, model)
    _done(rev, as_json, f"all traffic to {rev.arms[0].model}")


@deploy.command("canary")
@click.argument("name")
@click.argument("model")
@click.option("--steps", default="5,25,50,100", show_default=True,
              help="Percent of traffic to MODEL at each step, rising, the last 100.")
@click.option("--interval", default="10m", show_default=True,
              help="Time between steps; an analysis runs at the end of each (90s, 10m, 1h).")
@click.option("--analysis", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML analysis spec (metrics, failure_limit, interval); default: error "
                   "rate, p99 latency, prediction drift and the live metric against stable.")
@json_option
def canary(name: str, model: str, steps: str, interval: str, analysis: Path | None,
           as_json: bool) -> None:
    """Move NAME's traffic to MODEL in steps, analysing canary against stable between them.

    A failed analysis rolls back at once; after the last step the canary is promoted
    (the alias the stable came from moves to it).

    \b
    mloop deploy canary churn-live models:/churn/4 --steps 5,25,50,100 --interval 10m
    mloop deploy canary churn-live churn/4 --analysis analysis.yaml
    """
    rev = _api().canary(name, model, steps=steps, interval=interval,
                        analysis=str(analysis) if analysis is not None else None)
    _done(rev, as_json, f"canary of {rev.arm('canary').model} started")


@deploy.command("ab")
@click.argument("name")
@click.option("--arm", "arms", multiple=True, required=True, metavar="[NAME=]REF[:WEIGHT]",
              help=_ARM_HELP)
@click.option("--sticky", metavar="FIELD", help="Keep a user in one arm: hash this request "
              "field (or the x-mloop-key header).")
@click.option("--metric", help="The metric from feedback the test judges (e.g. accuracy).")
@click.option("--min-samples", type=click.IntRange(min=1), default=500, show_default=True,
              help="Labels each arm needs before a decision.")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Significance level of the always-valid sequential test.")
@json_option
def ab(name: str, arms: tuple[str, ...], sticky: str | None, metric: str | None,
       min_samples: int, alpha: float, as_json: bool) -> None:
    """Split NAME's traffic between arms by weight and judge them by an always-valid test.

    `mloop deploy status` may be read at any time (peeking does not inflate false
    positives); promote the winner with `mloop deploy promote NAME`.

    \b
    mloop deploy ab churn-live --arm a=models:/churn/3:50 --arm b=models:/churn/4:50 \\
        --sticky customer_id --metric accuracy --min-samples 500
    """
    rev = _api().ab(name, list(arms), sticky=sticky, metric=metric, min_samples=min_samples,
                    alpha=alpha)
    _done(rev, as_json, f"A/B test of {len(rev.arms)} arms started")


@deploy.command("bandit")
@click.argument("name")
@click.option("--arm", "arms", multiple=True, required=True, metavar="[NAME=]REF",
              help="An arm as [NAME=]REF; repeat it (weights are the bandit's to choose).")
@click.option("--reward", required=True, help="The metric from feedback to maximise, e.g. "
              "accuracy.")
@click.option("--algorithm", type=click.Choice(["thompson", "ucb1", "epsilon-greedy"]),
              default="thompson", show_default=True, help="How weights follow the rewards.")
@click.option("--interval", default="1m", show_default=True,
              help="How often the weights are recomputed (30s, 1m, 1h).")
@click.option("--min-share", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              show_default=True, help="Share of traffic every arm keeps at least (0.05 = 5%).")
@click.option("--epsilon", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="epsilon-greedy: share of traffic spread evenly to explore.")
@click.option("--sticky", metavar="FIELD", help="Keep a user in one arm: hash this request "
              "field (or the x-mloop-key header).")
@json_option
def bandit(name: str, arms: tuple[str, ...], reward: str, algorithm: str, interval: str,
           min_share: float, epsilon: float, sticky: str | None, as_json: bool) -> None:
    """Route NAME's traffic by a multi-armed bandit learning from the reward in feedback.

    \b
    mloop deploy bandit churn-live --arm models:/churn/3 --arm models:/churn/4 \\
        --arm models:/churn/5 --reward accuracy --algorithm thompson --min-share 0.05
    """
    rev = _api().bandit(name, list(arms), reward=reward, algorithm=algorithm,
                        interval=interval, min_share=min_share, epsilon=epsilon,
                        sticky=sticky)
    _done(rev, as_json, f"{algorithm} bandit over {len(rev.arms)} arms started")


@deploy.command("shadow")
@click.argument("name")
@click.argument("model")
@click.option("--sample", type=click.FloatRange(0, 1, min_open=True), default=1.0,
              show_default=True, help="Share of requests copied to MODEL.")
@json_option
def shadow(name: str, model: str, sample: float, as_json: bool) -> None:
    """Copy NAME's requests to MODEL after the primary answered; its answers are only logged.

    \b
    mloop deploy shadow churn-live models:/churn/5 --sample 0.3
    """
    rev = _api().shadow(name, model, sample=sample)
    _done(rev, as_json, f"shadowing {sample:.0%} of requests")


@deploy.command("bluegreen")
@click.argument("name")
@click.argument("model")
@json_option
def bluegreen(name: str, model: str, as_json: bool) -> None:
    """Load MODEL as green beside the serving blue, warmed, at 0% traffic.

    Then `mloop deploy switch NAME` moves all new requests to green at once.

    \b
    mloop deploy bluegreen churn-live models:/churn/4
    """
    rev = _api().bluegreen(name, model)
    _done(rev, as_json, "green loaded at 0%; switch with `mloop deploy switch`")


@deploy.command("switch")
@click.argument("name")
@json_option
def switch(name: str, as_json: bool) -> None:
    """Blue/green: all new requests to the other color at once (run again to switch back).

    \b
    mloop deploy switch churn-live
    """
    rev = _api().switch(name)
    _done(rev, as_json, f"{rev.state.get('active')} takes all traffic")


@deploy.command("promote")
@click.argument("name")
@click.option("--arm", help="The arm to promote (default: the canary, shadow, active color "
              "or the A/B winner).")
@json_option
def promote(name: str, arm: str | None, as_json: bool) -> None:
    """End NAME's rollout with one arm taking all traffic; the stable's alias moves to it.

    \b
    mloop deploy promote churn-live
    mloop deploy promote churn-live --arm b
    """
    rev = _api().promote(name, arm=arm)
    _done(rev, as_json, "promoted")


@deploy.command("rollback")
@click.argument("name")
@click.option("--reason", help="Why; kept with the revision and its events.")
@json_option
def rollback(name: str, reason: str | None, as_json: bool) -> None:
    """Return NAME to the model that last took all its traffic (after a switch: blue).

    \b
    mloop deploy rollback churn-live --reason "complaints about v4"
    """
    rev = _api().rollback(name, reason=reason)
    _done(rev, as_json, f"rolled back revision {rev.rollback_of} to {rev.arms[0].model}")


@deploy.command("pause")
@click.argument("name")
@json_option
def pause(name: str, as_json: bool) -> None:
    """Hold NAME's rollout where it is: weights stay, no step or bandit update is made.

    \b
    mloop deploy pause churn-live
    """
    _done(_api().pause(name), as_json, "paused")


@deploy.command("resume")
@click.argument("name")
@json_option
def resume(name: str, as_json: bool) -> None:
    """Carry on NAME's paused rollout.

    \b
    mloop deploy resume churn-live
    """
    _done(_api().resume(name), as_json, "resumed")


_MEASURES: dict[str, tuple[str, ...]] = {
    "requests": ("requests",),
    "errors": ("errors",),
    "p99": ("latency_p99_ms", "p99_ms"),
    "labelled": ("labelled",),
}


def _measure(values: Any, what: str) -> Any:
    """One measurement of an arm (None when it has none: an arm that served nothing yet)."""
    if not isinstance(values, dict):
        return None
    for key in _MEASURES[what]:
        if values.get(key) is not None:
            return values[key]
    return None


def _live_metric(values: Any, preferred: str | None) -> str | None:
    """The arm's live metric from feedback: the policy's metric when measured, else every
    one measured (``accuracy=0.91``); None before any label."""
    metrics = values.get("metrics") if isinstance(values, dict) else None
    if not isinstance(metrics, dict) or not metrics:
        return None
    if preferred in metrics:
        return fmt(metrics[preferred])
    return " ".join(f"{k}={fmt(v)}" for k, v in metrics.items())


def _brief(value: Any) -> str:
    """A decision or a fallback as one readable line (times as UTC dates)."""
    if value is None:
        return "-"
    if not isinstance(value, dict):
        return fmt(value)
    parts = []
    for key, v in value.items():
        if isinstance(v, int) and not isinstance(v, bool) and key.endswith("at"):
            v = _when(v) + " UTC"
        if v is None or isinstance(v, str | int | float | bool):
            parts.append(f"{key}={fmt(v)}")
    return ", ".join(parts) or json.dumps(value, default=str)


@deploy.command("status")
@click.argument("name")
@click.option("--window", default="1h", show_default=True,
              help="Measure the traffic of this last while (a live canary: since its step "
              "started); 'all' reads the whole revision.")
@json_option
def status(name: str, window: str, as_json: bool) -> None:
    """Where NAME stands: revision, arms with weights and measurements, last decision.

    \b
    mloop deploy status churn-live
    mloop deploy status churn-live --window 24h --json
    """
    st = _api().status(name, window=None if window == "all" else window)
    if as_json:
        emit_json(st.to_dict())
        return
    rev, last = st.revision, st.last_event
    kv_section(st.deployment.uri, {
        "revision": "-" if rev is None else f"{rev.number} ({rev.strategy}, {rev.status})",
        "reason": rev.reason if rev is not None else None,
        "created by": rev.created_by if rev is not None else None,
        "fallback": _brief(rev.fallback) if rev is not None else None,
        "decision": _brief(st.decision),
        "last event": None if last is None else
        f"{last.kind} by {last.initiated_by} at {_when(last.created_at)} UTC"
        + (f": {last.reason}" if last.reason else ""),
        "controller": st.controller or f"none (start `mloop deploy run {name}` or `mloop "
                                        f"serve --deployment {name}`)"}, sort=False)
    if rev is None:
        return
    weights, measured = st.weights, st.measurements
    metric = rev.policy.get("metric") or rev.policy.get("reward")
    table(["arm", "model", "role", "weight %", "requests", "errors", "p99 ms", "labelled",
           "live metric"],
          [(a.name, a.model, a.role, weights.get(a.name, 0.0),
            *(_measure(measured.get(a.name), w) for w in _MEASURES),
            _live_metric(measured.get(a.name), metric)) for a in rev.arms],
          title="Arms")


@deploy.command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="Show at most this many of the newest events.")
@json_option
def history(name: str, limit: int, as_json: bool) -> None:
    """NAME's revisions and events: who or what initiated each, and why.

    \b
    mloop deploy history churn-live
    """
    found = _api().history(name, limit=limit)
    if as_json:
        emit_json(found.to_dict())
        return
    table(["rev", "strategy", "status", "arms", "created by", "created (UTC)", "rollback of",
           "reason"],
          [(r.number, r.strategy, r.status,
            " ".join(f"{a.name}={a.model}" for a in r.arms), r.created_by,
            _when(r.created_at), r.rollback_of, r.reason) for r in found.revisions],
          title="Revisions")
    table(["when (UTC)", "rev", "event", "initiated by", "reason"],
          [(_when(e.created_at), e.revision, e.kind, e.initiated_by, e.reason)
           for e in found.events], title="Events", empty="No events.")


@deploy.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Every deployment with its current revision.

    \b
    mloop deploy list --json
    """
    found = _api().list_deployments()
    if as_json:
        emit_json([d.to_dict() for d in found])
        return
    table(["deployment", "revision", "serial", "created (UTC)", "updated (UTC)"],
          [(d.name, d.current_revision, d.serial, _when(d.created_at), _when(d.updated_at))
           for d in found],
          empty="No deployments. Create one with `mloop deploy create NAME MODEL`.")


@deploy.command("delete")
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def delete(name: str, yes: bool, as_json: bool) -> None:
    """Forget deployment NAME: its revisions, events and lease (the traffic log stays).

    \b
    mloop deploy delete churn-live --yes
    """
    api = _api()
    if not yes:
        click.confirm(f"Delete deployment {name!r} and its history?", abort=True)
    api.delete(name)
    if as_json:
        emit_json({"deleted": name})
        return
    echo(f"Deleted deployment {name}.")


@deploy.command("run")
@click.argument("names", nargs=-1)
@click.option("--every", default="2s", show_default=True,
              help="How often the controller looks at its deployments (1s, 2s, 1m).")
def run(names: tuple[str, ...], every: str) -> None:
    """Run the controller of NAMES (default: every deployment) until Ctrl-C.

    It takes each deployment's lease (one controller at a time; another takes over when
    this one stops), steps and analyses canaries and updates bandits. A server started
    with `mloop serve --deployment NAME` does the same, so this is for deployments
    served elsewhere.

    \b
    mloop deploy run churn-live --every 2s
    """
    import importlib
    import threading

    from mloop.core.clock import parse_duration
    from mloop.project import current_project

    # imported here: the controller pulls in the analysis and the statistics
    controller = importlib.import_module("mloop.deploy.controller")

    every_s = parse_duration(every) / 1000
    stop = threading.Event()
    echo(f"Controlling {', '.join(names) or 'every deployment'} every {every_s:g} s; "
         "Ctrl-C stops.", err=True)
    try:
        controller.run(current_project(), list(names), every_s=every_s, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        echo("Controller stopped.", err=True)
