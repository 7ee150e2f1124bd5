"""What a deployment's current revision asks its routers to do, before any model is loaded.

One reading of a revision for every router: ``mloop serve --deployment`` (requests, see
:mod:`mloop.deploy.serving`) and ``mloop worker --deployment`` (jobs, see
:mod:`mloop.deploy.worker`) both turn a :class:`Plan` into their own routing table, so a
request and a job of one revision are routed alike.

Which weights route, by revision status: ``active``, ``paused`` and ``completed`` route
by the revision's weights; a revision ``awaiting_approval`` is not in traffic yet, so
its ``rollback_target`` (the model that served before it) takes everything, indexed
under that earlier revision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mloop.deploy.model import Fallback
from mloop.errors import ConflictError, InvalidInputError
from mloop.repositories.deployments import Revision, RevisionStatus, Strategy

if TYPE_CHECKING:
    from mloop.project import Project

__all__ = ["Plan", "plan_of", "read_plans"]


@dataclass(frozen=True)
class Plan:
    """What a revision asks a router (a server, a worker) to route."""

    deployment: str
    serial: int
    revision: int  # traffic is indexed under it
    models: dict[str, str]  # arm -> models:/NAME/V
    weights: dict[str, float]
    sticky: str | None = None
    shadow: str | None = None
    sample: float = 1.0
    fallback: Fallback = field(default_factory=Fallback)
    step: int | None = None
    posterior: dict[str, float] | None = None
    verdict: str | None = None  # a canary's last analysis: pass, inconclusive or fail

    def uris(self) -> set[str]:
        out = set(self.models.values())
        if self.fallback.model is not None:
            out.add(self.fallback.model)
        return out


def plan_of(revision: Revision, serial: int, earlier: Revision | None = None) -> Plan:
    """How ``revision`` routes; ``earlier`` is its rollback target's revision, needed
    (only) while it awaits approval: that model then keeps all traffic."""
    fallback = Fallback.from_dict(revision.fallback)
    name = revision.deployment
    if revision.status is RevisionStatus.AWAITING_APPROVAL:
        target = revision.rollback_target
        if target is None or earlier is None:
            raise ConflictError(f"Revision {revision.number} of {name!r} awaits approval and "
                                "no model served before it; approve its model (`mloop "
                                "models approve`) or roll the deployment back.")
        from mloop.deploy.strategies import settled_arm

        settled = settled_arm(earlier)
        arm = settled.name if settled is not None else "stable"
        return Plan(name, serial, earlier.number, {arm: target["model"]}, {arm: 100.0},
                    fallback=fallback)
    weights = revision.weights
    shadow = revision.state.get("shadow") if revision.strategy is Strategy.SHADOW else None
    step = revision.state.get("step") if revision.strategy is Strategy.CANARY else None
    return Plan(name, serial, revision.number, {a.name: a.model for a in revision.arms},
                {a.name: float(weights.get(a.name, 0.0)) for a in revision.arms},
                sticky=revision.policy.get("sticky"), shadow=shadow,
                sample=float(revision.policy.get("sample", 1.0)), fallback=fallback,
                step=None if step is None else int(step),
                posterior=_posterior(revision),
                verdict=(revision.state.get("decision") or {}).get("verdict")
                if revision.strategy is Strategy.CANARY else None)


def _posterior(revision: Revision) -> dict[str, float] | None:
    found = revision.state.get("posterior")
    if not isinstance(found, list):
        return None
    out = {}
    for arm, entry in zip(revision.arms, found, strict=False):  # in arm order
        if isinstance(entry, dict) and isinstance(entry.get("posterior_mean"), int | float):
            out[arm.name] = float(entry["posterior_mean"])
    return out


def read_plans(project: Project, names: list[str], known: dict[str, int] | None = None
               ) -> list[Plan]:
    """The plans of those ``names`` whose serial is not the one in ``known`` (all without
    it); NotFoundError for a deployment that does not exist, InvalidInputError for one
    without a revision (blocking)."""
    from mloop import repositories

    deployments = repositories.backend(project).deployments
    serials = deployments.serials(names)  # before the revisions: a later change is seen
    missing = [n for n in names if n not in serials]
    if missing:
        deployments.get(missing[0])  # NotFoundError naming the ones that exist
    plans = []
    for name in names:
        if known is not None and known.get(name) == serials[name]:
            continue
        found = deployments.get(name)
        if found.current_revision is None:
            raise InvalidInputError(f"Deployment {name!r} has no revision to serve yet; give "
                                    f"it a model: `mloop deploy replace {name} MODEL`.")
        revision = deployments.revision(name, found.current_revision)
        earlier = None
        if (revision.status is RevisionStatus.AWAITING_APPROVAL
                and revision.rollback_target is not None):
            earlier = deployments.revision(name, int(revision.rollback_target["revision"]))
        plans.append(plan_of(revision, serials[name], earlier))
    return plans
