"""The strategy commands: each makes a deployment's next revision, or moves the current one.

``create``/``replace`` put one model version on all traffic; ``canary``, ``ab``,
``bandit``, ``shadow`` and ``bluegreen`` start a rollout from the model taking all traffic
now (the **stable** arm, which is also what a rollback restores); ``switch``, ``promote``,
``pause``, ``resume`` and ``rollback`` act on the current revision. Every reference is
resolved and pinned to ``models:/NAME/V`` when the revision is made (the reference given
is kept as the arm's ``source``, so promoting a canary can move the alias its stable came
from). One rollout at a time: a command that would start a second one while the first is
live is a ConflictError naming what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mloop.core.uris import check_name
from mloop.deploy.model import (
    ABPolicy,
    ArmRef,
    BanditPolicy,
    CanaryPolicy,
    Fallback,
    ShadowPolicy,
    check_weights,
    parse_arm,
)
from mloop.errors import ConflictError, InvalidInputError, ModelNotFoundError
from mloop.repositories.deployments import (
    Arm,
    Ending,
    NewRevision,
    Revision,
    RevisionStatus,
    Strategy,
)

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.backends import Backend

SYSTEM = "system"
NO_VALUE: Any = object()


def who(initiated_by: str | None) -> str:
    """``initiated_by`` as stored: the given one, else ``user:<login>``."""
    if initiated_by:
        return initiated_by
    from mloop.core.process import current_user

    return f"user:{current_user() or 'unknown'}"


def _backend(project: Project) -> Backend:
    from mloop import repositories

    return repositories.backend(project)


@dataclass(frozen=True)
class Context:
    """One command's project, initiator and the deployment's current revision."""

    project: Project
    name: str
    initiated_by: str
    serial: int
    current: Revision | None

    @property
    def backend(self) -> Backend:
        return _backend(self.project)

    @property
    def system(self) -> bool:
        return self.initiated_by == SYSTEM


def context(project: Project, name: str, initiated_by: str | None) -> Context:
    deployments = _backend(project).deployments
    found = deployments.get(name)
    current = (deployments.revision(name, found.current_revision)
               if found.current_revision is not None else None)
    return Context(project, name, who(initiated_by), found.serial, current)


# ── resolving references ──────────────────────────────────────────────────────────────

def resolve(project: Project, ref: str) -> tuple[str, str]:
    """(``models:/NAME/V`` pinned, the reference as given in ``models:/`` form)."""
    from mloop.repositories.model_sources import source

    given = ref if ref.startswith("models:/") else f"models:/{ref}"
    return source(project, given).uri, given


def _arms(project: Project, refs: Sequence[ArmRef | str], *,
          default_names: Sequence[str] | None, role: str = "arm",
          weighted: bool = True) -> tuple[Arm, ...]:
    """Resolved arms; an arm without a name takes ``default_names[i]``, or ``v<version>``
    when there are none."""
    parsed = [parse_arm(r) if isinstance(r, str) else r for r in refs]
    if not parsed:
        raise InvalidInputError("Give at least one arm (--arm [NAME=]REF[:WEIGHT]).")
    weights = check_weights([p.weight for p in parsed]) if weighted else [0.0] * len(parsed)
    arms = []
    for i, (p, weight) in enumerate(zip(parsed, weights, strict=True)):
        model, given = resolve(project, p.ref)
        name = p.name or (default_names[i] if default_names is not None
                          and i < len(default_names) else "v" + model.rsplit("/", 1)[1])
        arms.append(Arm(check_name(name, "arm name"), model, given, weight, role))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"Arm names must differ; {', '.join(names)} repeat one "
                                "(two arms on one version need names: NAME=REF).")
    return tuple(arms)


def settled_arm(revision: Revision) -> Arm | None:
    """The arm taking all traffic of ``revision``, if one does."""
    for arm in revision.arms:
        if revision.weights.get(arm.name, 0) >= 100:
            return arm
    return None


def _stable(ctx: Context) -> Arm:
    """The arm taking all traffic now: what a rollout starts from and rolls back to."""
    current = ctx.current
    if current is None:
        raise InvalidInputError(f"Deployment {ctx.name!r} serves no model yet; give it one "
                                f"with `mloop deploy replace {ctx.name} MODEL`.")
    _refuse_second_rollout(ctx)
    arm = settled_arm(current)
    if arm is None:
        raise ConflictError(f"No single model takes all of {ctx.name!r}'s traffic now "
                            f"(revision {current.number}); promote an arm or roll back first.")
    return arm


def _refuse_second_rollout(ctx: Context) -> None:
    current = ctx.current
    if current is not None and current.status.live:
        raise ConflictError(
            f"Deployment {ctx.name!r} has a {current.strategy} rollout in progress "
            f"(revision {current.number}, {current.status}); one at a time: promote it "
            f"(`mloop deploy promote {ctx.name}`) or roll it back "
            f"(`mloop deploy rollback {ctx.name}`) first.")


def _target(ctx: Context) -> dict[str, Any] | None:
    """What a rollback of the next revision restores: the arm all traffic goes to now."""
    current = ctx.current
    if current is None:
        return None
    arm = settled_arm(current)
    if arm is None:
        return current.rollback_target
    return {"revision": current.number, "model": arm.model, "source": arm.source}


# ── governance ────────────────────────────────────────────────────────────────────────

def unapproved(project: Project, arms: Sequence[Arm], fallback: Fallback | None = None
               ) -> list[str]:
    """The model versions among ``arms`` (and the fallback) that governance would refuse
    to put into traffic (none unless ``[governance] require_approval`` has ``deploy``)."""
    from mloop.repositories.models import ModelStatus

    if "deploy" not in project.settings.require_approval:
        return []
    models = [a.model for a in arms]
    if fallback is not None and fallback.model is not None:
        models.append(fallback.model)
    get = _backend(project).models.get
    return [m for m in dict.fromkeys(models)
            if get(m.removeprefix("models:/")).status is not ModelStatus.APPROVED]


def _governed(ctx: Context, new: NewRevision, fresh: Sequence[Arm]) -> NewRevision:
    """``new`` as governance allows it: an unapproved version is refused to a user and
    waits for approval when the system (automation) starts the rollout."""
    waiting = unapproved(ctx.project, fresh, Fallback.from_dict(new.fallback))
    if not waiting:
        return new
    if ctx.system:
        return replace(new, status=RevisionStatus.AWAITING_APPROVAL,
                       reason=(new.reason or "") + f" (awaiting approval of "
                       f"{', '.join(waiting)})")
    raise InvalidInputError(
        f"Governance requires approval before deploying ({', '.join(waiting)} is not "
        f"approved): approve it with `mloop models approve {waiting[0][len('models:/'):]}`"
        f", then run this again.")


# ── making revisions ──────────────────────────────────────────────────────────────────

def _store(ctx: Context, new: NewRevision, fresh: Sequence[Arm],
           ending: Ending | None = None) -> Revision:
    """``new`` (governed) as the next revision, with its lineage edges."""
    new = _governed(ctx, new, fresh)
    revision = ctx.backend.deployments.add_revision(
        ctx.name, new, initiated_by=ctx.initiated_by, expected_serial=ctx.serial,
        ending=ending)
    lineage = ctx.backend.lineage
    for arm in revision.arms:
        lineage.add(revision.uri, arm.model, "serves")
    return revision


def _fallback(ctx: Context, fallback: str | None, fallback_value: Any,
              timeout_ms: float | None) -> dict[str, Any] | None:
    """The fallback given now, else the current revision's."""
    if fallback is None and fallback_value is NO_VALUE and timeout_ms is None:
        return ctx.current.fallback if ctx.current is not None else None
    model = source = None
    if fallback is not None:
        model, source = resolve(ctx.project, fallback)
    return Fallback(model, source, None if fallback_value is NO_VALUE else fallback_value,
                    fallback_value is not NO_VALUE, timeout_ms).to_dict()


def create(project: Project, name: str, model: str, *, fallback: str | None = None,
           fallback_value: Any = NO_VALUE, timeout_ms: float | None = None,
           initiated_by: str | None = None) -> Revision:
    """A new deployment ``name`` serving ``model`` (all traffic)."""
    check_name(name, "deployment name")
    backend = _backend(project)
    try:
        backend.models.get(name)
    except ModelNotFoundError:
        pass
    else:
        raise ConflictError(f"{name!r} is a registered model's name, and both would answer "
                            f"at /v2/models/{name}; choose another deployment name (e.g. "
                            f"{name}-live).")
    model_uri, _ = resolve(project, model)  # before creating: a bad model leaves nothing
    backend.deployments.create(name)
    try:
        return replace_model(project, name, model, fallback=fallback,
                             fallback_value=fallback_value, timeout_ms=timeout_ms,
                             initiated_by=initiated_by, reason=f"created on {model_uri}")
    except BaseException:
        backend.deployments.delete(name)
        raise


def replace_model(project: Project, name: str, model: str, *, fallback: str | None = None,
                  fallback_value: Any = NO_VALUE, timeout_ms: float | None = None,
                  initiated_by: str | None = None, reason: str | None = None) -> Revision:
    """``model`` takes all of ``name``'s traffic at once (strategy ``replace``)."""
    ctx = context(project, name, initiated_by)
    _refuse_second_rollout(ctx)
    arms = _arms(project, [model], default_names=["stable"], role="stable")
    arms = (replace(arms[0], weight=100.0),)
    new = NewRevision(Strategy.REPLACE, arms, {},
                      _fallback(ctx, fallback, fallback_value, timeout_ms),
                      {"weights": {arms[0].name: 100.0}}, RevisionStatus.COMPLETED,
                      rollback_target=_target(ctx), reason=reason or f"replace with "
                      f"{arms[0].model}")
    return _store(ctx, new, arms)


def canary(project: Project, name: str, model: str, *, steps: Any = None,
           interval: Any = None, analysis: dict[str, Any] | None = None,
           alias: str | None = None, initiated_by: str | None = None) -> Revision:
    """Start moving ``name``'s traffic to ``model`` in steps, analysed between them;
    ``alias`` also moves to it when it is promoted (besides the stable's own alias)."""
    ctx = context(project, name, initiated_by)
    stable = replace(_stable(ctx), name="stable", role="stable")
    policy = CanaryPolicy.of(steps, interval, analysis)
    (canary_arm,) = _arms(project, [model], default_names=["canary"], role="canary",
                          weighted=False)
    if canary_arm.model == stable.model:
        raise InvalidInputError(f"{canary_arm.model} already takes all of {name!r}'s traffic;"
                                " a canary needs another version.")
    first = policy.steps[0]
    stable, canary_arm = replace(stable, weight=100 - first), replace(canary_arm, weight=first)
    from mloop.core.clock import now_ms

    new = NewRevision(Strategy.CANARY, (stable, canary_arm),
                      policy.to_dict() | ({"alias": alias} if alias else {}),
                      ctx.current.fallback if ctx.current else None,
                      {"weights": {"stable": 100 - first, "canary": first}, "step": 0,
                       "step_started_at": now_ms(), "inconclusive": 0, "failures": 0},
                      rollback_target=_target(ctx),
                      reason=f"canary of {canary_arm.model}: steps "
                      f"{','.join(f'{s:g}' for s in policy.steps)}")
    return _store(ctx, new, [canary_arm])


def ab(project: Project, name: str, arms: Sequence[str | ArmRef], *,
       sticky: str | None = None, metric: str | None = None, min_samples: int = 500,
       alpha: float = 0.05, initiated_by: str | None = None) -> Revision:
    """Split ``name``'s traffic between ``arms`` by weight (sticky by a key), and judge
    them with an always-valid sequential test on ``metric`` from feedback."""
    ctx = context(project, name, initiated_by)
    _refuse_second_rollout(ctx)
    if len(arms) < 2:
        raise InvalidInputError("An A/B test needs at least two arms (--arm … --arm …).")
    made = _arms(project, arms, default_names=["a", "b", "c", "d", "e"])
    policy = ABPolicy(sticky, metric, min_samples, alpha)
    new = NewRevision(Strategy.AB, made, policy.to_dict(),
                      ctx.current.fallback if ctx.current else None,
                      {"weights": {a.name: a.weight for a in made}},
                      rollback_target=_target(ctx),
                      reason="A/B test of " + ", ".join(f"{a.name}={a.model}" for a in made))
    return _store(ctx, new, made)


def bandit(project: Project, name: str, arms: Sequence[str | ArmRef], *,
           reward: str = "accuracy", algorithm: str = "thompson", interval: Any = "1m",
           min_share: float = 0.0, epsilon: float = 0.1, sticky: str | None = None,
           initiated_by: str | None = None) -> Revision:
    """Send ``name``'s traffic where the ``reward`` from feedback is best, learning as it
    goes (weights recomputed every ``interval``; given weights are ignored)."""
    ctx = context(project, name, initiated_by)
    _refuse_second_rollout(ctx)
    if len(arms) < 2:
        raise InvalidInputError("A bandit needs at least two arms (--arm … --arm …).")
    parsed = [parse_arm(a) if isinstance(a, str) else a for a in arms]
    parsed = [replace(p, weight=None) for p in parsed]  # bandits choose their own weights
    made = _arms(project, parsed, default_names=None)
    policy = BanditPolicy(reward, algorithm, _interval(interval), min_share, epsilon, sticky)
    new = NewRevision(Strategy.BANDIT, made, policy.to_dict(),
                      ctx.current.fallback if ctx.current else None,
                      {"weights": {a.name: a.weight for a in made}},
                      rollback_target=_target(ctx),
                      reason=f"{algorithm} bandit on {reward} over "
                      + ", ".join(a.model for a in made))
    return _store(ctx, new, made)


def _interval(value: Any) -> int:
    from mloop.core.clock import parse_duration

    try:
        return parse_duration(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--interval: {exc.message}") from None


def shadow(project: Project, name: str, model: str, *, sample: float = 1.0,
           initiated_by: str | None = None) -> Revision:
    """Copy (a sample of) ``name``'s traffic to ``model`` after the primary answered; its
    answers are logged for comparison, never returned."""
    ctx = context(project, name, initiated_by)
    primary = replace(_stable(ctx), name="primary", role="primary", weight=100.0)
    (copy,) = _arms(project, [model], default_names=["shadow"], role="shadow",
                    weighted=False)
    policy = ShadowPolicy(sample)
    new = NewRevision(Strategy.SHADOW, (primary, copy), policy.to_dict(),
                      ctx.current.fallback if ctx.current else None,
                      {"weights": {"primary": 100.0, copy.name: 0.0}, "shadow": copy.name},
                      rollback_target=_target(ctx),
                      reason=f"shadow {copy.model} on {sample:.0%} of the traffic")
    return _store(ctx, new, [copy])


def bluegreen(project: Project, name: str, model: str, *,
              initiated_by: str | None = None) -> Revision:
    """Load ``model`` as green beside the serving blue, warmed and ready, at 0% traffic."""
    ctx = context(project, name, initiated_by)
    blue = replace(_stable(ctx), name="blue", role="blue", weight=100.0)
    (green,) = _arms(project, [model], default_names=["green"], role="green", weighted=False)
    new = NewRevision(Strategy.BLUE_GREEN, (blue, replace(green, name="green")), {},
                      ctx.current.fallback if ctx.current else None,
                      {"weights": {"blue": 100.0, "green": 0.0}, "active": "blue"},
                      rollback_target=_target(ctx),
                      reason=f"blue/green: {green.model} warmed beside {blue.model}")
    return _store(ctx, new, [green])


# ── acting on the current revision ────────────────────────────────────────────────────

def _live(ctx: Context, *strategies: Strategy) -> Revision:
    current = ctx.current
    if current is None or not current.status.live:
        raise ConflictError(f"Deployment {ctx.name!r} has no rollout in progress"
                            + (f" (revision {current.number} is {current.status})"
                               if current is not None else "") + ".")
    if strategies and current.strategy not in strategies:
        raise ConflictError(f"Deployment {ctx.name!r} runs a {current.strategy} rollout "
                            f"(revision {current.number}), not "
                            f"{' or '.join(map(str, strategies))}.")
    return current


def _move(ctx: Context, revision: Revision, kind: str, *, state: dict[str, Any] | None = None,
          status: RevisionStatus | None = None, reason: str | None = None) -> Revision:
    return ctx.backend.deployments.update(
        ctx.name, revision.number, expected_serial=ctx.serial, kind=kind,
        initiated_by=ctx.initiated_by, state=state, status=status, reason=reason)


def switch(project: Project, name: str, *, initiated_by: str | None = None) -> Revision:
    """Blue/green: send all new requests to the other color at once (green, or back to
    blue after a switch); the one left is kept warm for a switch back."""
    ctx = context(project, name, initiated_by)
    current = _live(ctx, Strategy.BLUE_GREEN)
    if current.status is not RevisionStatus.ACTIVE:
        raise ConflictError(f"Revision {current.number} of {name!r} is {current.status}; "
                            f"resume it (`mloop deploy resume {name}`) before switching.")
    to = "blue" if current.state.get("active") == "green" else "green"
    state = {**current.state, "active": to,
             "weights": {"blue": 100.0 if to == "blue" else 0.0,
                         "green": 100.0 if to == "green" else 0.0}}
    arm = current.arm(to)
    return _move(ctx, current, "switched", state=state,
                 reason=f"{to} ({arm.model}) takes all traffic")


def _winner(ctx: Context, current: Revision, arm: str | None) -> Arm:
    if arm is not None:
        return current.arm(arm)
    if current.strategy is Strategy.CANARY:
        return current.arm("canary")
    if current.strategy is Strategy.SHADOW:
        return current.arm(current.state.get("shadow") or "shadow")
    if current.strategy is Strategy.BLUE_GREEN:
        return current.arm(current.state.get("active", "blue"))
    decided = (current.state.get("decision") or {}).get("winner")
    if decided:
        return current.arm(decided)
    raise ConflictError(f"No arm of {ctx.name!r} has won yet (see `mloop deploy status "
                        f"{ctx.name}`); name the one to promote: `mloop deploy promote "
                        f"{ctx.name} --arm NAME`.")


def promote(project: Project, name: str, *, arm: str | None = None,
            initiated_by: str | None = None, reason: str | None = None,
            analysis: dict[str, Any] | None = None,
            expected_serial: int | None = None) -> Revision:
    """End the rollout with ``arm`` (the canary, the shadow, the active color or the A/B or
    bandit winner) taking all traffic; the alias the stable came from moves to it. With
    ``expected_serial`` (a controller), ConflictError when the deployment changed since."""
    ctx = context(project, name, initiated_by)
    if expected_serial is not None and expected_serial != ctx.serial:
        raise ConflictError(f"Deployment {name!r} changed before its promotion; read "
                            f"`mloop deploy status {name}` and try again.")
    current = _live(ctx)
    if current.status is RevisionStatus.AWAITING_APPROVAL:
        raise ConflictError(f"Revision {current.number} of {name!r} awaits approval of its "
                            "model; approve it first (`mloop models approve`).")
    winner = _winner(ctx, current, arm)
    moves = _alias_moves(project, current, winner)
    state = {k: v for k, v in current.state.items() if k != "shadow"}
    state["weights"] = {a.name: 100.0 if a.name == winner.name else 0.0
                        for a in current.arms}
    if moves:
        state["aliases"] = moves  # a rollback of this revision moves them back
    done = ctx.backend.deployments.update(
        name, current.number, expected_serial=ctx.serial, kind="promoted",
        initiated_by=ctx.initiated_by, state=state, status=RevisionStatus.COMPLETED,
        reason=reason or f"{winner.name} ({winner.model}) takes all traffic",
        analysis=analysis)
    _apply_moves(project, moves)
    return done


def _alias_moves(project: Project, revision: Revision, winner: Arm) -> list[dict[str, Any]]:
    """The aliases promoting ``winner`` moves: the alias the replaced model was deployed
    from (``models:/churn@champion``) when both are versions of one model, and the
    rollout's own ``alias`` (set by an automated promotion); each with the version it
    pointed at, so that a rollback can move it back."""
    from mloop.core.uris import ModelURI, parse_uri

    pinned = parse_uri(winner.model)
    if not isinstance(pinned, ModelURI) or pinned.version is None:
        return []
    wanted = [revision.policy["alias"]] if revision.policy.get("alias") else []
    sources = [a.source for a in revision.arms
               if a.name != winner.name and a.role in ("stable", "primary", "blue")]
    if revision.rollback_target and revision.rollback_target.get("source"):
        sources.append(revision.rollback_target["source"])  # what served before an A/B
    for source in sources:
        given = parse_uri(source)
        if isinstance(given, ModelURI) and given.alias is not None \
                and given.name == pinned.name:
            wanted.append(given.alias)
    models = _backend(project).models
    moves = []
    for alias in dict.fromkeys(wanted):
        try:
            before: int | None = models.get(f"{pinned.name}@{alias}").version
        except ModelNotFoundError:
            before = None
        moves.append({"model": pinned.name, "alias": alias, "from": before,
                      "to": int(pinned.version)})
    return moves


def _apply_moves(project: Project, moves: Sequence[dict[str, Any]], *,
                 back: bool = False) -> None:
    """Move each alias to its ``to`` version (``back``: to its ``from``, when it had one
    and still points where the promotion put it)."""
    models = _backend(project).models
    for move in moves:
        if not back:
            models.set_alias(move["model"], move["alias"], move["to"])
            continue
        try:
            now = models.get(f"{move['model']}@{move['alias']}").version
        except ModelNotFoundError:
            continue
        if move["from"] is not None and now == move["to"]:
            models.set_alias(move["model"], move["alias"], move["from"])


def rollback(project: Project, name: str, *, initiated_by: str | None = None,
             reason: str | None = None, analysis: dict[str, Any] | None = None,
             expected_serial: int | None = None) -> Revision:
    """Return in one step to the model that last took all traffic before the current
    revision (after a blue/green switch: blue), as a new revision recording
    ``rollback_of``; a live rollout ends aborted, and aliases its promotion moved point
    back where they were (unless something moved them since)."""
    ctx = context(project, name, initiated_by)
    if expected_serial is not None and expected_serial != ctx.serial:
        raise ConflictError(f"Deployment {name!r} changed before its rollback; read "
                            f"`mloop deploy status {name}` and try again.")
    current = ctx.current
    target = current.rollback_target if current is not None else None
    if current is None or target is None:
        raise ConflictError(f"Deployment {name!r} has nothing to roll back to: no earlier "
                            "revision sent all traffic to one model.")
    restored = ctx.backend.deployments.revision(name, int(target["revision"]))
    arm = Arm("stable", target["model"], target.get("source") or target["model"], 100.0,
              "stable")
    why = reason or f"rollback of revision {current.number} to {arm.model}"
    new = NewRevision(Strategy.REPLACE, (arm,), {}, current.fallback,
                      {"weights": {"stable": 100.0}}, RevisionStatus.COMPLETED,
                      rollback_of=current.number, rollback_target=restored.rollback_target,
                      reason=why)
    ending = Ending(RevisionStatus.ABORTED, "aborted", why, analysis)
    # a version that took all traffic before needs no approval to take it again
    revision = ctx.backend.deployments.add_revision(
        name, new, initiated_by=ctx.initiated_by, expected_serial=ctx.serial, ending=ending)
    ctx.backend.lineage.add(revision.uri, arm.model, "serves")
    _apply_moves(project, current.state.get("aliases", ()), back=True)
    return revision


def pause(project: Project, name: str, *, initiated_by: str | None = None) -> Revision:
    """Hold the rollout where it is: weights stay, no step or update is made."""
    ctx = context(project, name, initiated_by)
    current = _live(ctx)
    if current.status is not RevisionStatus.ACTIVE:
        raise ConflictError(f"Revision {current.number} of {name!r} is {current.status}, "
                            "not active.")
    return _move(ctx, current, "paused", status=RevisionStatus.PAUSED)


def resume(project: Project, name: str, *, initiated_by: str | None = None) -> Revision:
    """Carry on a paused rollout (a canary's pause before its next step starts anew)."""
    from mloop.core.clock import now_ms

    ctx = context(project, name, initiated_by)
    current = _live(ctx)
    if current.status is not RevisionStatus.PAUSED:
        raise ConflictError(f"Revision {current.number} of {name!r} is {current.status}, "
                            "not paused.")
    state = {**current.state, "step_started_at": now_ms()} if (
        current.strategy is Strategy.CANARY) else None
    return _move(ctx, current, "resumed", state=state, status=RevisionStatus.ACTIVE)


def start_approved(project: Project, name: str) -> Revision | None:
    """Start a rollout that awaited approval, once every version it needs is approved
    (the controller calls this); None while it still waits."""
    from mloop.core.clock import now_ms

    ctx = context(project, name, SYSTEM)
    current = ctx.current
    if current is None or current.status is not RevisionStatus.AWAITING_APPROVAL:
        return None
    if unapproved(project, current.arms, Fallback.from_dict(current.fallback)):
        return None
    state = {**current.state, "step_started_at": now_ms()}
    return _move(ctx, current, "approved", state=state, status=RevisionStatus.ACTIVE,
                 reason="every version in it is approved")
